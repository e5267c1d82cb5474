"""The PostgreSQL driver's unit tests (test_store_pg.c) on a private PostgreSQL 15 that this
file starts (pg_cluster.py): two empty databases, and a command that restarts the cluster."""
import os
import subprocess
import sys

import pytest

import pg_cluster
from davit_harness import BUILD


@pytest.fixture(scope="module")
def cluster():
    c = pg_cluster.Cluster()
    try:
        yield c
    finally:
        c.stop()


def test_driver(cluster):
    binary = os.path.join(BUILD, "test_server_store_pg")
    env = dict(os.environ)
    env["DAVIT_TEST_PG_URL"] = cluster.create_db("driver")
    env["DAVIT_TEST_PG_URL2"] = cluster.create_db("driver_newer")
    for what in ("restart", "stop", "start"):
        env["DAVIT_TEST_PG_" + what.upper()] = "%s %s %s %s %d" % (
            sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "pg_cluster.py"), what, cluster.data, cluster.port)
    r = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=240)
    print(r.stdout[-6000:], r.stderr[-6000:])
    assert r.returncode == 0
    assert "SKIPPED" not in r.stdout + r.stderr
    # The restart moved the postmaster: the fixture stops the new one.
    cluster.pid = pg_cluster.postmaster_pid(cluster.data)


def test_server_and_migrate_on_postgres(cluster, tmp_path):
    """`davit server migrate --database` says from which version; a server on the database
    names it without its password; DAVIT_DATABASE_URL does the same as --database."""
    from davit_harness import DAVIT, Server, wait_for
    url = cluster.create_db("server")
    p = subprocess.run([DAVIT, "server", "migrate", "--database", url], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    label = "postgresql://%s@127.0.0.1:%d/server" % (pg_cluster.ROLE, cluster.port)
    assert p.stdout == "%s: schema migrated from version 0 to 8\n" % label
    p = subprocess.run([DAVIT, "server", "migrate"], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, DAVIT_DATABASE_URL=url))
    assert p.returncode == 0 and p.stdout == "%s: schema version 8, nothing to do\n" % label
    assert pg_cluster.PASSWORD not in p.stdout + p.stderr
    # A newer database: exit 1, one line, no password.
    cluster.psql("INSERT INTO schema_version(version, applied_ms) VALUES(9, 0)", db="server")
    p = subprocess.run([DAVIT, "server", "migrate", "--database", url], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1 and "newer than this davit's 8" in p.stderr, p.stderr
    assert p.stderr.count("\n") == 1 and pg_cluster.PASSWORD not in p.stderr
    cluster.psql("DELETE FROM schema_version WHERE version = 9", db="server")

    s = Server(tmp_path, "--database", url)
    try:
        pool_token, _ = s.create_pool("p")
        rid = s.submit("p")
        assert s.run(rid)["state"] == "queued"
        rows = cluster.query("server", "SELECT state FROM runs WHERE id = ?", (rid,))
        assert rows == [("queued",)]
        # PostgreSQL restarts under the server: requests fail while it is away (503: the
        # database is unavailable), then the server works again without a restart of its own.
        cluster.restart()
        answers = []

        def submitted():
            st, data, _ = s.request("POST", "/api/v1/runs", {
                "pool": "p", "image": "busybox", "phases": [{"name": "a", "commands": ["true"]}]})
            answers.append(st)
            return st == 201

        wait_for("a run submitted after PostgreSQL's restart", submitted)
        assert set(answers) <= {201, 503}, answers
        assert len(cluster.query("server", "SELECT id FROM runs")) == 2
    finally:
        code = s.stop()
    log = s.log()
    assert code == 0, log[-3000:]
    assert "store open" in log and label in log and pg_cluster.PASSWORD not in log, log[-3000:]
    assert "AddressSanitizer" not in log and "runtime error" not in log


def test_bad_database_option(tmp_path):
    from davit_harness import DAVIT
    for args, env in ((["--database", "mysql://u:hunter2@h/db"], {}),
                      ([], {"DAVIT_DATABASE_URL": "sqlite:hunter2"})):
        p = subprocess.run([DAVIT, "server", "--data-dir", str(tmp_path / "d")] + args,
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, **env))
        assert p.returncode == 2, p.stderr
        assert "expected a postgres:// or postgresql:// URL" in p.stderr
        assert "hunter2" not in p.stderr and p.stderr.count("\n") == 1


def test_password_never_shown(cluster, tmp_path):
    """No part of a URL's password in any output: passwords with # ? / % @ (libpq's parse
    decides where they end), URLs libpq refuses (its reasons quote the token), a database
    that does not answer, and a server's log (review18 H2)."""
    from davit_harness import DAVIT, Server
    cluster.create_db("secrets")
    label = "postgresql://%s@127.0.0.1:%d/secrets" % (pg_cluster.ROLE, cluster.port)
    base = "postgresql://%s:%%s@127.0.0.1:%d/secrets" % (pg_cluster.ROLE, cluster.port)
    # As written in the URL; each holds "zq" and a "pwN" that no output may show.
    written = ["zq#pw1", "zq?pw2", "zq%2Fpw3", "zq%25pw4", "zq%40pw5", "zq#pw6?x%2Fy%40z"]

    def clean(text):
        return "zq" not in text and not any("pw%d" % i in text for i in range(1, 12))

    for pw in written:
        p = subprocess.run([DAVIT, "server", "migrate", "--database", base % pw],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith(label + ": "), p.stdout
        assert clean(p.stdout + p.stderr), p.stdout + p.stderr
    refused = ["postgresql://u:zqpw7@[::1/db", base % "zq%zzpw8", "postgresql://u:zq%pw9@h/db"]
    for url in refused:
        for args in (["server", "migrate", "--database", url],
                     ["server", "--data-dir", str(tmp_path / "d"), "--database", url]):
            p = subprocess.run([DAVIT] + args, capture_output=True, text=True, timeout=60)
            assert p.returncode == 2, (url, p.stderr)
            assert "not a URL libpq can parse" in p.stderr and p.stderr.count("\n") == 1
            assert clean(p.stdout + p.stderr), p.stderr
    # Nothing listens on port 1: libpq's reason is shown, the password is not.
    p = subprocess.run([DAVIT, "server", "migrate", "--database",
                        "postgresql://u:zq#pw10@127.0.0.1:1/db"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "cannot connect" in p.stderr, p.stderr
    assert clean(p.stdout + p.stderr), p.stderr
    s = Server(tmp_path, "--database", base % "zq#pw11?x%2Fy%40z")
    try:
        s.create_pool("p")
    finally:
        code = s.stop()
    log = s.log()
    assert code == 0 and "store open" in log and label in log, log[-3000:]
    assert clean(log), log[-3000:]
