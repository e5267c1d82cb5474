"""Issue 18: wake-ups across servers that share a database (src/server/fanout.c), /healthz's
database check, /metrics' replica series and the shared admin token (docs/server.md, "Several
servers").

On SQLite nothing is published: the fanout is the local notifies of before. On PostgreSQL two
servers share one database (a private cluster, tests/server/pg_cluster.py): what happens on one
wakes what waits on the other. The big replica suite (1000 runs, kill -9, a proxy) is
test_replicas.py; this one stays small. Every wait is on a condition the product promises
(a poll asleep, a watch parked: their gauges), never a sleep.
"""
import http.client
import os
import re
import shutil
import socket
import subprocess
import threading

import pytest

from davit_harness import DAVIT, Launcher, Server, openssl_key, spool_record, wait_for
from test_dispatch import metric


def metrics_text(s):
    return s.request("GET", "/metrics", token=None)[1].decode()


def server_info(s):
    m = re.search(r'^davit_server_info\{replica="([^"]*)",store="([^"]*)",version="([^"]*)"\} 1$',
                  metrics_text(s), re.M)
    assert m, "davit_server_info missing"
    return m.groups()


# ---- SQLite: one server, nothing published ----


def test_sqlite_publishes_nothing_and_names_its_replica(make_server):
    s = make_server("--replica-name", "replica-a.1")
    token, key = s.create_pool("p")
    la = Launcher(s, token, key)
    la.register()
    rid = s.submit("p")
    assert [m["run"]["id"] for m in la.poll() if m["type"] == "run"] == [rid]
    la.event(rid, "running", phase="plan")
    rec = spool_record("o", 1, "line\n", "plan")
    assert la.log(rid, 0, rec)[0] == 200
    s.ok("POST", "/api/v1/workers/%d/drain" % la.id, {})
    s.ok("POST", "/api/v1/runs/%d/cancel" % rid, {})
    s.ok("POST", "/api/v1/pools/p/cycle", {})

    assert server_info(s)[:2] == ("replica-a.1", "sqlite")
    assert metric(s, "davit_store_up") == 1
    assert metric(s, "davit_fanout_published_total") == 0
    assert metric(s, "davit_fanout_received_total") == 0
    h = s.ok("GET", "/healthz", token=None)
    assert (h["status"], h["replica"], h["store"]) == ("ok", "replica-a.1", "sqlite")
    assert "replica=replica-a.1" in s.log() or '"replica":"replica-a.1"' in s.log()


def test_replica_name_defaults_to_the_hostname_and_is_checked(make_server, tmp_path):
    s = make_server()
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:63]
    assert server_info(s)[0] == host
    env = dict(os.environ, DAVIT_REPLICA_NAME="from-env")
    p = subprocess.run([DAVIT, "server", "--data-dir", str(tmp_path / "x"), "--listen", "127.0.0.1:0",
                        "--replica-name", 'a"b'], capture_output=True, env=env, timeout=60)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert err.count("\n") == 1 and "--replica-name" in err and 'a"b' not in err, err
    p = subprocess.run([DAVIT, "server", "--data-dir", str(tmp_path / "x"), "--listen", "127.0.0.1:0"],
                       capture_output=True, env=dict(env, DAVIT_REPLICA_NAME="a b"), timeout=60)
    assert p.returncode == 2 and b"DAVIT_REPLICA_NAME" in p.stderr, p.stderr


# ---- PostgreSQL: two servers on one database ----


def postgres_built():
    p = subprocess.run([DAVIT, "server", "--help"], capture_output=True, timeout=60)
    return b"--database" in p.stdout


needs_pg = pytest.mark.skipif(not postgres_built(), reason="this davit has no PostgreSQL store")


from pg_cluster import cluster  # noqa: E402,F401  (the module's private PostgreSQL)


def same_release_key(first, data_dir):
    """Gives a replica's new data directory the first one's release-signing key."""
    os.makedirs(str(data_dir), mode=0o700, exist_ok=True)
    shutil.copy(os.path.join(first.data_dir, "release-key.pem"), str(data_dir))
    os.chmod(os.path.join(str(data_dir), "release-key.pem"), 0o600)


@pytest.fixture(scope="module")
def pair(cluster, tmp_path_factory):
    """Servers a and b on one database; b adopts the admin token a made."""
    from davit_fixtures import check_stopped
    url = cluster.create_db("fanout")
    root = tmp_path_factory.mktemp("pair")
    started = []
    try:
        for name in ("a", "b"):
            d = root / name
            d.mkdir()
            if started:  # replicas share the release-signing key (docs/server.md)
                same_release_key(started[0], d / "var")
            started.append(Server(d, "--database", url, "--replica-name", "replica-" + name,
                                  "--poll-timeout", "20s"))
        a, b = started
        assert a.token and b.token is None  # b printed none: it took the database's
        b.token = a.token
        a.url = url
        yield a, b
    finally:
        for s in started:
            check_stopped(s)


@pytest.fixture(scope="module")
def pool(pair):
    a, b = pair
    return a.create_pool("shared")


def poll_in_thread(la, got, wait_s=20):
    def run():
        st, data, _ = la.call("POST", "/api/v1/launcher/poll", {"ack": la.ack, "wait_s": wait_s})
        got.append((st, data))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def registered_on(s, pool, hostname):
    token, key = pool
    la = Launcher(s, token, key, hostname=hostname)
    la.register()
    return la


def running_on(s, pool, hostname):
    """A launcher registered on s, with a run of the pool submitted there and running."""
    la = registered_on(s, pool, hostname)
    rid = s.submit("shared")
    la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == rid)
    la.event(rid, "running", phase="plan")
    return la, rid


def asleep(s, n):
    wait_for("%d poll(s) asleep" % n, lambda: metric(s, "davit_dispatch_waiters") == n)


@needs_pg
def test_both_replicas_report_themselves(pair):
    a, b = pair
    assert server_info(a)[:2] == ("replica-a", "postgres")
    assert server_info(b)[:2] == ("replica-b", "postgres")
    assert metric(b, "davit_store_up") == 1
    assert b.ok("GET", "/healthz", token=None)["replica"] == "replica-b"
    b.ok("GET", "/api/v1/pools")  # b accepts the admin token a made


@needs_pg
def test_a_run_submitted_on_a_wakes_a_poll_on_b(pair, pool):
    a, b = pair
    la = registered_on(b, pool, "on-b")
    assert la.poll(wait_s=0) == []
    published = metric(a, "davit_fanout_published_total")
    got = []
    t = poll_in_thread(la, got)
    asleep(b, 1)
    rid = a.submit("shared")
    t.join(30)
    assert got and got[0][0] == 200, got
    assert [m["run"]["id"] for m in got[0][1]["messages"] if m["type"] == "run"] == [rid]
    assert metric(a, "davit_fanout_published_total") > published
    la.ack = max(m["id"] for m in got[0][1]["messages"])
    la.event(rid, "result", outcome="finished", exit_code=0)


@needs_pg
def test_a_cancel_through_b_reaches_a_launcher_on_a(pair, pool):
    a, b = pair
    la, rid = running_on(a, pool, "on-a")
    got = []
    t = poll_in_thread(la, got)
    asleep(a, 1)
    b.ok("POST", "/api/v1/runs/%d/cancel" % rid, {})
    t.join(30)
    assert got and got[0][0] == 200, got
    assert [m for m in got[0][1]["messages"] if m["type"] == "cancel" and m["run_id"] == rid], got
    la.event(rid, "result", outcome="canceled", exit_code=-1)


@needs_pg
def test_a_follow_on_b_sees_bytes_uploaded_through_a_and_ends(pair, pool):
    a, b = pair
    la, rid = running_on(a, pool, "logs-on-a")
    conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=60)
    conn.request("GET", "/api/v1/runs/%d/logs?follow=1" % rid,
                 headers={"Authorization": "Bearer " + b.token})
    resp = conn.getresponse()
    assert resp.status == 200
    rec = spool_record("o", 1, "first line\n", "plan")
    assert la.log(rid, 0, rec)[0] == 200
    got = b""
    while b"first line" not in got:
        got += resp.read1(65536)
    # Two chunks at once: the second within the debounce window, announced at its end.
    rec2 = spool_record("o", 2, "second line\n", "plan")
    rec3 = spool_record("o", 3, "third line\n", "plan")
    assert la.log(rid, len(rec), rec2)[0] == 200
    assert la.log(rid, len(rec) + len(rec2), rec3)[0] == 200
    while b"third line" not in got:
        got += resp.read1(65536)
    la.event(rid, "result", outcome="finished", exit_code=0)
    got += resp.read()  # ends because the run ended, told through a
    conn.close()
    assert b"second line" in got


@needs_pg
def test_the_ui_watch_on_b_moves_when_a_pool_changes_on_a(pair, pool):
    a, b = pair
    la = registered_on(a, pool, "drained-on-a")
    drained = []
    while True:
        # A change of the pool published just before (the registration's "w:", sent at most
        # 100 ms later) may answer the watch before the drain: then it watches again.
        v = b.ok("GET", "/api/v1/watch?pool=shared")["version"]
        answer = []

        def watch():
            st, data, _ = b.request("GET", "/api/v1/watch?pool=shared&since=%d&wait_s=20" % v)
            answer.append((st, data, bool(drained)))
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        wait_for("the watch parked", lambda: answer or metric(b, "davit_watch_waiters") == 1)
        if not answer:
            break
        t.join(30)
    drained.append(1)
    a.ok("POST", "/api/v1/workers/%d/drain" % la.id, {})
    t.join(30)
    assert answer and answer[0][0] == 200 and answer[0][1]["version"] != v, answer
    assert answer[0][2], "the watch answered before the drain"


@needs_pg
def test_a_different_admin_token_file_is_refused(pair, tmp_path):
    a, _ = pair
    f = tmp_path / "admin-token"
    f.write_text("dva_" + "x1y2z3w4v5u6t7s8r9q0p1o2n3m4l5k6j7" + "\n")
    os.chmod(f, 0o600)
    same_release_key(a, tmp_path / "c")
    p = subprocess.run([DAVIT, "server", "--data-dir", str(tmp_path / "c"), "--listen", "127.0.0.1:0",
                        "--database", a.url, "--admin-token-file", str(f)],
                       capture_output=True, timeout=60)
    assert p.returncode != 0
    out = (p.stdout + p.stderr).decode()
    assert "not the admin token of the database" in out, out
    assert "x1y2z3" not in out and "pg-test-secret" not in out
    a.ok("GET", "/api/v1/pools")  # the database's token is unchanged


@needs_pg
def test_replicas_first_started_together_agree_on_one_admin_token(cluster, tmp_path):
    """Two servers started at the same time on a new database: one token is printed, by the
    server that stored it first, and both accept it (the other takes it from the database)."""
    url = cluster.create_db("first_start")
    key = str(tmp_path / "release-key.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True,
                   capture_output=True)
    dirs = []
    for name in ("x", "y"):
        d = tmp_path / name
        d.mkdir()
        os.makedirs(str(d / "var"), mode=0o700)
        shutil.copy(key, str(d / "var"))
        dirs.append(d)
    servers, errors = [], []

    def start(d):
        try:
            servers.append(Server(d, "--database", url))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=start, args=(d,)) for d in dirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    from davit_fixtures import check_stopped
    try:
        assert not errors, errors
        printed = [s.token for s in servers if s.token]
        assert len(printed) == 1, printed
        for s in servers:
            s.token = printed[0]
            s.ok("GET", "/api/v1/pools")
    finally:
        for s in servers:
            check_stopped(s)


@needs_pg
def test_a_key_reset_on_a_holds_for_registrations_on_b(pair, pool):
    """b decoded the pool's key for earlier registrations (keycache): after a reset on a, the new
    key registers through b and the old one no longer does."""
    a, b = pair
    registered_on(b, pool, "old-key")  # b has the old key decoded now
    key, csr = openssl_key(a.tmp, "ed25519", "reset")
    with open(csr) as f:
        token = a.ok("POST", "/api/v1/pools/shared/reset", {"csr": f.read()})["token"]
    registered_on(b, (token, key), "new-key")
    old = Launcher(b, pool[0], pool[1], hostname="old-again")
    st, data, _ = b.request("POST", "/api/v1/launcher/register", old.register_body(old.challenge()),
                            token=None)
    assert st == 401, (st, data)


@needs_pg
def test_healthz_503_while_postgres_is_down_then_200(pair, cluster):
    """Last: it stops the module's PostgreSQL."""
    a, b = pair
    from pg_cluster import stop_pid
    stop_pid(cluster.pid)
    try:
        for s in (a, b):
            st, data, _ = s.request("GET", "/healthz", token=None)
            assert st == 503, (st, data)
            assert data["error"] == "database unreachable", data
            assert "pg-test-secret" not in str(data) and "postgres" + "ql://" not in str(data)
        assert metric(a, "davit_store_up") == 0
    finally:
        cluster.start()
    for s in (a, b):
        wait_for("healthz 200 again", lambda: s.request("GET", "/healthz", token=None)[0] == 200)
    assert metric(a, "davit_store_up") == 1
