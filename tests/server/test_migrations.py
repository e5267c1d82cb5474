"""Schema migrations through the real server: a database made before the
version table is upgraded at start with its rows intact, and a database
newer than the binary is refused (docs/server.md, "Schema versions")."""

import os
import re
import sqlite3
import subprocess

from davit_harness import DAVIT, Launcher, spool_record


def versions(server):
    db = sqlite3.connect(os.path.join(server.data_dir, "davit.db"))
    try:
        return [v for (v,) in db.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        db.close()


def tables(server):
    db = sqlite3.connect(os.path.join(server.data_dir, "davit.db"))
    try:
        return {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


def make_unversioned(server, before_retention):
    """Turns the stopped server's database into what a davit before the
    version table left: 9fc3353's schema, or bd39bd4's (before retention),
    with an open registration challenge in the table they kept them in."""
    db = sqlite3.connect(os.path.join(server.data_dir, "davit.db"))
    try:
        db.execute("DROP TABLE schema_version")
        db.execute("CREATE TABLE IF NOT EXISTS challenges(id TEXT PRIMARY KEY, pool_id TEXT NOT NULL,"
                   " nonce TEXT NOT NULL, expires_ms INTEGER NOT NULL)")
        db.execute("INSERT INTO challenges VALUES('c', 'pool-0011223344556677', 'n', 1)")
        # what migrations after the version table added, which those davits lacked
        db.execute("ALTER TABLE launchers DROP COLUMN ephemeral")
        db.execute("DROP INDEX runs_launcher_ended")
        db.execute("DROP INDEX runs_nonce")
        db.execute("ALTER TABLE runs DROP COLUMN run_nonce")
        db.execute("ALTER TABLE runs DROP COLUMN sealed_key")
        if before_retention:
            db.execute("DROP INDEX runs_ended")
            db.execute("DROP TABLE log_purge")
            db.execute("ALTER TABLE runs DROP COLUMN log_deleted_ms")
        db.commit()
    finally:
        db.close()


def upgrade(make_server, before_retention):
    server = make_server()
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    done = server.submit("p")
    la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == done)
    assert la.event(done, "running", phase="plan")[0] == 200
    spool = spool_record("o", 1, "hello from before the upgrade\n", "plan")
    assert la.log(done, 0, spool)[0] == 200
    assert la.event(done, "result", outcome="finished", exit_code=0)[0] == 200
    queued = server.submit("p", commands=["echo later"])
    runs_before = server.ok("GET", "/api/v1/runs")["runs"]
    every_version = versions(server)  # what a new database gets
    server.stop()
    make_unversioned(server, before_retention)

    server.start()
    assert versions(server) == every_version
    # migration 3: challenges are kept in memory, their old table is gone
    assert "challenges" not in tables(server)
    assert server.ok("GET", "/api/v1/runs")["runs"] == runs_before
    assert server.request("GET", "/api/v1/runs/%d/logs?format=raw" % done)[1] == spool
    assert [p["name"] for p in server.ok("GET", "/api/v1/pools")["pools"]] == ["p"]
    # the old launcher's session still works, and the queued run goes to it
    m = la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == queued)
    assert m["run"]["spec"]["phases"][0]["commands"] == ["echo later"]
    return server


def test_database_from_before_retention_is_upgraded(make_server):
    server = upgrade(make_server, before_retention=True)
    # once when the database was new, once at the upgrade
    assert server.log().count("migration=\"migration 2 (retention") == 2


def test_database_from_before_versions_is_recognised(make_server):
    server = upgrade(make_server, before_retention=False)
    assert server.log().count("migration=\"migration 2 (retention") == 1  # when it was new


def test_newer_database_is_refused(make_server):
    server = make_server()
    server.stop()
    db = sqlite3.connect(os.path.join(server.data_dir, "davit.db"))
    try:
        db.execute("INSERT INTO schema_version VALUES(99, 0)")
        db.commit()
    finally:
        db.close()
    p = subprocess.run([DAVIT, "server", "--data-dir", server.data_dir, "--listen", "127.0.0.1:0"],
                       capture_output=True, timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr)
    err = p.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(r"schema version 99, newer than this davit's \d+:", err), err
    # refused, not changed
    assert versions(server)[-1] == 99
