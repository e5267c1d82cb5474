"""A secret that the server no longer needs leaves no trace in its database.

The server keeps a run's secrets until the run ends, then sets them to NULL.
Without `PRAGMA secure_delete`, SQLite leaves the old bytes in the freed space
of the page (or in freed overflow pages) and copies that page into the
database file at the next checkpoint; the new, shorter row does not cover
them. Debian builds SQLite with secure_delete on by default; the server must
not depend on that, so this test fails when the server turns it off.

Since sealing (docs/secrets.md) a new run's plaintext secrets never reach the store; runs stored
by a davit from before sealing still carry them in secrets_json until they end. The tests make
such runs as that davit left them (the server stopped, the column set, the server started), and
check that ending them still leaves no trace.

The test ends runs both ways (canceled while queued, and finished by a
launcher), with secrets of several sizes: small, large but within the row's
page, and larger than a page (overflow pages). It stops the server cleanly,
folds any write-ahead log in, and searches the files for any 24-byte piece of
any secret.
"""

import glob
import json
import os
import secrets
import sqlite3
import stat
import subprocess

from davit_fixtures import check_stopped
from davit_harness import DAVIT, Launcher, wait_for

SIZES = (40, 1500, 9000)  # bytes of hex: in the row, most of a page, overflow pages
WINDOW = 24


def make_secrets(tag):
    return {"S%d" % n: tag + secrets.token_hex(n // 2)[:n - len(tag)] for n in SIZES}


def leftovers(data_dir, values, paths=None):
    """(file, secret name) for every secret of which some WINDOW bytes remain, in the database's
    files or in the paths given."""
    found = []
    for path in sorted(paths if paths is not None else glob.glob(os.path.join(data_dir, "davit.db*"))):
        with open(path, "rb") as f:
            data = f.read()
        for name, value in values.items():
            v = value.encode()
            if any(v[i:i + WINDOW] in data for i in range(0, len(v) - WINDOW + 1, 8)):
                found.append((os.path.relpath(path, data_dir), name))
    return found


def legacy_runs(server, *values):
    """Queued runs with plaintext secrets (one per dict in values) as a davit from before sealing
    stored them. Returns their ids."""
    ids = [server.submit("p") for _ in values]
    server.stop()
    db = sqlite3.connect(os.path.join(server.data_dir, "davit.db"))
    try:
        for rid, v in zip(ids, values):
            db.execute("UPDATE runs SET secrets_json = ? WHERE id = ?", (json.dumps(v), rid))
        db.commit()
    finally:
        db.close()
    server.start()
    return ids


def start_run(server, la, rid, values):
    """la takes run rid, whose secrets are values, and starts it."""
    m = la.poll_until(lambda m: m["type"] == "run")
    assert m["run"]["id"] == rid
    assert m["run"]["spec"]["secrets"] == values
    assert la.event(rid, "running", phase="plan")[0] == 200
    return rid


def finish_run(la, rid):
    st, data, _ = la.event(rid, "result", outcome="finished", exit_code=0, reason="ok")
    assert st == 200 and data["state"] == "finished"


def end_two_runs(server):
    """Ends two runs with secrets: one canceled while queued, one finished by a launcher.
    Returns (canceled id, finished id, all their secrets by "<how> <name>")."""
    token, key = server.create_pool("p")
    canceled, finished = make_secrets("canceled-"), make_secrets("finished-")
    rid, rid2 = legacy_runs(server, canceled, finished)
    assert server.ok("POST", "/api/v1/runs/%d/cancel" % rid, {})["state"] == "canceled"
    la = Launcher(server, token, key)
    la.register()
    start_run(server, la, rid2, finished)
    finish_run(la, rid2)
    values = dict([("canceled " + k, v) for k, v in canceled.items()] +
                  [("finished " + k, v) for k, v in finished.items()])
    return rid, rid2, values


def test_ended_runs_leave_no_secret_bytes_in_the_database(server):
    rid, rid2, values = end_two_runs(server)

    # The database itself, after a clean stop and a final checkpoint; the next
    # test searches every file while the server runs.
    check_stopped(server)
    db_path = os.path.join(server.data_dir, "davit.db")
    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = db.execute("SELECT id, secrets_json FROM runs ORDER BY id").fetchall()
    finally:
        db.close()
    assert rows == [(rid, None), (rid2, None)]
    assert leftovers(server.data_dir, values) == []


def files_of(data_dir):
    """Every file under the data directory: the database, its WAL and SHM, keys, releases."""
    for root, _, names in os.walk(data_dir):
        for name in names:
            yield os.path.join(root, name)


def wait_secrets_gone(server, values):
    """Waits until no file of the data directory holds any piece of the secrets."""
    last = []

    def clean():
        last[:] = leftovers(server.data_dir, values, list(files_of(server.data_dir)))
        return not last

    try:
        wait_for("the secrets to leave the data directory", clean, limit=30)
    finally:
        print("left over:", last)


def test_ended_runs_secrets_leave_the_wal_while_the_server_runs(server):
    """No clean stop here: the server promises that an ended run's secrets leave every file of
    the data directory, the WAL included, within one retention sweep (5 s) of the run's end.
    Before, they stayed in the WAL until SQLite happened to checkpoint and the WAL was reused."""
    _, _, values = end_two_runs(server)
    wait_secrets_gone(server, values)
    check_stopped(server)


def test_a_result_takes_the_secrets_out_of_the_wal_at_once(make_server):
    """A launcher's result ends the run: its secrets leave every file of the data directory at
    once, not at the next retention sweep. The sweep interval is made far longer than the test's
    deadline, so only the kick that the result gives the sweep can pass it."""
    server = make_server("--sweep-interval", "10m")
    token, key = server.create_pool("p")
    values = make_secrets("result-")
    (rid,) = legacy_runs(server, values)
    la = Launcher(server, token, key)
    la.register()
    start_run(server, la, rid, values)
    # Written to the WAL with the run: what the result must take out again.
    assert leftovers(server.data_dir, values, list(files_of(server.data_dir))) != []
    finish_run(la, rid)
    wait_secrets_gone(server, values)


def test_server_files_are_private(server):
    """Everything the server writes in its data directory is 0600 (or 0700): the database, its
    WAL and SHM, the release key, the published releases."""
    token, key = server.create_pool("p")
    rid = server.submit("p", env={"S": "x" * 40})
    server.ok("POST", "/api/v1/runs/%d/cancel" % rid, {})
    modes = {os.path.relpath(p, server.data_dir): stat.S_IMODE(os.stat(p).st_mode)
             for p in files_of(server.data_dir)}
    assert "davit.db-wal" in modes and "release-key.pem" in modes, modes
    assert {p: oct(m) for p, m in modes.items() if m & 0o077} == {}


def test_readable_database_is_refused(server):
    """A database that group or others may read is refused at start, in one line that names the
    file and the chmod that fixes it; the server does not change it itself."""
    check_stopped(server)
    db = os.path.join(server.data_dir, "davit.db")
    for mode in (0o644, 0o640):
        os.chmod(db, mode)
        p = subprocess.run([DAVIT, "server", "--data-dir", server.data_dir, "--listen", "127.0.0.1:0"],
                           capture_output=True, timeout=30)
        assert p.returncode == 1, (p.returncode, p.stderr)
        err = p.stderr.decode()
        assert len(err.strip().splitlines()) == 1, err
        assert db in err and "chmod 600 " + db in err and "%04o" % mode in err, err
        assert stat.S_IMODE(os.stat(db).st_mode) == mode
    os.chmod(db, 0o600)
    server.start()
    assert server.ok("GET", "/api/v1/pools")["pools"] == []
