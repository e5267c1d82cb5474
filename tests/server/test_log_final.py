"""A run's log is final once its result is stored (issue 12): no chunk is appended after it."""

from davit_fixtures import server, tmp_path  # noqa: F401
from davit_harness import Launcher, spool_record


def _log(server, rid):
    st, body, _ = server.request("GET", "/api/v1/runs/%d/logs" % rid)
    assert st == 200
    return body


def test_no_log_after_the_result(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == rid)
    la.event(rid, "running", phase="plan")
    first = spool_record("o", 1, "last bytes before the result\n", "plan")
    # a launcher ships its last bytes, then reports the result: both taken
    st, data, _ = la.log(rid, 0, first)
    assert st == 200 and data["next_offset"] == len(first)
    st, data, _ = la.event(rid, "result", outcome="finished", reason="done", exit_code=0)
    assert st == 200 and data["state"] == "finished"
    before = _log(server, rid)

    # fresh bytes after the result: refused, without a next_offset (the launcher stops)
    late = spool_record("o", 2, "injected after the end\n", "plan")
    st, data, _ = la.log(rid, len(first), late)
    assert st == 409, (st, data)
    assert "next_offset" not in data and "ended" in data["error"]
    # also when the chunk starts with bytes already stored
    st, data, _ = la.log(rid, 0, first + late)
    assert st == 409, (st, data)
    # a retry of bytes already stored (its 200 was lost) is still acknowledged
    st, data, _ = la.log(rid, 0, first)
    assert st == 200 and data["next_offset"] == len(first)

    assert _log(server, rid) == before
    assert server.run(rid)["log_bytes"] == len(first)
