"""A private PostgreSQL 15 cluster for tests (issue 18): never the system's cluster, never a
fixed port.

initdb runs once per build tree, into a template directory cached under it (pg-template/);
each cluster is a copy of it in its own temporary directory, served by its own postmaster on a
free loopback port and a unix socket in that directory, with fsync on (the durability tests
mean it). Tests run as root and PostgreSQL refuses root: every PostgreSQL program runs as the
user postgres (runuser). A cluster is stopped by its postmaster's pid and its directory removed,
also when a test fails (stop() in a finally, and at the process's exit).

As a program, for a C test that needs PostgreSQL restarted, stopped or started under it:
    python3 pg_cluster.py restart|stop|start DATA_DIR PORT
"""

import atexit
import fcntl
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_USER = "postgres"
ROLE = "davit"  # the role that owns each test database: not a superuser, as in docs/server.md
PASSWORD = "pg-test-secret"  # in every URL, so tests can check that no log shows it
BUILD = os.environ.get("DAVIT_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
START_LIMIT = 60  # seconds: only stops a hung start; a start takes well under one


def _as_postgres(args, **kw):
    r = subprocess.run(["runuser", "-u", PG_USER, "--"] + args, capture_output=True, **kw)
    if r.returncode != 0:
        err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace")
        raise RuntimeError("%s failed (exit %d): %s" % (os.path.basename(args[0]), r.returncode,
                                                       err.strip()[-2000:]))
    return r


def _chown_tree(path):
    pw = pwd.getpwnam(PG_USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)


def template_dir(build=BUILD):
    """The initdb'd data directory of this build tree, made once (under a lock: ctest may run
    several modules at once)."""
    build = os.path.abspath(build)
    tpl = os.path.join(build, "pg-template")
    with open(os.path.join(build, "pg-template.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(tpl, "PG_VERSION")):
            return tpl
        shutil.rmtree(tpl, ignore_errors=True)
        # initdb writes as postgres: into a directory of its own under /tmp, then copied here.
        work = tempfile.mkdtemp(prefix="davit-initdb-")
        try:
            _chown_tree(work)
            data = os.path.join(work, "data")
            _as_postgres([PG_BIN + "/initdb", "-D", data, "-U", PG_USER, "--auth=trust",
                          "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"])
            shutil.copytree(data, tpl + ".new", symlinks=True)
            os.rename(tpl + ".new", tpl)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tpl


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One postmaster on a copy of the template. url(db) gives a libpq URL."""

    def __init__(self, build=BUILD):
        self.dir = tempfile.mkdtemp(prefix="davit-pg-")
        self.pid = None
        try:
            os.chmod(self.dir, 0o755)
            self.data = os.path.join(self.dir, "data")
            self.sock = os.path.join(self.dir, "sock")
            shutil.copytree(template_dir(build), self.data, symlinks=True)
            os.mkdir(self.sock)
            _chown_tree(self.dir)
            os.chmod(self.data, 0o700)
            self.port = free_port()
            self.start()
            self.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (ROLE, PASSWORD))
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)

    def start(self):
        """Starts the postmaster and waits until it accepts connections."""
        log = os.path.join(self.dir, "postgres.log")
        start_cluster(self.data, self.sock, self.port, log)
        self.pid = postmaster_pid(self.data)

    def psql(self, sql, db="postgres"):
        r = _as_postgres([PG_BIN + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sock,
                          "-p", str(self.port), "-d", db, "-At", "-c", sql], text=True)
        return r.stdout

    def create_db(self, name):
        """A new database owned by the test role; its URL."""
        self.psql('CREATE DATABASE "%s" OWNER %s' % (name, ROLE))
        return self.url(name)

    def ensure_db(self, name):
        if not self.psql("SELECT 1 FROM pg_database WHERE datname = '%s'" % name).strip():
            self.create_db(name)
        return self.url(name)

    def query(self, db, sql, params=()):
        """Rows of sql (? placeholders bound to params, quoted by psql) on database db, as
        tuples: integers as int, NULL as None, the rest as text. Run as the superuser."""
        parts = sql.split("?")
        if len(parts) - 1 != len(params):
            raise ValueError("%d placeholders, %d params" % (len(parts) - 1, len(params)))
        text = parts[0] + "".join(":'p%d'%s" % (i, parts[i + 1]) for i in range(len(params)))
        args = [PG_BIN + "/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-p",
                str(self.port), "-d", db, "-At", "-F", "\x1f", "-R", "\x1e", "-P",
                "null=\x02"]
        for i, v in enumerate(params):
            args += ["-v", "p%d=%s" % (i, v)]
        out = _as_postgres(args, input=text + ";\n", text=True).stdout
        rows = []
        for rec in out.split("\x1e"):
            rec = rec.strip("\n")
            if not rec:
                continue
            rows.append(tuple(None if f == "\x02" else int(f) if f.lstrip("-").isdigit() else f
                              for f in rec.split("\x1f")))
        return rows

    def dump(self, db):
        """Every row of db as SQL text (pg_dump --data-only)."""
        return _as_postgres([PG_BIN + "/pg_dump", "--data-only", "-h", self.sock, "-p",
                             str(self.port), db], text=True).stdout

    def url(self, db):
        return "postgresql://%s:%s@127.0.0.1:%d/%s" % (ROLE, PASSWORD, self.port, db)

    def restart(self):
        """Stops PostgreSQL (fast: clients are cut off) and starts it again, same port."""
        stop_pid(self.pid)
        self.start()

    def kill9(self):
        """PostgreSQL dies at once; start() brings it back (crash recovery)."""
        stop_pid(self.pid, signal.SIGKILL)
        # Its backends exit when they see the postmaster gone; the next start waits for them.

    def stop(self):
        if self.pid:
            stop_pid(self.pid)
            self.pid = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def start_cluster(data, sock, port, log):
    """pg_ctl start -w: it returns once the server accepts connections (or fails)."""
    opts = ("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s "
            "-c fsync=on -c max_connections=200 -c shared_buffers=16MB "
            "-c log_min_messages=warning" % (port, sock))
    _as_postgres([PG_BIN + "/pg_ctl", "start", "-w", "-t", str(START_LIMIT), "-D", data,
                  "-l", log, "-o", opts])


def postmaster_pid(data):
    with open(os.path.join(data, "postmaster.pid")) as f:
        return int(f.readline())


def stop_pid(pid, sig=signal.SIGINT):
    """SIGINT is PostgreSQL's fast shutdown. Waits until the postmaster is gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    end = time.time() + START_LIMIT
    while time.time() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # Not our child (pg_ctl started it): poll for its exit.
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


_shared = None


def shared():
    """This process's cluster (one per test module: ctest runs one pytest process per file)."""
    global _shared
    if _shared is None:
        _shared = Cluster()
    return _shared


def on_postgres():
    """Whether this suite runs its servers on PostgreSQL (ctest's *_pg runs set it)."""
    return os.environ.get("DAVIT_TEST_DATABASE") == "postgres"


def database_name(data_dir):
    """The database of the servers of data_dir when the suite runs on PostgreSQL."""
    return "t_" + hashlib.sha256(os.path.abspath(data_dir).encode()).hexdigest()[:24]


def database_args(data_dir):
    """The options that put a server of data_dir on PostgreSQL when the suite runs there: one
    database per data directory, so that a server restarted on it finds its data. [] on
    SQLite."""
    if not on_postgres():
        return []
    return ["--database", shared().ensure_db(database_name(data_dir))]


def db_query(data_dir, sql, params=()):
    """sql's rows on the database of the servers of data_dir, whichever it is: the SQLite file
    (through another connection, as SQLite allows) or PostgreSQL. A write's rows are what its
    RETURNING gives. Portable SQL with ? placeholders."""
    if on_postgres():
        return shared().query(database_name(data_dir), sql, params)
    import sqlite3
    db = sqlite3.connect(os.path.join(data_dir, "davit.db"), timeout=30)
    try:
        with db:
            return [tuple(r) for r in db.execute(sql, params).fetchall()]
    finally:
        db.close()


def db_dump(data_dir):
    """Everything the database of data_dir holds, as text (to look for what must not be
    there)."""
    if on_postgres():
        return shared().dump(database_name(data_dir))
    import sqlite3
    db = sqlite3.connect(os.path.join(data_dir, "davit.db"))
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def stop_shared():
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in ("restart", "stop", "start"):
        data, port = sys.argv[2], int(sys.argv[3])
        if sys.argv[1] != "start":
            stop_pid(postmaster_pid(data))
        if sys.argv[1] != "stop":
            base = os.path.dirname(data)
            start_cluster(data, os.path.join(base, "sock"), port,
                          os.path.join(base, "postgres.log"))
    else:
        sys.exit("usage: pg_cluster.py restart|stop|start DATA_DIR PORT")


@pytest.fixture(scope="module")
def cluster():
    """One private PostgreSQL for a test module (import it: `from pg_cluster import cluster`);
    each test makes the databases it needs."""
    c = Cluster()
    try:
        yield c
    finally:
        c.stop()
