"""GET /api/v1/pools/NAME/scaling and the drain's answer (issue 16): a pool's queue and its
workers as an autoscaler counts them, drained workers never as capacity."""

import datetime

import pg_cluster
from davit_harness import Launcher


def iso(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def scaling(server, pool="p"):
    return server.ok("GET", "/api/v1/pools/%s/scaling" % pool)


def keda_metric(body, value_location):
    """What KEDA's metrics-api scaler reads: the number at valueLocation (a GJSON path; here a
    top-level key) of the JSON answer."""
    v = body
    for part in value_location.split("."):
        v = v[part]
    assert isinstance(v, int)
    return v


def test_scaling_counts_and_drain_answers(server):
    token, key = server.create_pool("p")
    assert scaling(server) == {"pending": 0, "demand": 0, "busy": 0, "idle": 0, "draining": 0, "drained": 0,
                               "slots": 0, "workers": []}

    a = Launcher(server, token, key, hostname="a")
    a.register(metadata={"instance_id": "i-a"})
    b = Launcher(server, token, key, hostname="b")
    b.register(metadata={"instance_id": "i-b"})
    rid = server.submit("p")
    a.poll(wait_s=0)  # a claims the run
    assert server.run(rid)["worker"] == a.id
    for _ in range(3):
        server.submit("p")

    s = scaling(server)
    assert (s["pending"], s["busy"], s["idle"], s["drained"]) == (3, 1, 1, 0)
    wa, wb = s["workers"]
    assert wa == {"id": a.id, "state": "busy", "idle_since": None, "runs": 1, "capacity": 1,
                  "metadata": {"instance_id": "i-a"}}
    assert wb["state"] == "idle" and wb["runs"] == 0 and wb["metadata"] == {"instance_id": "i-b"}
    assert abs((iso(wb["idle_since"]) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 60
    assert keda_metric(s, "pending") == 3
    # demand: the queue plus the runs going on busy workers, what the chart's KEDA scales on, so
    # that a launcher whose run is still going is not scaled away when the queue empties.
    assert keda_metric(s, "demand") == 4

    # Draining the busy worker: the answer says it still holds a run.
    d = server.ok("POST", "/api/v1/workers/%d/drain" % a.id, {})
    assert (d["id"], d["state"], d["runs"], d["draining"]) == (a.id, "draining", 1, True)
    # Draining the idle one: drained, and no run will start on it; not capacity any more.
    d = server.ok("POST", "/api/v1/workers/%d/drain" % b.id, {})
    assert (d["state"], d["runs"], d["draining"]) == ("drained", 0, True)
    s = scaling(server)
    assert (s["pending"], s["busy"], s["idle"], s["draining"], s["drained"]) == (3, 0, 0, 1, 1)
    # A draining worker's run is not demand: that launcher goes away whatever the count says.
    assert s["demand"] == 3
    assert b.poll(wait_s=0) and not any(m["type"] == "run" for m in b.poll(wait_s=0))
    assert scaling(server)["pending"] == 3

    # The run ends: a is drained, idle since the run's end.
    a.event(rid, "result", outcome="finished", exit_code=0)
    s = scaling(server)
    assert s["workers"][0]["state"] == "drained"
    assert iso(s["workers"][0]["idle_since"]) >= iso(server.run(rid)["ended_at"]) - datetime.timedelta(milliseconds=1)

    # Undrained: the answer is its state after the change; older clients still find "draining".
    u = server.ok("POST", "/api/v1/workers/%d/undrain" % b.id, {})
    assert (u["id"], u["state"], u["runs"], u["draining"]) == (b.id, "idle", 0, False)
    b.poll(wait_s=0)  # claims a queued run
    s = scaling(server)
    assert s["workers"][1]["state"] == "busy"
    # The run moved from the queue to b: the demand stays.
    assert (s["pending"], s["demand"]) == (2, 3)

    st, data, _ = server.request("GET", "/api/v1/pools/nope/scaling")
    assert st == 404 and "error" in data
    st, _, _ = server.request("GET", "/api/v1/pools/p/scaling", token=None)
    assert st == 401


def test_idle_since_reads_an_index(server):
    """Migration 7: a worker's last run's end comes from runs_launcher_ended, not from a scan of
    every run it ran (330 ms under the store's lock for 20 workers with 20,000 runs each)."""
    query = "SELECT max(r.ended_ms) FROM runs r WHERE r.launcher_id = 1"
    if pg_cluster.on_postgres():
        # An empty table is read whole unless that is ruled out: the index must be usable.
        plan = server.db_query("SET enable_seqscan = off; EXPLAIN " + query)
        assert "runs_launcher_ended" in " ".join(str(row[-1]) for row in plan), plan
        return
    plan = server.db_query("EXPLAIN QUERY PLAN " + query)
    assert "USING COVERING INDEX runs_launcher_ended" in " ".join(str(row[-1]) for row in plan)


def test_demand_counts_runs_not_workers(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key, hostname="two", capacity=2)
    la.register()
    ids = [server.submit("p") for _ in range(3)]
    runs = []
    for _ in range(12):  # each poll hands out what the launcher has room for
        runs += [m for m in la.poll(wait_s=5) if m["type"] == "run"]
        if len(runs) == 2:
            break
    assert sum(server.run(r)["worker"] == la.id for r in ids) == 2
    s = scaling(server)
    # One busy launcher holding two runs, one run queued: demand 3, for KEDA's targetValue of 2
    # runs a launcher (launcher.concurrency) that is two launchers, not one.
    assert (s["pending"], s["busy"], s["demand"]) == (1, 1, 3)


def test_capacity_and_slots(server):
    """Each worker's capacity (the runs its launcher takes at once, as it registered) and slots, the
    capacity of the workers that take runs: an autoscaler divides demand by it, so that a launcher
    with a free slot is not counted as full (issue 16, M5)."""
    token, key = server.create_pool("p")
    two = Launcher(server, token, key, hostname="two", capacity=2)
    two.register()
    three = Launcher(server, token, key, hostname="three", capacity=3)
    three.register()
    gone = Launcher(server, token, key, hostname="gone", capacity=4)
    gone.register()
    rid = server.submit("p")
    for _ in range(12):  # the run goes to whichever launcher polls first: two
        if any(m["type"] == "run" for m in two.poll(wait_s=5)):
            break
    assert server.run(rid)["worker"] == two.id
    server.submit("p")
    server.ok("POST", "/api/v1/workers/%d/drain" % gone.id, {})
    s = scaling(server)
    by_id = {w["id"]: w for w in s["workers"]}
    assert [(by_id[x.id]["state"], by_id[x.id]["capacity"]) for x in (two, three, gone)] == \
        [("busy", 2), ("idle", 3), ("drained", 4)]
    # A drained (or draining) worker takes no runs: its capacity is not slots.
    assert (s["pending"], s["demand"], s["slots"]) == (1, 2, 5)
    d = server.ok("POST", "/api/v1/workers/%d/drain" % two.id, {})
    assert (d["state"], d["capacity"]) == ("draining", 2)
    assert scaling(server)["slots"] == 3
