"""Claim at submit: a run submitted while a poll of its pool sleeps with room
for it is inserted and recorded as assigned to that poll's launcher in one
transaction, so a dispatch costs one durable commit (one fsync), not two.

Counted, not timed: davit_store_commits_total counts the commits that wrote,
davit_store_syncs_total the syncs that made them durable (SQLite).
"""
from davit_harness import Launcher, wait_for
from pg_cluster import on_postgres
from test_dispatch import metric, poll_in_thread

RUNS = 5


def own_commits(deltas, expected):
    """Each window's commits are the operation's own. On PostgreSQL the reaper also writes the
    launchers' last-seen times whenever they moved by 2 s (ST_SEEN_SHARED_MS, store_int.h), a
    commit of its own that a window may catch: there a window may hold one more, and the
    smallest must be exact."""
    if on_postgres():
        assert all(expected <= d <= expected + 1 for d in deltas) and min(deltas) == expected, deltas
    else:
        assert all(d == expected for d in deltas), deltas


def test_submit_to_a_sleeping_poll_is_one_commit(make_server):
    server = make_server("--poll-timeout", "60s")
    token, key = server.create_pool("p")
    la = Launcher(server, token, key, hostname="h")
    la.register()
    deltas = []
    for i in range(RUNS):
        got = {}
        t = poll_in_thread(la, got)
        wait_for("the poll asleep", lambda: metric(server, "davit_dispatch_waiters") == 1)
        wakeups = metric(server, "davit_dispatch_wakeups_total")
        commits = metric(server, "davit_store_commits_total")
        syncs = metric(server, "davit_store_syncs_total")
        run_id = server.submit("p")
        t.join(30)
        msgs = got[la.id]
        runs = [m for m in msgs if m["type"] == "run"]
        assert [m["run"]["id"] for m in runs] == [run_id]
        # Recorded as assigned to it before the launcher read it.
        st, shown, _ = server.request("GET", "/api/v1/runs/%d" % run_id)
        assert st == 200 and shown["state"] == "assigned" and shown["worker"] == la.id
        deltas.append(metric(server, "davit_store_commits_total") - commits)
        # SQLite: one fdatasync of the WAL made it durable; PostgreSQL's COMMIT is durable itself
        assert metric(server, "davit_store_syncs_total") - syncs == (0 if on_postgres() else 1)
        assert metric(server, "davit_dispatch_wakeups_total") - wakeups == 1
        la.ack = max(m["id"] for m in msgs)
        # Finish it, so that the launcher has room again for the next round.
        st, _, _ = la.call("POST", "/api/v1/launcher/runs/%d/events" % run_id,
                           {"seq": 1, "type": "result", "outcome": "finished", "exit_code": 0})
        assert st == 200
    own_commits(deltas, 1)


def test_no_sleeping_poll_queues_then_the_poll_claims(make_server):
    """Without a poll asleep the run is queued (one commit), and the next poll claims it (one
    more)."""
    server = make_server("--poll-timeout", "60s")
    token, key = server.create_pool("p")
    la = Launcher(server, token, key, hostname="h")
    la.register()
    submits, claims = [], []
    for i in range(RUNS):
        commits = metric(server, "davit_store_commits_total")
        run_id = server.submit("p")
        submits.append(metric(server, "davit_store_commits_total") - commits)
        st, shown, _ = server.request("GET", "/api/v1/runs/%d" % run_id)
        assert st == 200 and shown["state"] == "queued"
        commits = metric(server, "davit_store_commits_total")
        msgs = la.poll(wait_s=0)
        assert [m["run"]["id"] for m in msgs if m["type"] == "run"] == [run_id]
        claims.append(metric(server, "davit_store_commits_total") - commits)
        la.ack = max(m["id"] for m in msgs)
        st, _, _ = la.call("POST", "/api/v1/launcher/runs/%d/events" % run_id,
                           {"seq": 1, "type": "result", "outcome": "finished", "exit_code": 0})
        assert st == 200
    own_commits(submits, 1)
    own_commits(claims, 1)


def test_reset_key_gets_its_own_key_id(make_server, tmp_path):
    """The submit keeps the pools' key fingerprints (decoding a PEM key is most of a submit's
    CPU): after a reset, secrets are sealed to the new key and a block sealed to the old one is
    refused, as without the cache."""
    from davit_harness import openssl_key
    server = make_server("--allow-plaintext-secrets")
    token, key = server.create_pool("p", kind="ec")

    def sealed_of(token, key):
        la = Launcher(server, token, key, hostname="h")
        la.register()
        rid = server.submit("p", secrets={"TOKEN": "v"})
        [m] = [m for m in la.poll(wait_s=0) if m["type"] == "run"]
        assert m["run"]["id"] == rid
        return m["run"]["spec"]

    old = sealed_of(token, key)
    key2, csr2 = openssl_key(str(tmp_path), "ec", "new")
    r = server.ok("POST", "/api/v1/pools/p/reset", {"csr": open(csr2).read()})
    new = sealed_of(r["token"], key2)
    assert new["sealed"]["key_id"] != old["sealed"]["key_id"]
    spec = {"pool": "p", "image": "busybox", "phases": [{"name": "plan", "commands": ["true"]}],
            "sealed": old["sealed"], "run_nonce": "f" * 32}
    st, data, _ = server.request("POST", "/api/v1/runs", spec)
    assert st == 400 and "another key" in data["error"], (st, data)
