"""Storage that does not only grow: deleting runs, retention by age and by
total log size, the space given back to the filesystem, and run list pages."""

import os
import re
import sqlite3
import subprocess

import pytest

import pg_cluster
from davit_harness import DAVIT, Launcher, spool_record, wait_for


def db_bytes(server):
    """The size of the database files: davit.db and its WAL."""
    total = 0
    for name in ("davit.db", "davit.db-wal"):
        try:
            total += os.path.getsize(os.path.join(server.data_dir, name))
        except FileNotFoundError:
            pass
    return total


def finished_run(server, la, nbytes, outcome="finished"):
    """A run taken by la that uploads about nbytes of log and ends; returns (id, spool)."""
    rid = server.submit("p")
    la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == rid)
    assert la.event(rid, "running", phase="plan")[0] == 200
    # incompressible text, so that the database holds every byte
    records = [spool_record("o", i + 1, os.urandom(24 * 1024).hex() + "\n", "plan")
               for i in range(max(1, nbytes // (48 * 1024)))]
    off = 0
    for i in range(0, len(records), 8):
        st, data, _ = la.log(rid, off, b"".join(records[i:i + 8]))
        assert st == 200, (st, data)
        off = data["next_offset"]
    assert la.event(rid, "result", outcome=outcome, exit_code=0)[0] == 200
    return rid, b"".join(records)


def launcher(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    return la


def test_run_list_pages(server):
    launcher(server)
    ids = [server.submit("p") for _ in range(57)]
    # the default page is 50, newest first, with where the next one starts
    page = server.ok("GET", "/api/v1/runs")
    assert [r["id"] for r in page["runs"]] == ids[::-1][:50]
    assert page["next"] == ids[7]
    page = server.ok("GET", "/api/v1/runs?before=%d" % page["next"])
    assert [r["id"] for r in page["runs"]] == ids[6::-1] and page["next"] is None
    # walking pages of 5 gives every run exactly once
    seen, before = [], None
    while True:
        q = "/api/v1/runs?limit=5" + ("&before=%d" % before if before else "")
        page = server.ok("GET", q)
        assert len(page["runs"]) <= 5
        seen += [r["id"] for r in page["runs"]]
        before = page["next"]
        if before is None:
            break
    assert seen == ids[::-1]
    # a page that ends exactly at the last run says there is no next one
    page = server.ok("GET", "/api/v1/runs?limit=57")
    assert len(page["runs"]) == 57 and page["next"] is None
    page = server.ok("GET", "/api/v1/runs?limit=1000&before=%d" % ids[3])
    assert [r["id"] for r in page["runs"]] == ids[2::-1] and page["next"] is None
    # filters page too
    server.ok("POST", "/api/v1/runs/%d/cancel" % ids[10], {})
    server.ok("POST", "/api/v1/runs/%d/cancel" % ids[20], {})
    page = server.ok("GET", "/api/v1/runs?state=canceled&limit=1")
    assert [r["id"] for r in page["runs"]] == [ids[20]] and page["next"] == ids[20]
    page = server.ok("GET", "/api/v1/runs?state=canceled&limit=1&before=%d" % page["next"])
    assert [r["id"] for r in page["runs"]] == [ids[10]]
    assert server.ok("GET", "/api/v1/runs?pool=p&limit=2")["next"] == ids[-2]
    # bad values: 400 with a message that does not repeat them
    for q in ("limit=0", "limit=1001", "limit=abc", "limit=-5", "limit=", "limit=1e3",
              "before=0", "before=xyz9", "before=-3", "state=weird%22value",
              "limit=99999999999999999999999"):
        st, data, _ = server.request("GET", "/api/v1/runs?" + q)
        assert st == 400, (q, st, data)
        key = q.split("=", 1)[0]
        assert data["error"] == {"limit": "limit: a number from 1 to 1000",
                                 "before": "before: a run id (a positive integer)"}.get(
            key, data["error"]), (q, data)
        assert "weird" not in data["error"] and "\n" not in data["error"], (q, data)


def test_errors_do_not_echo_requests(server):
    for method, path in [("GET", "/api/v1/runs/zz%3Cscript%3E"), ("GET", "/nosuch-endpoint-xyz"),
                         ("PATCH", "/api/v1/runs")]:
        st, data, _ = server.request(method, path)
        assert st in (404, 405), (path, st)
        assert "script" not in data["error"] and "xyz" not in data["error"] and \
            "PATCH" not in data["error"], data
    st, data, _ = server.request("POST", "/api/v1/pools", {"name": "x", "csr": "y", "secretkey1": 1})
    assert st == 400 and "secretkey1" not in data["error"], data
    st, data, _ = server.request("POST", "/api/v1/pools", b"{\"name\": tokenxyz}")
    assert st == 400 and "tokenxyz" not in data["error"], data
    server.create_pool("p")
    for phases, named in [([{"name": "a", "commands": ["x"], "timeout": "tenxyz"}], "timeout"),
                          ([{"name": "dupxyz", "commands": ["x"]}] * 2, "is already the name")]:
        st, data, _ = server.request("POST", "/api/v1/runs",
                                     {"pool": "p", "image": "busybox", "phases": phases})
        assert st == 400 and named in data["error"] and "xyz" not in data["error"], data


def test_delete_run(server):
    la = launcher(server)
    done, _ = finished_run(server, la, 200 * 1024)
    queued = server.submit("p")
    # not ended: 409, and the run is untouched
    st, data, _ = server.request("DELETE", "/api/v1/runs/%d" % queued)
    assert st == 409 and "has not ended" in data["error"], data
    assert server.run(queued)["state"] == "queued"
    # admin only
    st, _, _ = server.request("DELETE", "/api/v1/runs/%d" % done, token=la.session)
    assert st == 401
    st, _, _ = server.request("DELETE", "/api/v1/runs/%d" % done, token=None)
    assert st == 401
    # deleted: 204 without a body; gone from show, list and logs
    st, body, headers = server.request("DELETE", "/api/v1/runs/%d" % done)
    assert st == 204 and body == b"", (st, body)
    assert server.request("GET", "/api/v1/runs/%d" % done)[0] == 404
    assert server.request("GET", "/api/v1/runs/%d/logs" % done)[0] == 404
    assert done not in [r["id"] for r in server.ok("GET", "/api/v1/runs")["runs"]]
    assert server.request("DELETE", "/api/v1/runs/%d" % done)[0] == 404
    assert server.request("DELETE", "/api/v1/runs/999999")[0] == 404
    assert server.request("DELETE", "/api/v1/runs/abc")[0] == 404
    # its launcher cannot write to it any more
    assert la.log(done, 0, spool_record("o", 1, "late\n"))[0] == 404
    # a canceled run can go, and the other runs stay
    server.ok("POST", "/api/v1/runs/%d/cancel" % queued, {})
    assert server.request("DELETE", "/api/v1/runs/%d" % queued)[0] == 204
    assert server.ok("GET", "/api/v1/runs")["runs"] == []
    # its log chunks are freed by the sweep the delete started
    wait_for("the deleted logs freed", lambda: log_chunks(server) == 0)


def log_chunks(server):
    """Log chunks left in the database (read through a second connection)."""
    return server.db_query("SELECT count(*) FROM log_chunks")[0][0]


def make_old_database(path):
    """What a davit from before retention left: no incremental vacuum."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA auto_vacuum=NONE")
        db.execute("VACUUM")
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    finally:
        db.close()


@pytest.mark.skipif(pg_cluster.on_postgres(), reason="the SQLite file's pages (PostgreSQL: "
                    "autovacuum)")
def test_retention_gives_space_back(make_server):
    server = make_server()
    la = launcher(server)
    runs = [finished_run(server, la, 2 * 1024 * 1024)[0] for _ in range(6)]
    keep = server.submit("p")  # not ended: retention never touches it
    assert server.request("DELETE", "/api/v1/runs/%d" % runs[0])[0] == 204
    server.stop()
    make_old_database(os.path.join(server.data_dir, "davit.db"))
    full = db_bytes(server)
    assert full > 9 * 1024 * 1024, full

    # retention by age, with the server converting the database first
    server.extra = ["--retention-max-age", "1s"]
    server.start()
    wait_for("expired runs deleted",
             lambda: [r["id"] for r in server.ok("GET", "/api/v1/runs")["runs"]] == [keep])
    wait_for("the files shrunk", lambda: db_bytes(server) < 1024 * 1024)
    assert server.run(keep)["state"] == "queued"
    wait_for("the sweep's log line", lambda: "retention sweep runs_deleted=" in server.log())
    server.stop()
    db = sqlite3.connect(os.path.join(server.data_dir, "davit.db"))
    try:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert db.execute("SELECT count(*) FROM log_chunks").fetchone()[0] == 0
    finally:
        db.close()


def logs_deleted_logged(server):
    """The logs the retention sweeps say they deleted, added up."""
    return sum(int(m) for m in re.findall(r"retention sweep .*?logs_deleted=(\d+)", server.log()))


def test_retention_by_total_log_size(make_server, monkeypatch):
    # the SPACELIFT_ alias works like DAVIT_
    monkeypatch.setenv("SPACELIFT_RETENTION_MAX_LOG_BYTES", "5MiB")
    monkeypatch.setenv("DAVIT_RETENTION_MAX_AGE", "0")
    server = make_server()
    la = launcher(server)
    made = [finished_run(server, la, 2 * 1024 * 1024) for _ in range(5)]
    ids = [m[0] for m in made]

    def total():
        return sum(server.run(i)["log_bytes"] for i in ids)
    wait_for("logs under the cap", lambda: total() <= 5 * 1024 * 1024)
    runs = [server.run(i) for i in ids]
    # the oldest logs went; every run stays; the newest logs are whole
    assert [r["log_bytes"] == 0 for r in runs] == [True, True, True, False, False], runs
    assert all(r["log_deleted_at"] for r in runs[:3]) and not runs[4]["log_deleted_at"]
    assert server.request("GET", "/api/v1/runs/%d/logs?format=raw" % ids[0])[1] == b""
    assert server.request("GET", "/api/v1/runs/%d/logs?format=raw" % ids[4])[1] == made[4][1]
    # a follow of a deleted log ends at once
    assert server.request("GET", "/api/v1/runs/%d/logs?follow=1" % ids[0], timeout=20)[0] == 200
    wait_for("the deleted logs freed", lambda: log_chunks(server) == chunks_of(server, ids[3:]))
    # A result kicks a sweep, so the three may go in one sweep or over several:
    # their log lines add up to three.
    wait_for("the sweeps' log lines", lambda: logs_deleted_logged(server) == 3)
    if pg_cluster.on_postgres():
        return  # no SQLite file: PostgreSQL's autovacuum frees the space
    db = sqlite3.connect("file:%s/davit.db?mode=ro" % server.data_dir, uri=True, timeout=30)
    try:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # a new database: incremental
    finally:
        db.close()


def chunks_of(server, ids):
    return server.db_query("SELECT count(*) FROM log_chunks WHERE run_id IN (%s)"
                           % ",".join(str(int(i)) for i in ids))[0][0]


def test_retention_options_are_checked(tmp_path):
    cases = [
        (["--retention-max-age", "ten"], {}, "--retention-max-age"),
        (["--retention-max-age", "200d"], {}, "--retention-max-age"),
        (["--retention-max-log-bytes", "10XB"], {}, "--retention-max-log-bytes"),
        ([], {"SPACELIFT_RETENTION_MAX_LOG_BYTES": "lots"}, "SPACELIFT_RETENTION_MAX_LOG_BYTES"),
        ([], {"DAVIT_RETENTION_MAX_AGE": "soon"}, "DAVIT_RETENTION_MAX_AGE"),
    ]
    for args, env, named in cases:
        e = {k: v for k, v in os.environ.items() if "RETENTION" not in k}
        e.update(env)
        p = subprocess.run([DAVIT, "server", "--data-dir", str(tmp_path / "d"), "--listen",
                            "127.0.0.1:0"] + args, env=e, capture_output=True, timeout=60)
        assert p.returncode == 2, (args, env, p.returncode, p.stderr)
        assert named in p.stderr.decode(), (args, p.stderr)
    p = subprocess.run([DAVIT, "server", "--help"], capture_output=True, timeout=60)
    assert b"--retention-max-age" in p.stdout and b"--retention-max-log-bytes" in p.stdout
