#!/usr/bin/python3
"""Dispatch latency: the time from `POST /api/v1/runs` until a launcher that is
already waiting in its long-poll gets the run back, over N runs in one go.

A real davit server is started on a loopback port in a temporary data
directory; a test launcher (tests/server/davit_harness.py, which speaks
docs/protocol.md) registers with a key made by openssl and waits in its poll.
For each run the main thread waits until the launcher is parked in the poll,
submits, and the launcher thread notes when the poll returned with the run;
the launcher then reports the run finished (outside the measured window).

    bench/dispatch_latency.py [--runs 1000] [--build-dir build]

Results go to stdout (the pid and port of the server it started first). Use a
release build: the sanitizers make everything several times slower."""

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "server"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    args = ap.parse_args()
    os.environ["DAVIT_BUILD_DIR"] = os.path.abspath(args.build_dir)
    import davit_harness as h
    h.DAVIT = os.path.join(os.environ["DAVIT_BUILD_DIR"], "davit")

    with tempfile.TemporaryDirectory(prefix="davit-bench-") as tmp:
        server = h.Server(tmp)
        try:
            run(server, h, args.runs)
        finally:
            server.stop()


def run(server, h, n):
    token, key = server.create_pool("bench")
    la = h.Launcher(server, token, key)
    la.register()
    # one keep-alive connection each, as a real launcher and CLI would use
    lconn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    sconn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    lhead = {"Authorization": "Bearer " + la.session, "Content-Type": "application/json"}
    shead = {"Authorization": "Bearer " + server.token, "Content-Type": "application/json"}
    spec = json.dumps({"pool": "bench", "image": "busybox", "phases": [{"name": "plan", "commands": ["true"]}]})

    ready = threading.Semaphore(0)
    got = {}
    arrived = threading.Event()
    done = threading.Event()

    def launcher():
        ack = 0
        while not done.is_set():
            ready.release()
            try:
                lconn.request("POST", "/api/v1/launcher/poll", json.dumps({"ack": ack, "wait_s": 20}), lhead)
                resp = json.loads(lconn.getresponse().read())
            except (OSError, http.client.HTTPException):
                return  # the server is stopping at the end of the benchmark
            now = time.perf_counter()
            if "messages" not in resp:
                return  # 503: the server is stopping at the end of the benchmark
            for m in resp["messages"]:
                ack = max(ack, m["id"])
                if m["type"] == "run":
                    rid = m["run"]["id"]
                    got[rid] = now
                    body = json.dumps({"seq": 1, "type": "result", "outcome": "finished"})
                    lconn.request("POST", "/api/v1/launcher/runs/%d/events" % rid, body, lhead)
                    lconn.getresponse().read()
                    arrived.set()
            if not resp["messages"]:
                ready.acquire()  # an empty poll: do not count it as a new wait

    t = threading.Thread(target=launcher, daemon=True)
    t.start()
    lat = []
    for i in range(n):
        ready.acquire()
        time.sleep(0.002)  # let the poll reach the server and park
        arrived.clear()
        t0 = time.perf_counter()
        sconn.request("POST", "/api/v1/runs", spec, shead)
        rid = json.loads(sconn.getresponse().read())["id"]
        arrived.wait()
        lat.append((got[rid] - t0) * 1000)
    done.set()
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    print("dispatch latency over %d runs (ms): median %.2f  p90 %.2f  p99 %.2f  min %.2f  max %.2f  mean %.2f"
          % (n, statistics.median(lat), q[89], q[98], lat[0], lat[-1], statistics.mean(lat)))
    metrics = server.request("GET", "/metrics", token=None)[1].decode()
    for line in metrics.splitlines():
        if line.startswith("davit_dispatch_latency_seconds_") and ("le=\"0.005\"" in line or "count" in line or "sum" in line):
            print("server side: " + line)


if __name__ == "__main__":
    main()
