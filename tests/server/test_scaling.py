"""GET /api/v1/pools/NAME/scaling and the drain's answer (issue 16): a pool's queue and its
workers as an autoscaler counts them, drained workers never as capacity."""

import datetime

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
    assert scaling(server) == {"pending": 0, "busy": 0, "idle": 0, "draining": 0, "drained": 0, "workers": []}

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
    assert wa == {"id": a.id, "state": "busy", "idle_since": None, "runs": 1, "metadata": {"instance_id": "i-a"}}
    assert wb["state"] == "idle" and wb["runs"] == 0 and wb["metadata"] == {"instance_id": "i-b"}
    assert abs((iso(wb["idle_since"]) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 60
    assert keda_metric(s, "pending") == 3

    # Draining the busy worker: the answer says it still holds a run.
    d = server.ok("POST", "/api/v1/workers/%d/drain" % a.id, {})
    assert (d["id"], d["state"], d["runs"], d["draining"]) == (a.id, "draining", 1, True)
    # Draining the idle one: drained, and no run will start on it; not capacity any more.
    d = server.ok("POST", "/api/v1/workers/%d/drain" % b.id, {})
    assert (d["state"], d["runs"], d["draining"]) == ("drained", 0, True)
    s = scaling(server)
    assert (s["pending"], s["busy"], s["idle"], s["draining"], s["drained"]) == (3, 0, 0, 1, 1)
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
    assert scaling(server)["workers"][1]["state"] == "busy"

    st, data, _ = server.request("GET", "/api/v1/pools/nope/scaling")
    assert st == 404 and "error" in data
    st, _, _ = server.request("GET", "/api/v1/pools/p/scaling", token=None)
    assert st == 401
