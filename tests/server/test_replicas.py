"""Issue 18: several `davit server` replicas on one PostgreSQL, through the real protocol.

Two and three servers share a private PostgreSQL 15 (pg_cluster.py: its own directory, socket and
port, stopped by its pid); stand-in launchers (davit_harness.Launcher) speak docs/protocol.md:

  - a run submitted on one server is dispatched through another and canceled through a third;
  - 1000 runs submitted across three servers to 20 stand-ins spread over them: every run ends
    exactly once and none is handed out twice, counted from the stand-ins' side and from the API;
  - a server killed with SIGKILL while stand-ins long-poll it through tcp_proxy.py (a test tool
    standing in for a load balancer): they reach a survivor through the proxy, resume or register
    again with their launcher_id, finish their runs, and the logs are whole, byte for byte;
  - PostgreSQL stopped at once (immediate shutdown) mid-run and started again: /healthz is 503 on
    every server, then 200; what a stand-in was told was stored (results, log chunks) is there;
  - `davit server migrate --database` on an empty database and on one at the previous version.

Every wait is on a condition the servers promise; the limits only stop a hung test."""

import codecs
import collections
import http.client
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time

import pytest

import pg_cluster
from davit_harness import DAVIT, Launcher, Server, spool_record, wait_for
from davit_fixtures import check_stopped
from tcp_proxy import TcpProxy
from test_dispatch import metric, poll_in_thread

# ---- the database and the replicas ----


from pg_cluster import cluster  # noqa: E402,F401  (the module's private PostgreSQL)


@pytest.fixture
def db_name(request):
    return "replicas_" + request.node.name[len("test_"):][:40]


@pytest.fixture
def database(cluster, db_name):
    """A new database of the module's cluster; its URL."""
    return cluster.create_db(db_name)


def versions(cluster, db_name):
    out = cluster.psql("SELECT version FROM schema_version ORDER BY version", db=db_name)
    return [int(v) for v in out.split()]


class Replicas:
    """Servers on one database (add() starts one), sharing what replicas must share (docs/server.md, "Several
    servers"): the admin token (one --admin-token-file) and the release-signing key (the first
    server's release-key.pem, copied into the others' data directories before they start)."""

    def __init__(self, url, tmp, *extra):
        self.url = url
        self.tmp = tmp
        self.extra = extra
        self.servers = []
        self.admin = "dva_" + secrets.token_urlsafe(32)
        self.token_file = os.path.join(tmp, "admin-token")
        with open(self.token_file, "w") as f:
            f.write(self.admin + "\n")
        os.chmod(self.token_file, 0o600)

    def add(self):
        d = os.path.join(self.tmp, "srv%d" % len(self.servers))
        os.mkdir(d)
        data = os.path.join(d, "var")
        if self.servers:
            os.mkdir(data, 0o700)
            shutil.copy2(os.path.join(self.servers[0].data_dir, "release-key.pem"), data)
        s = Server(d, "--database", self.url, "--admin-token-file", self.token_file, *self.extra,
                   data_dir=data)
        s.token = self.admin  # never printed: it comes from the file
        self.servers.append(s)
        return s

    def stop(self):
        for s in self.servers:
            check_stopped(s)


@pytest.fixture
def replicas(database, tmp_path):
    made = []

    def make(n, *extra):
        r = Replicas(database, str(tmp_path), *extra)
        made.append(r)  # stopped at the end, also when a later one fails to start
        for _ in range(n):
            r.add()
        return r.servers

    yield make
    for r in made:
        r.stop()


class Via:
    """The servers as a launcher behind a load balancer sees them: every request goes to the
    proxy's port (davit_harness.Server's own request code, pointed elsewhere)."""

    request = Server.request
    ok = Server.ok

    def __init__(self, server, port):
        self.tmp = server.tmp  # where the stand-in's signatures are written
        self.token = server.token
        self.port = port


def claims_in_logs(servers):
    """run id -> how many times any server's log says it assigned it (runs_log_claims)."""
    n = collections.Counter()
    for s in servers:
        for line in s.log().splitlines():
            if "run state" in line and "state=assigned" in line:
                for f in line.split():
                    if f.startswith("run="):
                        n[int(f[4:].strip('"'))] += 1
    return n


def runs_of(msgs):
    return [m["run"]["id"] for m in msgs if m["type"] == "run"]


# ---- across servers ----


def test_submit_on_one_dispatch_through_another_cancel_through_a_third(replicas):
    a, b, c = replicas(3)
    token, key = a.create_pool("p")
    la = Launcher(b, token, key, capacity=2)
    la.register()
    assert la.poll(wait_s=0) == []

    # A long-poll asleep on B wakes for a run queued on A.
    got = {}
    t = poll_in_thread(la, got)
    wait_for("the poll asleep on B", lambda: metric(b, "davit_dispatch_waiters") == 1)
    rid = a.submit("p", commands=["echo across"])
    t.join(30)
    assert runs_of(got[la.id]) == [rid]
    la.ack = max(m["id"] for m in got[la.id])
    assert la.event(rid, "running", phase="plan")[0] == 200
    r = c.run(rid)
    assert r["state"] == "running" and r["worker"] == la.id

    # Canceled through C: the poll asleep on B wakes with the cancel.
    got.clear()
    t = poll_in_thread(la, got)
    wait_for("the poll asleep on B", lambda: metric(b, "davit_dispatch_waiters") == 1)
    c.ok("POST", "/api/v1/runs/%d/cancel" % rid, {})
    t.join(30)
    assert [(m["type"], m.get("run_id")) for m in got[la.id]] == [("cancel", rid)]
    la.ack = got[la.id][0]["id"]
    assert la.event(rid, "result", outcome="canceled")[0] == 200
    for s in (a, b, c):
        r = s.run(rid)
        assert r["state"] == "canceled" and r["attempts"] == 1, r
    # a queued run canceled on C never reaches the launcher on B
    queued = a.submit("p", commands=["never"])
    c.ok("POST", "/api/v1/runs/%d/cancel" % queued, {})
    assert b.run(queued)["state"] == "canceled"
    assert queued not in runs_of(la.poll(wait_s=1))


class StandIn(threading.Thread):
    """A stand-in launcher in a thread: it polls its server, and finishes each run it is given
    (running, then result), recording every run it was handed."""

    def __init__(self, server, token, key, i, claims, errors, stop):
        super().__init__(daemon=True)
        self.la = Launcher(server, token, key, hostname="standin-%d" % i, capacity=2)
        self.la.register()
        self.claims, self.errors, self.stop = claims, errors, stop
        self.results = []  # runs whose result the server accepted

    def run(self):
        try:
            while not self.stop.is_set():
                for rid in runs_of(self.la.poll(wait_s=1)):
                    self.claims[rid].append(self.la.id)
                    for kw in ({"type_": "running", "phase": "plan"},
                               {"type_": "result", "outcome": "finished", "exit_code": 0}):
                        st, data, _ = self.la.event(rid, **kw)
                        if st != 200:
                            self.errors.append((rid, kw["type_"], st, data))
                    self.results.append(rid)
        except Exception as e:  # the test fails on it, with what happened
            self.errors.append(("stand-in", self.la.id, repr(e)))


def test_1000_runs_across_three_servers_and_20_launchers_end_once_each(replicas):
    servers = replicas(3)
    token, key = servers[0].create_pool("p")
    claims, errors, stop = collections.defaultdict(list), [], threading.Event()
    standins = [StandIn(servers[i % 3], token, key, i, claims, errors, stop) for i in range(20)]
    for s in standins:
        s.start()
    submitted = collections.defaultdict(list)

    def submit(s, n):
        try:
            for _ in range(n):
                submitted[s.port].append(s.submit("p", commands=["true"]))
        except Exception as e:  # shown by the assertion below
            errors.append(("submit", s.port, repr(e)))

    subs = [threading.Thread(target=submit, args=(s, n)) for s, n in zip(servers, (334, 333, 333))]
    for t in subs:
        t.start()
    for t in subs:
        t.join(120)
    ids = sorted(i for v in submitted.values() for i in v)
    assert len(ids) == 1000 and len(set(ids)) == 1000, errors

    # the stand-ins' side first: every result accepted (or an error to show)
    wait_for("1000 results accepted", lambda: sum(len(s.results) for s in standins) >= 1000
             or errors, limit=120)
    stop.set()
    for s in standins:
        s.join(30)
    assert errors == []
    # the stand-ins' side: each run handed out once, to one stand-in
    assert sorted(claims) == ids
    assert {rid: who for rid, who in claims.items() if len(who) != 1} == {}
    # the API's side, asked of every server: finished, on its first attempt, by its claimer
    seen = []
    for s in servers:
        listed = s.ok("GET", "/api/v1/runs?pool=p&limit=1000")["runs"]
        seen.append({r["id"]: (r["state"], r["attempts"], r["worker"]) for r in listed})
    assert seen[0] == seen[1] == seen[2]
    assert seen[0] == {rid: ("finished", 1, claims[rid][0]) for rid in ids}
    # the servers' side: one "assigned" line per run over the three logs
    assert claims_in_logs(servers) == collections.Counter(ids)
    # and the work was spread: stand-ins of every server took runs
    took = collections.Counter(who[0] for who in claims.values())
    for k in range(3):
        assert sum(took[s.la.id] for s in standins[k::3]) > 0, "no run through server %d" % k


def log_chunks(n, tag):
    """n spool records of a few KB each, as a worker writes them: the chunks a launcher ships."""
    return [spool_record("o", i + 1, ("%s line %d " % (tag, i)) * 200 + "\n", "plan")
            for i in range(n)]


def held_poll(la, out):
    """A long-poll sent from a thread; out gets its answer, or the exception that ended it."""
    def run():
        try:
            out.append(la.call("POST", "/api/v1/launcher/poll", {"ack": la.ack, "wait_s": 20}))
        except (OSError, http.client.HTTPException) as e:
            out.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_launchers_behind_a_proxy_survive_a_server_killed(replicas):
    a, b = replicas(2)
    token, key = b.create_pool("p")
    with TcpProxy([("127.0.0.1", a.port), ("127.0.0.1", b.port)]) as proxy:
        lb = Via(a, proxy.port)
        las = [Launcher(lb, token, key, hostname="behind-lb-%d" % i) for i in range(4)]
        for la in las:
            la.register()  # through the proxy: A, its first live backend
        ids = [b.submit("p", commands=["echo %d" % i]) for i in range(4)]
        run, chunks, acked = {}, {}, {}
        for la in las:  # capacity 1: one run each
            rid = la.poll_until(lambda m: m["type"] == "run")["run"]["id"]
            run[la.id] = rid
            chunks[rid] = log_chunks(6, "run %d" % rid)
            assert la.event(rid, "running", phase="plan")[0] == 200
            off = 0
            for c in chunks[rid][:3]:  # the first half, acknowledged by A
                st, data, _ = la.log(rid, off, c)
                assert st == 200 and data["next_offset"] == off + len(c), (st, data)
                off += len(c)
            acked[rid] = off
        assert sorted(run.values()) == ids and proxy.accepted[1] == 0

        # Every stand-in long-polls A through the proxy; A dies.
        answers = {la.id: [] for la in las}
        threads = [held_poll(la, answers[la.id]) for la in las]
        wait_for("4 polls asleep on A", lambda: metric(a, "davit_dispatch_waiters") == 4)
        a.kill9()
        for t in threads:
            t.join(30)
        for la in las:
            assert len(answers[la.id]) == 1 and isinstance(answers[la.id][0], Exception), answers

        # Two carry on with their sessions (the store holds them), two restarted and register
        # again with their launcher_id; all reach B through the proxy and keep their runs.
        old_ids = [la.id for la in las]
        for la in las[2:]:
            la.ack = 0
            la.register()
        assert [la.id for la in las] == old_ids
        for la in las:
            rid = run[la.id]
            assert set(runs_of(la.poll(wait_s=0))) <= {rid}  # nothing new, nobody else's run
            # where to resume: the last chunk acknowledged by A, acknowledged again by B
            last = chunks[rid][2]
            st, data, _ = la.log(rid, acked[rid] - len(last), last)
            assert st == 200 and data["next_offset"] == acked[rid], (st, data)
            off = acked[rid]
            for c in chunks[rid][3:]:
                st, data, _ = la.log(rid, off, c)
                assert st == 200, (st, data)
                off += len(c)
            assert la.event(rid, "result", outcome="finished", exit_code=0)[0] == 200
        assert proxy.accepted[1] > 0
    for la in las:
        rid = run[la.id]
        r = b.run(rid)
        assert (r["state"], r["attempts"], r["worker"]) == ("finished", 1, la.id), r
        st, raw, _ = b.request("GET", "/api/v1/runs/%d/logs?format=raw" % rid)
        assert st == 200 and raw == b"".join(chunks[rid]), rid


# ---- PostgreSQL stops and starts ----


def healthz(s):
    try:
        return s.request("GET", "/healthz", token=None, timeout=10)[0]
    except (OSError, http.client.HTTPException):
        return None


def test_postgres_killed_mid_run_and_restarted_loses_nothing_acknowledged(cluster, replicas):
    a, b = replicas(2)
    token, key = a.create_pool("p")
    la = Launcher(b, token, key, capacity=2)
    la.register()
    done, going = a.submit("p"), a.submit("p")
    assert sorted(runs_of(la.poll())) == [done, going]
    spool = {rid: log_chunks(4, "run %d" % rid) for rid in (done, going)}
    for rid in (done, going):
        assert la.event(rid, "running", phase="plan")[0] == 200
    # acknowledged before the stop: all of done's log and its result, half of going's log
    off = 0
    for c in spool[done]:
        assert la.log(done, off, c)[0] == 200
        off += len(c)
    assert la.event(done, "result", outcome="finished", exit_code=0)[0] == 200
    off = 0
    for c in spool[going][:2]:
        assert la.log(going, off, c)[0] == 200
        off += len(c)

    # PostgreSQL's immediate shutdown (what pg_ctl stop -m immediate sends its postmaster): no
    # checkpoint, every connection cut; the next start recovers from the WAL.
    pg_cluster.stop_pid(cluster.pid, signal.SIGQUIT)
    for s in (a, b):
        wait_for("/healthz 503 on %d" % s.port, lambda: healthz(s) == 503)
    # the outage is an error a launcher retries (503: the database is unavailable), never a
    # success; a submit too
    st, _, _ = la.log(going, off, spool[going][2])
    assert st == 503, st
    st, data, _ = a.request("POST", "/api/v1/runs", {
        "pool": "p", "image": "busybox", "phases": [{"name": "a", "commands": ["true"]}]})
    assert st == 503 and "database is unavailable" in data["error"], (st, data)
    cluster.start()
    for s in (a, b):
        wait_for("/healthz 200 on %d" % s.port, lambda: healthz(s) == 200)

    for s in (a, b):
        r = s.run(done)
        assert (r["state"], r["log_bytes"]) == ("finished", sum(map(len, spool[done]))), r
        assert s.request("GET", "/api/v1/runs/%d/logs?format=raw" % done)[1] == b"".join(spool[done])
        assert s.request("GET", "/api/v1/runs/%d/logs?format=raw" % going)[1] == b"".join(
            spool[going][:2])
    # the launcher carries on where its acknowledgements say
    for c in spool[going][2:]:
        st, data, _ = la.log(going, off, c)
        assert st == 200, (st, data)
        off += len(c)
    assert la.event(going, "result", outcome="finished", exit_code=0)[0] == 200
    assert a.request("GET", "/api/v1/runs/%d/logs?format=raw" % going)[1] == b"".join(spool[going])
    # and the servers dispatch again, across
    later = a.submit("p")
    la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == later)


# ---- migrations ----


def migrate(url):
    return subprocess.run([DAVIT, "server", "migrate", "--database", url], capture_output=True,
                          text=True, timeout=120)


def test_migrate_an_empty_database(cluster, db_name, database, tmp_path):
    p = migrate(database)
    assert p.returncode == 0, (p.stdout, p.stderr)
    latest = versions(cluster, db_name)
    assert latest == list(range(1, len(latest) + 1)) and len(latest) >= 7, latest
    again = migrate(database)  # nothing left to do
    assert again.returncode == 0, again.stderr
    assert versions(cluster, db_name) == latest
    s = Server(tmp_path, "--database", database)
    try:
        s.create_pool("p")
        assert [p["name"] for p in s.ok("GET", "/api/v1/pools")["pools"]] == ["p"]
    finally:
        check_stopped(s)


SOURCE = os.environ.get("DAVIT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def pg_client(prog, *args, stdin=None):
    """psql or pg_dump as a client of the database URL in args (as its role, not postgres)."""
    p = subprocess.run([os.path.join(pg_cluster.PG_BIN, prog), "-X" if prog == "psql" else "-w"]
                       + list(args), input=stdin, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, (prog, p.stderr)
    return p.stdout


def schema_file_migrations():
    """PostgreSQL's migrations as src/server/store_pg_schema.c writes them: {N: SQL}, and the
    version table's statement. Its C string literals, decoded."""
    with open(os.path.join(SOURCE, "src", "server", "store_pg_schema.c")) as f:
        text = f.read()
    found = {}
    for name, body in re.findall(
            r'static const char (migration_\d+|version_table)\[\]\s*=\s*((?:\s*"(?:[^"\\]|\\.)*")+)\s*;',
            text):
        lits = re.findall(r'"((?:[^"\\]|\\.)*)"', body)
        found[name] = "".join(codecs.decode(lit, "unicode_escape") for lit in lits)
    return found


def make_previous_version(url, version):
    """The database a davit at schema `version` leaves: its migrations applied in order, each
    in one transaction with its schema_version row, as store_pg_schema.c's migrate_step does."""
    m = schema_file_migrations()
    assert all("migration_%d" % n in m for n in range(1, version + 1)), sorted(m)
    for n in range(1, version + 1):
        sql = "%s;\n%s;\nINSERT INTO schema_version(version, applied_ms) VALUES(%d, %d);\n" % (
            m["migration_%d" % n].rstrip().rstrip(";"), m["version_table"], n,
            int(time.time() * 1000))
        pg_client("psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", "-", stdin=sql)


def schema(url):
    """pg_dump's schema of the database, without the random key of its \\restrict lines."""
    return [line for line in pg_client("pg_dump", url, "--schema-only").splitlines()
            if not line.startswith(("\\restrict", "\\unrestrict"))]


PREVIOUS = 7  # the schema before issue 18's migration 8


def test_migrate_a_database_at_the_previous_version(cluster, db_name, database, tmp_path):
    # What a davit at version 7 stored: rows made by today's server in another database, copied
    # into one whose schema is migrations 1 to 7 of the schema file.
    full = cluster.create_db(db_name + "_new")
    os.mkdir(tmp_path / "old")
    s = Server(tmp_path / "old", "--database", full)
    try:
        la = Launcher(s, *s.create_pool("p"))
        la.register()
        done = s.submit("p")
        assert [done] == runs_of(la.poll()) and la.event(done, "running", phase="plan")[0] == 200
        spool = spool_record("o", 1, "from version %d\n" % PREVIOUS, "plan")
        assert la.log(done, 0, spool)[0] == 200
        assert la.event(done, "result", outcome="finished", exit_code=0)[0] == 200
        queued = s.submit("p", commands=["echo later"])
        runs_before = s.ok("GET", "/api/v1/runs")["runs"]
        admin = s.token
    finally:
        check_stopped(s)
    latest = versions(cluster, db_name + "_new")
    assert latest[-1] > PREVIOUS, latest

    make_previous_version(database, PREVIOUS)
    assert versions(cluster, db_name) == list(range(1, PREVIOUS + 1))
    rows = pg_client("pg_dump", full, "--data-only", "-t", "meta", "-t", "pools", "-t", "launchers",
                     "-t", "sessions", "-t", "runs", "-t", "log_chunks", "-t", "messages",
                     "-t", "api_tokens")
    pg_client("psql", database, "-q", "-v", "ON_ERROR_STOP=1", "-f", "-", stdin=rows)

    p = migrate(database)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert str(PREVIOUS) in p.stdout + p.stderr, (p.stdout, p.stderr)  # says where it started
    assert versions(cluster, db_name) == latest
    # the same schema as a database that was new at this version
    assert schema(database) == schema(full)

    # another server: with the key the copied rows say the servers sign with
    os.makedirs(tmp_path / "new" / "var", 0o700)
    shutil.copy2(os.path.join(s.data_dir, "release-key.pem"), tmp_path / "new" / "var")
    s = Server(tmp_path / "new", "--database", database)
    s.token = admin  # the admin token is in the database (not printed again)
    try:
        assert s.ok("GET", "/api/v1/runs")["runs"] == runs_before
        assert s.request("GET", "/api/v1/runs/%d/logs?format=raw" % done)[1] == spool
        la.server = s  # the launcher's session was kept: the queued run goes to it
        m = la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == queued)
        assert m["run"]["spec"]["phases"][0]["commands"] == ["echo later"]
        assert s.submit("p") > queued  # new ids after the copied ones
    finally:
        check_stopped(s)
