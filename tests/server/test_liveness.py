"""A launcher's liveness lives in memory (docs/server.md, "How it works"): a heartbeat or an
idle poll writes nothing to the database, and a restart of the server does not expire the lease
of a launcher that is fine."""

import hashlib
import os
import signal
import time

import pg_cluster
import pytest
from davit_harness import Launcher, wait_for

HEARTBEATS = 30


def wal_digest(server):
    path = os.path.join(server.data_dir, "davit.db-wal")
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.skipif(pg_cluster.on_postgres(), reason="the SQLite file's WAL (PostgreSQL's own "
                    "writes are not the server's)")
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
    server, la, rid = launcher_with_run(make_server, lease_s)
    server.kill9()
    started = time.monotonic()  # the lease counts from the store's opening, inside start()
    server.start()
    # Well within the lease counted from the restart, and several reaper passes (500 ms) later:
    # the launcher counts as seen at the start, so its run is still its own.
    time.sleep(lease_s / 3)
    r = server.run(rid)
    assert time.monotonic() - started < lease_s, "the machine stalled: the check is void"
    assert r["state"] == "assigned" and r["worker"] == la.id, r


def launcher_with_run(make_server, lease_s):
    """A server with that lease (and a long grace), a registered launcher, and a run it took."""
    server = make_server("--lease", "%ds" % lease_s, "--lost-grace", "600s")
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    assert [m["run"]["id"] for m in la.poll(wait_s=0) if m["type"] == "run"] == [rid]
    return server, la, rid


def assigned_to(server, rid, la):
    r = server.run(rid)
    return r["state"] == "assigned" and r["worker"] == la.id


def stays_assigned(server, rid, la, lease_s):
    """The run stays the launcher's through several reaper passes (500 ms) inside the lease
    counted from now: the reaper must not expire it meanwhile."""
    since = time.monotonic()
    checks = 0
    while time.monotonic() - since < lease_s * 2 / 3:
        assert assigned_to(server, rid, la), server.run(rid)
        checks += 1
        time.sleep(0.2)
    assert checks >= 3, "the machine stalled: the check is void"


def test_a_restart_after_a_downtime_longer_than_the_lease_keeps_a_live_launcher(make_server):
    """The launcher's last-seen time in the database is older than a lease when the server comes
    back (on PostgreSQL that column is what every server's reaper reads): the reaper must wait
    until the launcher has had a lease to show up again (review18 M1)."""
    lease_s = 3
    server, la, rid = launcher_with_run(make_server, lease_s)
    server.kill9()
    down = time.monotonic()
    # The downtime itself is the scenario: longer than a lease, then the server starts.
    wait_for("a downtime longer than the lease", lambda: time.monotonic() - down > lease_s + 1)
    server.start()
    stays_assigned(server, rid, la, lease_s)
    la.poll(wait_s=0)  # the launcher shows up: from now on its lease runs normally
    assert assigned_to(server, rid, la)


@pytest.mark.skipif(not pg_cluster.on_postgres(), reason="a PostgreSQL outage")
def test_a_database_outage_longer_than_the_lease_keeps_a_live_launcher(make_server):
    """PostgreSQL away for longer than a lease: the launcher's polls fail meanwhile, so its
    last-seen time in the database is older than a lease when it comes back. No lease may expire
    until the launcher has had a lease to be seen again (review18 M1)."""
    lease_s = 3
    server, la, rid = launcher_with_run(make_server, lease_s)
    cluster = pg_cluster.shared()
    logged = server.log().count("store failed")
    pg_cluster.stop_pid(cluster.pid, signal.SIGQUIT)
    down = time.monotonic()
    wait_for("the server to see the database gone",
             lambda: server.request("GET", "/healthz")[0] == 503)
    wait_for("an outage longer than the lease", lambda: time.monotonic() - down > lease_s + 1)
    # Every operation fails meanwhile (the reaper's every 500 ms among them): the log says so
    # at most 5 times in each 10 s window of the server's monotonic clock (the one
    # time.monotonic reads), then counts the rest.
    windows = int(time.monotonic() // 10) - int(down // 10) + 1
    failed = server.log().count("store failed") - logged
    assert 1 <= failed <= 5 * windows, (failed, windows)
    cluster.start()
    wait_for("the server to see the database back",
             lambda: server.request("GET", "/healthz")[0] == 200)
    stays_assigned(server, rid, la, lease_s)


@pytest.mark.skipif(pg_cluster.on_postgres(), reason="on PostgreSQL a launcher's last-seen time "
                    "reaches the workers list at the next reaper pass (docs/server.md)")
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
