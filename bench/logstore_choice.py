#!/usr/bin/python3
"""Where a run's log should live, measured side by side on one disk (issue 11):

  blob: rows of 256 KiB in SQLite, as davit stores them (WAL, synchronous=FULL,
        secure_delete, incremental auto-vacuum: davit's pragmas), one
        transaction per upload;
  file: an append-only file per run, the upload written and fdatasync'ed
        before a one-row SQLite transaction records the new end (the offset
        that says the bytes exist);

for ingest (uploads of --piece MiB, each durable before the next, as the
server acknowledges them) against `dd bs=1M conv=fdatasync`, and for
read-back of the whole log in 1 MiB pieces (blob: sqlite3 incremental blob
reads). No HTTP: the storage alone. Rounds alternate, medians printed.

Usage: bench/logstore_choice.py [--mib 500] [--piece 8] [--rounds 3] [--dir /var/tmp]
"""
import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from logs import dd_secs  # noqa: E402

ROW = 256 * 1024


def open_db(path):
    db = sqlite3.connect(path, isolation_level=None)
    for p in ("PRAGMA auto_vacuum=INCREMENTAL", "PRAGMA journal_mode=WAL",
              "PRAGMA synchronous=FULL", "PRAGMA secure_delete=ON"):
        db.execute(p)
    db.execute("CREATE TABLE IF NOT EXISTS runs(id INTEGER PRIMARY KEY, log_bytes INTEGER)")
    db.execute("CREATE TABLE IF NOT EXISTS log_chunks(run_id INTEGER, off INTEGER, data BLOB,"
               " PRIMARY KEY(run_id, off))")
    db.execute("INSERT OR IGNORE INTO runs VALUES(1, 0)")
    return db


def blob_ingest(db, piece, n):
    off = 0
    for _ in range(n):
        db.execute("BEGIN IMMEDIATE")
        for i in range(0, len(piece), ROW):
            db.execute("INSERT INTO log_chunks VALUES(1, ?, ?)", (off + i, piece[i:i + ROW]))
        off += len(piece)
        db.execute("UPDATE runs SET log_bytes = ? WHERE id = 1", (off,))
        db.execute("COMMIT")
    return off


def blob_read(db, total):
    got = 0
    rows = db.execute("SELECT rowid, length(data) FROM log_chunks WHERE run_id = 1 ORDER BY off")
    for rowid, n in rows.fetchall():
        with db.blobopen("log_chunks", "data", rowid, readonly=True) as b:
            got += len(b.read(n))
    assert got == total
    return got


def file_ingest(db, path, piece, n):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    off = 0
    try:
        for _ in range(n):
            os.pwrite(fd, piece, off)
            os.fdatasync(fd)  # the data first, then the offset that says it exists
            off += len(piece)
            db.execute("UPDATE runs SET log_bytes = ? WHERE id = 1", (off,))
    finally:
        os.close(fd)
    return off


def file_read(path, total):
    fd = os.open(path, os.O_RDONLY)
    got = 0
    try:
        while True:
            b = os.pread(fd, 1 << 20, got)
            if not b:
                break
            got += len(b)
    finally:
        os.close(fd)
    assert got == total
    return got


def timed(fn, *args):
    t = time.monotonic()
    n = fn(*args)
    return n, time.monotonic() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=500)
    ap.add_argument("--piece", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    piece = os.urandom(1 << 20) * a.piece
    n = a.mib // a.piece
    rs = {k: [] for k in ("dd", "blob_in", "blob_out", "file_in", "file_out")}
    for r in range(a.rounds):
        tmp = tempfile.mkdtemp(prefix="davit-bench-store.", dir=a.dir)
        try:
            rs["dd"].append(dd_secs(os.path.join(tmp, "dd"), a.mib))
            db = open_db(os.path.join(tmp, "blob.db"))
            total, t = timed(blob_ingest, db, piece, n)
            rs["blob_in"].append(t)
            subprocess.run(["sync"], check=True)
            rs["blob_out"].append(timed(blob_read, db, total)[1])
            db.close()
            db = open_db(os.path.join(tmp, "file.db"))
            total, t = timed(file_ingest, db, os.path.join(tmp, "run.log"), piece, n)
            rs["file_in"].append(t)
            rs["file_out"].append(timed(file_read, os.path.join(tmp, "run.log"), total)[1])
            db.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print("round %d: %s" % (r + 1, {k: round(v[-1], 2) for k, v in rs.items()}), flush=True)
    mb = a.mib * 1048576 / 1e6
    med = {k: statistics.median(v) for k, v in rs.items()}
    print("%d MiB in uploads of %d MiB, median of %d rounds" % (a.mib, a.piece, a.rounds))
    print("dd conv=fdatasync: %.0f MB/s" % (mb / med["dd"]))
    for k in ("blob", "file"):
        print("%s: ingest %.0f MB/s (%.2fx dd), read-back %.0f MB/s" % (
            k, mb / med[k + "_in"], statistics.median(
                d / i for d, i in zip(rs["dd"], rs[k + "_in"])), mb / med[k + "_out"]))


if __name__ == "__main__":
    main()
