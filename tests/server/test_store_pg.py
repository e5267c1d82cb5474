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
    env["DAVIT_TEST_PG_RESTART"] = "%s %s restart %s %d" % (
        sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pg_cluster.py"),
        cluster.data, cluster.port)
    r = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=240)
    print(r.stdout[-6000:], r.stderr[-6000:])
    assert r.returncode == 0
    assert "SKIPPED" not in r.stdout + r.stderr
    # The restart moved the postmaster: the fixture stops the new one.
    cluster.pid = pg_cluster.postmaster_pid(cluster.data)
