"""Leases, requeue, lost runs, drain, cycle and pool reset, with short timings."""

import time

from davit_harness import Launcher


def test_unstarted_run_is_requeued_to_another_launcher(make_server):
    server = make_server("--lease", "2s", "--lost-grace", "600s")
    token, key = server.create_pool("p")
    a = Launcher(server, token, key, hostname="a")
    a.register()
    rid = server.submit("p")
    assert [m["run"]["id"] for m in a.poll() if m["type"] == "run"] == [rid]
    assert server.run(rid)["state"] == "assigned"
    # a stops polling; b waits
    b = Launcher(server, token, key, hostname="b")
    b.register()
    m = b.poll_until(lambda m: m["type"] == "run")
    assert m["run"]["id"] == rid and m["run"]["attempt"] == 2
    r = server.run(rid)
    assert r["state"] == "assigned" and r["worker"] == b.id
    # a comes back too late: the run is not its any more
    a.register()
    st, data, _ = a.event(rid, "preparing")
    assert st == 403


def test_started_run_is_lost_after_grace_unless_launcher_returns(make_server):
    server = make_server("--lease", "2s", "--lost-grace", "4s")
    token, key = server.create_pool("p")
    a = Launcher(server, token, key)
    a.register()
    r1 = server.submit("p")
    a.poll()
    a.event(r1, "running", phase="plan")
    # silent for longer than lease + grace: the run is lost
    server.wait_state(r1, ["lost"])
    st, data, _ = a.event(r1, "result", outcome="finished")
    assert st == 409 and data["state"] == "lost"
    # a launcher that comes back within the grace keeps its run
    b = Launcher(server, token, key, capacity=2)
    b.register()
    r2 = server.submit("p")
    assert any(m["type"] == "run" for m in b.poll())
    b.event(r2, "running", phase="plan")
    time.sleep(3)  # past the lease, within lease + grace
    b.register()   # restarted launcher re-registers with its launcher_id
    assert b.event(r2, "running", phase="apply")[0] == 200
    time.sleep(3)
    b.poll(wait_s=0)
    assert server.run(r2)["state"] == "running"


def test_drain_and_undrain(server):
    token, key = server.create_pool("p")
    a = Launcher(server, token, key)
    a.register()
    server.ok("POST", "/api/v1/workers/%d/drain" % a.id, {})
    assert [m["type"] for m in a.poll(wait_s=0)] == ["drain"]
    rid = server.submit("p")
    assert a.poll(wait_s=1) == []  # never dispatched to a draining launcher
    workers = server.ok("GET", "/api/v1/workers")["workers"]
    assert workers[0]["state"] == "draining" and workers[0]["metadata"] == {"zone": "test"}
    server.ok("POST", "/api/v1/workers/%d/undrain" % a.id, {})
    msgs = a.poll()
    assert [m["type"] for m in msgs] == ["run", "undrain"] or [m["type"] for m in msgs] == ["undrain", "run"]
    w = server.ok("GET", "/api/v1/workers?pool=p")["workers"][0]
    assert w["state"] == "busy" and w["runs"] == [rid] and w["hostname"] == "test-host"
    st, data, _ = server.request("POST", "/api/v1/workers/999/drain", {})
    assert st == 404


def test_capacity_and_fifo(server):
    token, key = server.create_pool("p")
    a = Launcher(server, token, key, capacity=2)
    a.register()
    ids = [server.submit("p") for _ in range(3)]
    got = [m["run"]["id"] for m in a.poll() if m["type"] == "run"]
    assert got == ids[:2]  # oldest first, and no more than the capacity
    assert a.poll(wait_s=0) == []
    a.event(ids[0], "result", outcome="finished")
    got = [m["run"]["id"] for m in a.poll() if m["type"] == "run"]
    assert got == [ids[2]]


def test_cycle(server):
    token, key = server.create_pool("p")
    a = Launcher(server, token, key)
    a.register()
    b = Launcher(server, token, key)
    b.register()
    r = server.ok("POST", "/api/v1/pools/p/cycle", {"deadline": "20s"})
    assert r["workers"] == 2
    for la in (a, b):
        msgs = la.poll(wait_s=0)
        assert [m["type"] for m in msgs] == ["cycle"] and msgs[0]["deadline_ms"] > 0
    server.submit("p")
    assert a.poll(wait_s=1) == []  # a cycling launcher takes no new runs
    assert {w["state"] for w in server.ok("GET", "/api/v1/workers")["workers"]} == {"exiting"}
    # a replacement launcher takes the queued run
    c = Launcher(server, token, key)
    c.register()
    assert any(m["type"] == "run" for m in c.poll())


def test_reset_stops_old_token_and_tells_launchers_to_exit(server, tmp_path):
    token, key = server.create_pool("p")
    a = Launcher(server, token, key)
    a.register()
    from davit_harness import openssl_key
    key2, csr2 = openssl_key(str(tmp_path), "ec", "new")
    r = server.ok("POST", "/api/v1/pools/p/reset", {"csr": open(csr2).read()})
    assert r["token"] != token
    assert [m["type"] for m in a.poll(wait_s=0)] == ["exit"]
    old = Launcher(server, token, key)
    ch = old.challenge()
    st, data, _ = server.request("POST", "/api/v1/launcher/register", old.register_body(ch), token=None)
    assert st == 401
    new = Launcher(server, r["token"], key2)
    new.register()
    server.submit("p")
    assert a.poll(wait_s=0) == []  # the revoked launcher gets no runs
    assert any(m["type"] == "run" for m in new.poll())
