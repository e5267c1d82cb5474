#!/usr/bin/python3
"""The cost of a /metrics scrape with many ended runs in the store.

A real davit server makes a pool; then, server stopped, RUNS finished runs
are put in its database directly (sqlite3, one transaction: going through
the API would take hours); the server starts again and GET /metrics is timed
SCRAPES times from the client (loopback, plain HTTP). Give several binaries
to compare them side by side: their scrapes are interleaved.

    bench/metrics_cost.py [--runs 100000] [--scrapes 50] BINARY...

Use release builds."""

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "server"))


def fill(server, runs):
    server.create_pool("bench")
    server.stop()
    db = sqlite3.connect(os.path.join(server.data_dir, "davit.db"))
    with db:
        (pool,) = db.execute("SELECT id FROM pools").fetchone()
        db.executemany("INSERT INTO runs(pool_id, state, spec_json, created_ms, queued_ms, ended_ms)"
                       " VALUES(?, 'finished', '{}', 0, 0, ?)",
                       ((pool, int(time.time() * 1000)) for _ in range(runs)))
    db.close()
    t0 = time.monotonic()
    server.start()
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100000)
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    import davit_harness as h
    servers, times = [], {}
    with tempfile.TemporaryDirectory(prefix="davit-bench-") as tmp:
        try:
            for i, b in enumerate(args.binaries):
                d = os.path.join(tmp, str(i))
                os.mkdir(d)
                s = h.Server(d, binary=os.path.abspath(b))
                servers.append(s)
                start = fill(s, args.runs)
                print("%s: started in %.0f ms with %d runs" % (b, start * 1000, args.runs))
                times[b] = []
            for _ in range(args.scrapes):
                for b, s in zip(args.binaries, servers):
                    t0 = time.perf_counter()
                    st, body, _ = s.request("GET", "/metrics", token=None)
                    times[b].append(time.perf_counter() - t0)
                    assert st == 200 and b'state="finished"} %d' % args.runs in body, body[:500]
        finally:
            for s in servers:
                s.stop()
    for b in args.binaries:
        t = sorted(times[b])
        print("%s: /metrics median %.2f ms, p90 %.2f ms, over %d scrapes"
              % (b, statistics.median(t) * 1000, t[int(len(t) * 0.9)] * 1000, len(t)))


if __name__ == "__main__":
    main()
