"""Issue 14: GET /api/v1/watch, the web UI's change feed (docs/server.md).

A watch answers at once when the caller is behind, else parks its connection
until something a live view shows changes (a run queued, a worker drained, a
launcher registered) or its wait ends. Parked watches are counted by
davit_watch_waiters, so the tests wait on that, never on sleeps.
"""
import http.client
import re
import threading
import time

import pytest

from davit_harness import Launcher, wait_for
from test_dispatch import metric


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server


@pytest.fixture(scope="module")
def pool(srv):
    token, key = srv.create_pool("w")
    srv.create_pool("other")
    return token, key


def version(srv, query=""):
    return srv.ok("GET", "/api/v1/watch" + query)["version"]


class Watch:
    """One watch in a thread; .answer is (status, body, seconds taken)."""

    def __init__(self, srv, query):
        self.answer = None
        self.t = threading.Thread(target=self._run, args=(srv, query), daemon=True)
        self.t.start()

    def _run(self, srv, query):
        t0 = time.monotonic()
        st, data, _ = srv.request("GET", "/api/v1/watch" + query)
        self.answer = (st, data, time.monotonic() - t0)

    def wait(self):
        self.t.join(60)
        assert self.answer, "the watch never answered"
        return self.answer


def parked(srv, n):
    wait_for("%d watch(es) parked" % n, lambda: metric(srv, "davit_watch_waiters") == n)


def test_behind_answers_at_once(srv, pool):
    v = version(srv)
    assert srv.ok("GET", "/api/v1/watch?since=%d" % (v + 1000)) == {"version": v}  # a restart
    srv.ok("GET", "/api/v1/watch?pool=w")  # no since: now
    srv.submit("w")
    assert version(srv, "?since=%d" % v) > v
    assert version(srv, "?pool=w&since=%d" % v) > v


def test_run_queued_wakes_watchers_of_its_pool_only(srv, pool):
    v, vw, vo = version(srv), version(srv, "?pool=w"), version(srv, "?pool=other")
    all_, mine, other = (Watch(srv, "?since=%d" % v), Watch(srv, "?pool=w&since=%d" % vw),
                         Watch(srv, "?pool=other&since=%d&wait_s=25" % vo))
    parked(srv, 3)
    srv.submit("w")
    for w in (all_, mine):
        st, data, took = w.wait()
        assert st == 200 and data["version"] > v, data
    assert other.answer is None
    parked(srv, 1)  # the other pool's watcher sleeps on
    srv.submit("other")
    assert other.wait()[1]["version"] > vo


def test_register_and_drain_wake(srv, pool):
    token, key = pool
    la = Launcher(srv, token, key, hostname="watched")
    v = version(srv, "?pool=w")
    w = Watch(srv, "?pool=w&since=%d" % v)
    parked(srv, 1)
    la.register()
    v2 = w.wait()[1]["version"]
    assert v2 > v
    w = Watch(srv, "?pool=w&since=%d" % v2)
    parked(srv, 1)
    srv.ok("POST", "/api/v1/workers/%d/drain" % la.id, {})
    assert w.wait()[1]["version"] > v2


def test_heartbeat_and_idle_poll_wake_nobody(srv, pool):
    token, key = pool
    la = Launcher(srv, token, key, hostname="beats")
    la.register()
    # Empty the queue the earlier tests filled, so that the polls below claim nothing.
    while any(m["type"] == "run" for m in la.poll(wait_s=0)):
        pass
    v = version(srv, "?pool=w")
    w = Watch(srv, "?pool=w&since=%d&wait_s=3" % v)
    parked(srv, 1)
    for _ in range(5):
        st, data, _ = la.call("POST", "/api/v1/launcher/heartbeat", {})
        assert st == 200, data
        la.poll(wait_s=0)
    assert metric(srv, "davit_watch_waiters") == 1  # still asleep after every one
    st, data, took = w.wait()
    assert st == 200 and data == {"version": v}  # its wait ended: the same version
    assert took >= 2.9


def test_claim_and_result_wake(srv, pool):
    token, key = pool
    la = Launcher(srv, token, key, hostname="claims", capacity=50)
    la.register()
    while any(m["type"] == "run" for m in la.poll(wait_s=0)):
        pass  # what the earlier tests queued
    rid = srv.submit("w")
    v = version(srv, "?pool=w")
    w = Watch(srv, "?pool=w&since=%d" % v)
    parked(srv, 1)
    assert any(m["type"] == "run" and m["run"]["id"] == rid for m in la.poll(wait_s=0))
    v2 = w.wait()[1]["version"]
    assert v2 > v  # claimed: assigned
    w = Watch(srv, "?pool=w&since=%d" % v2)
    parked(srv, 1)
    st, data, _ = la.event(rid, "result", outcome="finished", exit_code=0)
    assert st == 200, data
    assert w.wait()[1]["version"] > v2


def test_bad_input(srv, pool):
    for q, want in (("?since=x", 400), ("?since=-1", 400), ("?wait_s=26", 400),
                    ("?pool=nosuch", 404)):
        st, data, _ = srv.request("GET", "/api/v1/watch" + q)
        assert st == want and set(data) == {"error"} and "nosuch" not in data["error"], (q, st, data)


def threads(srv):
    with open("/proc/%d/status" % srv.proc.pid) as f:
        return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))


def test_parked_watchers_cost_no_thread(srv, pool):
    v = version(srv)
    before = threads(srv)
    conns = []
    for _ in range(200):
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        c.request("GET", "/api/v1/watch?since=%d" % v, headers={"Authorization": "Bearer " + srv.token})
        conns.append(c)
    parked(srv, 200)
    assert threads(srv) == before
    srv.submit("w")
    for c in conns:
        r = c.getresponse()
        assert r.status == 200 and b'"version"' in r.read()
        c.close()
    parked(srv, 0)


def test_cap_and_shutdown(make_server):
    """At most a quarter of --max-connections wait at once; a stop answers those waiting 503."""
    s = make_server("--max-connections", "8")
    v = version(s)
    waiting = [Watch(s, "?since=%d" % v) for _ in range(2)]
    parked(s, 2)
    st, data, _ = s.request("GET", "/api/v1/watch?since=%d" % v)
    assert st == 503 and "too many watches" in data["error"], (st, data)
    assert s.stop() == 0
    assert [w.wait()[0] for w in waiting] == [503, 503]
