"""Group commit keeps the durability rule: many submissions and results share commits while
the server is killed with SIGKILL at a random moment. After the restart every submission and
every result that was acknowledged is there, as acknowledged; nothing was acknowledged that is
not stored (docs/server.md, "Data directory")."""

import http.client
import json
import os
import random
import threading
import time
import uuid

from davit_harness import Launcher

ROUNDS = 8
SUBMITTERS = 6
LAUNCHERS = 4


def call(port, method, path, body, token):
    """One request; None when the server died under it (not acknowledged)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=json.dumps(body).encode(),
                  headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        c.close()


def test_acknowledged_writes_survive_sigkill_during_group_commits(make_server):
    server = make_server("--threads", "8", "--lease", "60s")
    token, key = server.create_pool("p")
    submitted = {}  # run id -> marker, for every 201
    finished = set()  # run ids whose result was acknowledged
    # DAVIT_TEST_SEED replays a failure; the seed is printed with the output of a failed test.
    seed = int(os.environ.get("DAVIT_TEST_SEED") or random.randrange(1 << 32))
    print("DAVIT_TEST_SEED=%d" % seed)
    rng = random.Random(seed)
    for rnd in range(ROUNDS):
        launchers = []
        for i in range(LAUNCHERS):
            la = Launcher(server, token, key, hostname="gc-%d-%d" % (rnd, i), capacity=4)
            la.register()
            launchers.append(la)
        port, admin = server.port, server.token
        stop = threading.Event()
        lock = threading.Lock()
        progress = {"acks": 0}

        def submitter():
            while not stop.is_set():
                marker = uuid.uuid4().hex
                spec = {"pool": "p", "image": "busybox",
                        "phases": [{"name": "plan", "commands": ["echo " + marker]}]}
                got = call(port, "POST", "/api/v1/runs", spec, admin)
                if got is None:
                    return
                assert got[0] == 201, got
                with lock:
                    submitted[got[1]["id"]] = marker
                    progress["acks"] += 1

        def launcher(la):
            ack = 0
            while not stop.is_set():
                got = call(port, "POST", "/api/v1/launcher/poll", {"ack": ack, "wait_s": 1}, la.session)
                if got is None:
                    return
                assert got[0] == 200, got
                for m in got[1]["messages"]:
                    ack = max(ack, m["id"])
                    if m["type"] != "run":
                        continue
                    rid = m["run"]["id"]
                    res = call(port, "POST", "/api/v1/launcher/runs/%d/events" % rid,
                               {"seq": 1, "type": "result", "outcome": "finished"}, la.session)
                    if res is None:
                        return
                    assert res[0] == 200, res
                    with lock:
                        finished.add(rid)
                        progress["acks"] += 1

        errors = []

        def guarded(fn, *a):
            try:
                fn(*a)
            except Exception as e:  # noqa: BLE001 (a thread's failure fails the test below)
                errors.append(repr(e))

        threads = [threading.Thread(target=guarded, args=(submitter,)) for _ in range(SUBMITTERS)]
        threads += [threading.Thread(target=guarded, args=(launcher, la)) for la in launchers]
        for t in threads:
            t.start()
        # Kill at a random moment once writes are flowing (a condition, not a time).
        target = progress["acks"] + rng.randint(50, 400)
        while progress["acks"] < target and any(t.is_alive() for t in threads):
            time.sleep(0.001)
        assert progress["acks"] >= target, "the writers stopped before the kill: %s" % errors[:3]
        server.kill9()
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        server.start()
        runs = {}
        before = None
        while True:
            page = server.ok("GET", "/api/v1/runs?limit=1000" + ("&before=%d" % before if before else ""))
            runs.update({r["id"]: r for r in page["runs"]})
            before = page["next"]
            if not before:
                break
        missing = [rid for rid in submitted if rid not in runs]
        assert not missing, "acknowledged submissions lost: %s" % missing[:10]
        for rid, marker in rng.sample(sorted(submitted.items()), min(20, len(submitted))):
            spec = server.run(rid)["spec"]
            assert spec["phases"][0]["commands"] == ["echo " + marker], (rid, spec)
        not_finished = [rid for rid in finished if runs[rid]["state"] != "finished"]
        assert not not_finished, "acknowledged results lost: %s" % not_finished[:10]
    # At least 50 acknowledgements a round, results no more than submissions.
    assert len(submitted) >= ROUNDS * 25 and finished
