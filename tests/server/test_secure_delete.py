"""A secret that the server no longer needs leaves no trace in its database.

The server keeps a run's secrets until the run ends, then sets them to NULL.
Without `PRAGMA secure_delete`, SQLite leaves the old bytes in the freed space
of the page (or in freed overflow pages) and copies that page into the
database file at the next checkpoint; the new, shorter row does not cover
them. Debian builds SQLite with secure_delete on by default; the server must
not depend on that, so this test fails when the server turns it off.

The test ends runs both ways (canceled while queued, and finished by a
launcher), with secrets of several sizes: small, large but within the row's
page, and larger than a page (overflow pages). It stops the server cleanly,
folds any write-ahead log in, and searches the files for any 24-byte piece of
any secret.
"""

import glob
import os
import secrets
import sqlite3

from davit_fixtures import check_stopped
from davit_harness import Launcher

SIZES = (40, 1500, 9000)  # bytes of hex: in the row, most of a page, overflow pages
WINDOW = 24


def make_secrets(tag):
    return {"S%d" % n: tag + secrets.token_hex(n // 2)[:n - len(tag)] for n in SIZES}


def leftovers(data_dir, values):
    """(file, secret name) for every secret of which some WINDOW bytes remain."""
    found = []
    for path in sorted(glob.glob(os.path.join(data_dir, "davit.db*"))):
        with open(path, "rb") as f:
            data = f.read()
        for name, value in values.items():
            v = value.encode()
            if any(v[i:i + WINDOW] in data for i in range(0, len(v) - WINDOW + 1, 8)):
                found.append((os.path.basename(path), name))
    return found


def test_ended_runs_leave_no_secret_bytes_in_the_database(server):
    token, key = server.create_pool("p")
    canceled, finished = make_secrets("canceled-"), make_secrets("finished-")

    rid = server.submit("p", secrets=canceled)
    assert server.ok("POST", "/api/v1/runs/%d/cancel" % rid, {})["state"] == "canceled"

    la = Launcher(server, token, key)
    la.register()
    rid2 = server.submit("p", secrets=finished)
    m = la.poll_until(lambda m: m["type"] == "run")
    assert m["run"]["spec"]["secrets"] == finished
    assert la.event(rid2, "running", phase="plan")[0] == 200
    st, data, _ = la.event(rid2, "result", outcome="finished", exit_code=0, reason="ok")
    assert st == 200 and data["state"] == "finished"

    # While the server runs, the values are in the write-ahead log: SQLite's
    # own history, which the checkpoint at a clean stop folds in and removes.
    check_stopped(server)
    db_path = os.path.join(server.data_dir, "davit.db")
    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = db.execute("SELECT id, secrets_json FROM runs ORDER BY id").fetchall()
    finally:
        db.close()
    assert rows == [(rid, None), (rid2, None)]
    assert leftovers(server.data_dir, dict(
        [("canceled " + k, v) for k, v in canceled.items()] +
        [("finished " + k, v) for k, v in finished.items()])) == []
