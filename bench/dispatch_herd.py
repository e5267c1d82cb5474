#!/usr/bin/python3
"""Dispatch with many launchers waiting in the same pool: what one run costs.

A real davit server; N stand-in launchers (tests/server/davit_harness.py)
register in one pool and each waits in its long-poll on its own keep-alive
connection, in its own thread. RUNS runs are submitted one at a time; a
launcher that gets one reports it finished and polls again. Reported: the
time from submit until a launcher has the run (client side), the server's
CPU time per run (/proc/PID/stat: every poll a run wakes costs a write
transaction), and davit_dispatch_wakeups_total per run when the server has it.
Several binaries are measured one after the other, alternating, ROUNDS times.

    bench/dispatch_herd.py [--launchers 200] [--runs 200] [--rounds 1] BINARY...

Use release builds."""

import argparse
import http.client
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "server"))


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(server, name):
    text = server.request("GET", "/metrics", token=None)[1].decode()
    m = re.search(r"^%s (\d+)$" % name, text, re.M)
    return int(m.group(1)) if m else None


def measure(h, binary, nl, nruns):
    with tempfile.TemporaryDirectory(prefix="davit-bench-") as tmp:
        server = h.Server(tmp, "--max-connections-per-address", "0", binary=binary)
        try:
            return run(h, server, nl, nruns)
        finally:
            server.stop()


def run(h, server, nl, nruns):
    token, key = server.create_pool("bench")
    launchers = [h.Launcher(server, token, key, hostname="l%d" % i) for i in range(nl)]
    for la in launchers:
        la.register()
    got, arrived, done = {}, threading.Event(), threading.Event()

    def loop(la):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        head = {"Authorization": "Bearer " + la.session, "Content-Type": "application/json"}
        ack = 0
        while not done.is_set():
            try:
                conn.request("POST", "/api/v1/launcher/poll", json.dumps({"ack": ack, "wait_s": 20}), head)
                resp = json.loads(conn.getresponse().read())
            except (OSError, http.client.HTTPException, ValueError):
                return
            now = time.perf_counter()
            for m in resp.get("messages", []):
                ack = max(ack, m["id"])
                if m["type"] == "run":
                    rid = m["run"]["id"]
                    got[rid] = now
                    conn.request("POST", "/api/v1/launcher/runs/%d/events" % rid,
                                 json.dumps({"seq": 1, "type": "result", "outcome": "finished"}), head)
                    conn.getresponse().read()
                    arrived.set()

    threads = [threading.Thread(target=loop, args=(la,), daemon=True) for la in launchers]
    for t in threads:
        t.start()
    time.sleep(2)  # every poll parked
    sconn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    shead = {"Authorization": "Bearer " + server.token, "Content-Type": "application/json"}
    spec = json.dumps({"pool": "bench", "image": "busybox", "phases": [{"name": "plan", "commands": ["true"]}]})
    w0, c0 = metric(server, "davit_dispatch_wakeups_total"), cpu_s(server.proc.pid)
    lat = []
    for _ in range(nruns):
        arrived.clear()
        t0 = time.perf_counter()
        sconn.request("POST", "/api/v1/runs", spec, shead)
        rid = json.loads(sconn.getresponse().read())["id"]
        while rid not in got:
            arrived.wait(60)
            arrived.clear()
        lat.append((got[rid] - t0) * 1000)
        time.sleep(0.02)  # the winner parks again
    cpu = cpu_s(server.proc.pid) - c0
    w1 = metric(server, "davit_dispatch_wakeups_total")
    done.set()
    q = statistics.quantiles(lat, n=100)
    wake = "%.2f" % ((w1 - w0) / nruns) if w0 is not None else "n/a"
    return statistics.median(lat), q[89], q[98], cpu * 1000 / nruns, wake


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--launchers", type=int, default=200)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    import davit_harness as h
    for _ in range(args.rounds):
        for b in args.binaries:
            med, p90, p99, cpu, wake = measure(h, os.path.abspath(b), args.launchers, args.runs)
            print("%s launchers=%d runs=%d: dispatch median %.2f ms p90 %.2f p99 %.2f;"
                  " server CPU %.2f ms/run; wake-ups/run %s"
                  % (b, args.launchers, args.runs, med, p90, p99, cpu, wake), flush=True)


if __name__ == "__main__":
    main()
