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
    # The new token with the old key: the server decoded the old key for a's registration and
    # keeps decoded keys (keycache.c); it must not verify with it for the reset pool.
    stale = Launcher(server, r["token"], key)
    st, data, _ = server.request("POST", "/api/v1/launcher/register",
                                 stale.register_body(stale.challenge()), token=None)
    assert st == 401 and "signature does not verify" in str(data)
    new = Launcher(server, r["token"], key2)
    new.register()
    server.submit("p")
    assert a.poll(wait_s=0) == []  # the revoked launcher gets no runs
    assert any(m["type"] == "run" for m in new.poll())


def _pending_poll(launcher, wait_s):
    """A poll the server holds while its launcher is frozen: sent from a
    thread that nobody waits for (the answer, when it comes, is dropped)."""
    import threading
    body = {"ack": launcher.ack, "wait_s": wait_s}
    t = threading.Thread(target=lambda: launcher.call("POST", "/api/v1/launcher/poll", body),
                         daemon=True)
    t.start()
    return t


def test_a_poll_held_by_the_server_does_not_extend_the_lease(make_server):
    """Issue 9: a launcher frozen with a long-poll pending kept its runs for the
    lease plus the whole poll. The lease now runs from the last request."""
    lease, grace = 6.0, 1.0  # polls are held at most 2/3 of the lease: 4 s
    server = make_server("--lease", "6s", "--lost-grace", "1s")
    token, key = server.create_pool("p")
    a = Launcher(server, token, key, capacity=3)
    a.register()
    assigned, started = server.submit("p"), server.submit("p")
    got = [m["run"]["id"] for m in a.poll() if m["type"] == "run"]
    assert sorted(got) == sorted([assigned, started])
    assert a.event(started, "running", phase="plan")[0] == 200
    # The launcher's last request: a poll that the server holds (capacity is
    # left and nothing is queued), then the launcher freezes.
    t0 = time.monotonic()
    _pending_poll(a, 60)
    r = server.wait_state(assigned, ["queued"], limit=30)
    requeued = time.monotonic() - t0
    assert r["state"] == "queued"
    server.wait_state(started, ["lost"], limit=30)
    lost = time.monotonic() - t0
    # The reaper runs every 0.5 s; 1 s more for a loaded machine. Before the
    # fix these took the held poll's 4 s longer.
    assert requeued <= lease + 1.5, requeued
    assert lost <= lease + grace + 1.5, lost


def test_a_bad_cycle_deadline_is_not_echoed(server):
    """An error never quotes the request (docs/security.md): the deadline could hold a terminal
    escape for whoever reads the error."""
    server.create_pool("p")
    st, data, _ = server.request("POST", "/api/v1/pools/p/cycle", {"deadline": "\x1b[2Jsoon"})
    assert st == 400, data
    assert data["error"] == "deadline: not a duration (like 20s, 5m)", data


def test_a_cycled_launcher_that_registers_again_takes_runs(server):
    """Issue 9, defect 1: a cycle ends the old session only. A launcher
    restarted with its state directory (same launcher_id) is a new, healthy
    worker."""
    token, key = server.create_pool("p")
    a = Launcher(server, token, key)
    a.register()
    server.ok("POST", "/api/v1/pools/p/cycle", {"deadline": "20s"})
    assert [m["type"] for m in a.poll(wait_s=0)] == ["cycle"]
    # killed before its last poll: the server still sees it cycling
    assert server.ok("GET", "/api/v1/workers")["workers"][0]["state"] == "exiting"
    old_id = a.id
    a.ack = 0  # a fresh process acknowledges nothing yet
    a.register()
    assert a.id == old_id
    assert server.ok("GET", "/api/v1/workers")["workers"][0]["state"] == "idle"
    rid = server.submit("p")
    msgs = a.poll()
    assert [m["type"] for m in msgs] == ["run"] and msgs[0]["run"]["id"] == rid


def test_an_exiting_launcher_is_forgotten_at_once(make_server):
    """Issue 9: exited launchers stayed listed as "exiting" for a day."""
    server = make_server("--lease", "3s", "--lost-grace", "600s")
    token, key = server.create_pool("p")
    a, b, c = (Launcher(server, token, key, hostname=h) for h in ("a", "b", "c"))
    for la in (a, b, c):
        la.register()
    rid = server.submit("p")
    got = c.poll()
    assert [m["run"]["id"] for m in got if m["type"] == "run"] == [rid]
    c.ack = max(m["id"] for m in got)
    assert c.event(rid, "running", phase="plan")[0] == 200
    # a exits gracefully: its last poll says so
    st, data, _ = a.call("POST", "/api/v1/launcher/poll",
                         {"ack": a.ack, "wait_s": 20, "exiting": True, "draining": True})
    assert st == 200 and data == {"messages": []}
    assert a.id not in [w["id"] for w in server.ok("GET", "/api/v1/workers")["workers"]]
    assert a.call("POST", "/api/v1/launcher/heartbeat", {})[0] == 401  # its session ended
    # b vanishes, c vanishes holding a started run: b goes when its lease
    # ends, c stays, offline, until it comes back or its run is lost
    def listed():
        return {w["id"]: w["state"] for w in server.ok("GET", "/api/v1/workers")["workers"]}
    end = time.monotonic() + 30
    while listed() != {c.id: "offline"}:  # c spoke last: its lease ends last
        got = listed()
        assert time.monotonic() < end and set(got) <= {b.id, c.id}, got
        time.sleep(0.1)
    # a restart of a with the same state directory registers as a new worker
    a.register()
    assert a.id not in (b.id, c.id) and listed()[a.id] == "idle"
