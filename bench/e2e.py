#!/usr/bin/python3
"""End-to-end benchmarks of davit, each against a baseline measured in the
same run (issue 5):

  1. submit -> first log line stored at the server, and submit -> result,
     for a one-phase `echo hi` run, against `docker run --rm IMAGE echo hi`;
  2. idle RSS of a connected launcher;
  3. RSS of the server with that launcher connected.

Usage: bench/e2e.py [--runs 50] [--build-dir build]   (release build advised)
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def follow(srv, run_id):
    """Streams the run's raw log; returns (first stdout record, end) times."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    conn.request("GET", f"/api/v1/runs/{run_id}/logs?follow=1&format=raw",
                 headers={"Authorization": f"Bearer {srv.token}"})
    resp = conn.getresponse()
    first, seen = None, b""
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        seen += chunk
        if first is None and b"@o " in seen:
            first = time.perf_counter()
    end = time.perf_counter()
    conn.close()
    return first, end


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    args = ap.parse_args()
    os.environ["DAVIT_BUILD_DIR"] = os.path.abspath(args.build_dir)
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
    from davit_e2e import IMAGE, Stack, make_pool, wait_for  # noqa: E402

    stack = Stack()
    try:
        srv = stack.server
        token, key = make_pool(srv, stack.tmp, "bench")
        la = stack.launcher("bench", token, key)
        wait_for(lambda: srv.workers("bench"), what="the launcher")
        time.sleep(2)
        idle_launcher = rss_kb(la.proc.pid)
        server_rss = rss_kb(srv.proc.pid)

        bare, first, result = [], [], []
        spec = {"pool": "bench", "image": IMAGE, "phases": [{"name": "p", "commands": ["echo hi"]}]}
        body = json.dumps(spec)
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "echo", "hi"],
                           check=True, capture_output=True)
            bare.append(time.perf_counter() - t0)

            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            t0 = time.perf_counter()
            conn.request("POST", "/api/v1/runs", body=body,
                         headers={"Authorization": f"Bearer {srv.token}",
                                  "Content-Type": "application/json"})
            run_id = json.loads(conn.getresponse().read())["id"]
            conn.close()
            t_first, t_end = follow(srv, run_id)
            assert srv.run(run_id)["state"] == "finished"
            first.append(t_first - t0)
            result.append(t_end - t0)
        server_busy = rss_kb(srv.proc.pid)

        b = statistics.median(bare)
        f = statistics.median(first)
        r = statistics.median(result)
        print(f"medians over {args.runs} runs, one-phase `echo hi`:")
        print(f"  docker run --rm IMAGE echo hi        {b * 1000:8.1f} ms")
        print(f"  davit: submit -> first log line      {f * 1000:8.1f} ms   ratio {f / b:.2f}")
        print(f"  davit: submit -> result              {r * 1000:8.1f} ms   ratio {r / b:.2f}")
        print(f"idle launcher RSS                      {idle_launcher / 1024:8.1f} MiB")
        print(f"server RSS, launcher connected         {server_rss / 1024:8.1f} MiB "
              f"(after the runs: {server_busy / 1024:.1f} MiB)")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
