"""Ephemeral launchers (issue 15): one run, then exit 0; the server never
hands such a launcher a second run, whatever it asks, across its restart and
the server's (launchers.ephemeral, migration 6).

One server for the module. The protocol test speaks for the launcher with
davit_harness.Launcher; the daemon test uses a real davit-launcher and
dockerd (test_daemon's rules).
"""

import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_daemon import LAUNCHER, daemon, engine, submit  # noqa: E402,F401
from launcher_box import ENDED, box, clean_env, cli_pool  # noqa: E402,F401
from davit_harness import Launcher  # noqa: E402


def runs_of(poll):
    return [m["run"]["id"] for m in poll if m["type"] == "run"]


def test_the_server_claims_one_run_only_for_an_ephemeral_launcher(box):
    server = box["server"]
    key, csr = os.path.join(box["tmp"], "proto.key"), os.path.join(box["tmp"], "proto.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ed25519", "-nodes", "-keyout", key,
                    "-out", csr, "-subj", "/CN=x"], check=True, capture_output=True)
    with open(csr) as f:
        token = server.ok("POST", "/api/v1/pools", {"name": "proto", "csr": f.read()},
                          status=201)["token"]
    la = Launcher(server, token, key)
    # capacity 1 is the only one an ephemeral launcher may say
    st, body, _ = server.request("POST", "/api/v1/launcher/register",
                                 la.register_body(la.challenge(), capacity=2, ephemeral=True),
                                 token=None)
    assert st == 400 and "ephemeral" in body["error"], (st, body)
    la.register(ephemeral=True)
    first, second = server.submit("proto"), server.submit("proto")
    assert runs_of(la.poll(wait_s=5)) == [first]
    assert la.event(first, "running", phase="plan")[0] == 200
    assert la.event(first, "result", outcome="finished", exit_code=0)[0] == 200
    assert server.wait_state(first, ENDED)["state"] == "finished"
    # Free again, and asking: nothing, now or after a new registration with its id; each
    # answer says it is spent, and the autoscaler counts it drained, not idle capacity.
    poll = la.poll(wait_s=1)
    assert runs_of(poll) == [] and {"type": "spent", "id": 0} in poll
    sc = server.ok("GET", "/api/v1/pools/proto/scaling")
    assert (sc["idle"], sc["drained"]) == (0, 1), sc
    la.register(ephemeral=True)
    assert runs_of(la.poll(wait_s=1)) == []
    # Nor after the server restarts: the mark is in the database.
    server.stop()
    server.start()
    la.register(ephemeral=True)
    assert runs_of(la.poll(wait_s=1)) == []
    assert server.run(second)["state"] == "queued"
    # Another launcher takes it.
    other = Launcher(server, token, key, hostname="next")
    other.register()
    assert runs_of(other.poll(wait_s=5)) == [second]
    assert other.event(second, "result", outcome="finished", exit_code=0)[0] == 200


def test_an_ephemeral_launcher_takes_one_run_and_exits(box):
    server = box["server"]
    token, key_b64 = cli_pool(box, "eph")
    first = submit(server, "plan=echo one", pool="eph")
    second = submit(server, "plan=echo two", pool="eph")
    d = daemon(box, token, key_b64, name="eph1", env={"DAVIT_EPHEMERAL": "1"}).start()
    assert d.wait() == 0, d.log()
    assert "ephemeral: the run is reported, exiting" in d.log()
    assert [server.run(first)["state"], server.run(second)["state"]] == ["finished", "queued"]
    workers = server.ok("GET", "/api/v1/workers?pool=eph")["workers"]
    assert workers == []  # it said goodbye

    # The next launcher (ephemeral too, with --ephemeral) takes the other one.
    d2 = daemon(box, token, key_b64, name="eph2")
    d2.proc = None
    d2.err = open(d2.logpath, "ab")
    d2.out = open(d2.outpath, "ab")
    d2.proc = subprocess.Popen([LAUNCHER, "--ephemeral"], env=d2.env, stdout=d2.out,
                               stderr=d2.err)
    assert d2.wait() == 0, d2.log()
    assert server.run(second)["state"] == "finished"
    assert d.containers() == [] and d2.containers() == []


def test_an_ephemeral_launcher_refuses_a_concurrency_above_one(box):
    e = dict(clean_env(), DAVIT_STATE_DIR=os.path.join(box["tmp"], "conc-state"),
             DAVIT_LAUNCHER_CONCURRENCY="2")
    p = subprocess.run([LAUNCHER, "--ephemeral"], env=e, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2, p.stderr
    assert "DAVIT_LAUNCHER_CONCURRENCY: an ephemeral launcher takes one run: must be 1" in p.stderr


def test_a_spent_ephemeral_launcher_with_no_run_exits(box):
    """Spent with no run in hand (its run requeued before it got it, or a restart with its
    identity after its run was reported): the server says "spent" and the launcher exits 0."""
    server = box["server"]
    token, key_b64 = cli_pool(box, "spent")
    d = daemon(box, token, key_b64, name="spent1", env={"DAVIT_EPHEMERAL": "1"}).start()
    wid = server.ok("GET", "/api/v1/workers?pool=spent")["workers"][0]["id"]
    db = sqlite3.connect(os.path.join(server.data_dir, "davit.db"), timeout=30)
    with db:
        db.execute("UPDATE launchers SET ephemeral = 2 WHERE id = ?", (wid,))
    db.close()
    assert d.wait() == 0, d.log()  # its long poll ends within the poll's wait
    assert "the server says this launcher had its run already" in d.log()
    assert server.ok("GET", "/api/v1/workers?pool=spent")["workers"] == []
