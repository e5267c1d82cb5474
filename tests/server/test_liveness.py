"""A launcher's liveness lives in memory (docs/server.md, "How it works"): a heartbeat or an
idle poll writes nothing to the database, and a restart of the server does not expire the lease
of a launcher that is fine."""

import hashlib
import os
import time

from davit_harness import Launcher, wait_for

HEARTBEATS = 30


def wal_digest(server):
    path = os.path.join(server.data_dir, "davit.db-wal")
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_heartbeats_and_idle_polls_write_nothing(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    # The retention sweep's first pass (at start) may cut the WAL once: a window in which
    # nothing else wrote shows whether the heartbeats did.
    for _ in range(3):
        before = wal_digest(server)
        for _ in range(HEARTBEATS):
            st, data, _ = la.call("POST", "/api/v1/launcher/heartbeat", {})
            assert st == 200, (st, data)
            assert la.poll(wait_s=0) == []
        if wal_digest(server) == before:
            break
    else:
        raise AssertionError("every heartbeat and idle poll changed the database's WAL")


def test_a_restart_does_not_expire_the_lease_of_a_live_launcher(make_server):
    lease_s = 6
    server = make_server("--lease", "%ds" % lease_s, "--lost-grace", "600s")
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    assert [m["run"]["id"] for m in la.poll(wait_s=0) if m["type"] == "run"] == [rid]
    server.kill9()
    started = time.monotonic()  # the lease counts from the store's opening, inside start()
    server.start()
    # Well within the lease counted from the restart, and several reaper passes (500 ms) later:
    # the launcher counts as seen at the start, so its run is still its own.
    time.sleep(lease_s / 3)
    r = server.run(rid)
    assert time.monotonic() - started < lease_s, "the machine stalled: the check is void"
    assert r["state"] == "assigned" and r["worker"] == la.id, r


def test_a_restart_does_not_revive_a_silent_launcher(make_server):
    server = make_server("--lease", "2s", "--lost-grace", "600s")
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()

    def listed():
        return [w["id"] for w in server.ok("GET", "/api/v1/workers")["workers"]]

    assert listed() == [la.id]
    wait_for("the silent launcher to leave the list", lambda: listed() == [])
    server.kill9()
    server.start()
    # Leases count from the start, but the list and the gauges go by the time last known.
    assert listed() == []
    la.poll(wait_s=0)
    assert listed() == [la.id]
