#!/usr/bin/python3
"""What one dispatch costs the server, before and after a change (docs/benchmarks.md,
"Issue 11: one commit per dispatch").

One stand-in launcher (davit-load) and sequential runs, as the row "alone" of bench/load/run:
each run is submitted while the launcher's poll waits, read by it, and finished (events
preparing, running, result). Against each build given, side by side:

  fsync     the server's fsync and fdatasync calls per run (strace -c -f on the server): exact
  callgrind instructions per run in the server (valgrind --tool=callgrind): exact up to a few
            tenths of a percent (timers, TLS randomness)
  latency   rounds interleaved between the builds, client-side dispatch p50/p99 (noisy on a
            shared machine: compare the rounds, not single numbers)

    bench/load/dispatch_cost.py --build base=/tmp/base/build --build after=build \
        [--mode fsync,callgrind,latency] [--runs 200] [--rounds 3]
"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadlib  # noqa: E402


def one(build, runs, wrap=None):
    """Runs davit-load with one launcher and `runs` runs against a fresh server of build.
    wrap(pid) starts a tracer on the server and returns a function that stops it."""
    with tempfile.TemporaryDirectory(prefix="davit-dcost-") as tmp:
        with loadlib.Server(build, tmp) as s:
            s.create_pool("a")
            stop = wrap(s.proc.pid, tmp) if wrap else None
            rc, rep, err = loadlib.run_load(build, s, [("a", 1)], runs=runs, submit_pool="a")
            extra = stop() if stop else None
        if rc != 0 or not rep:
            raise RuntimeError("davit-load failed: %s" % err[-500:])
        return rep, extra


def strace_wrap(pid, tmp):
    out = os.path.join(tmp, "strace.txt")
    p = subprocess.Popen(["strace", "-c", "-f", "-e", "trace=fdatasync,fsync", "-o", out,
                          "-p", str(pid)], stderr=subprocess.DEVNULL)
    time.sleep(1)  # strace attaches to every thread before the load starts

    def stop():
        p.send_signal(signal.SIGINT)
        p.wait(30)
        calls = 0
        with open(out) as f:
            for line in f:
                parts = line.split()
                if parts and parts[-1] in ("fsync", "fdatasync"):
                    calls += int(parts[3])
        return calls
    return stop


def fsyncs(build, runs):
    """fsyncs per run: a run of `runs` less a run of none (registration and start)."""
    _, many = one(build, runs, strace_wrap)
    _, none = one(build, 1, strace_wrap)
    return (many - none) / (runs - 1)


def callgrind(build, runs):
    """Server instructions per run (a run of `runs` less a run of 1), by callgrind."""
    totals = []
    for n in (runs, 1):
        with tempfile.TemporaryDirectory(prefix="davit-dcg-") as tmp:
            wrapper = os.path.join(tmp, "davit")
            with open(wrapper, "w") as f:
                f.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cg.%%p "
                        "--log-file=%s/vg.log %s \"$@\"\n" % (tmp, tmp,
                                                              os.path.abspath(build) + "/davit"))
            os.chmod(wrapper, 0o755)
            # davit-load from the build, the server through the wrapper
            link = os.path.join(tmp, "davit-load")
            os.symlink(os.path.abspath(build) + "/davit-load", link)
            one(tmp, n)
            [cg] = glob.glob(os.path.join(tmp, "cg.*"))
            totals.append(inclusive(cg))
    # The requests' handlers only: the background threads' work grows with the wall time,
    # which callgrind stretches and the machine's load varies.
    return {k: int((totals[0][k] - totals[1][k]) / (runs - 1)) for k in totals[0]}


FUNCS = ("on_request", "h_run_submit", "h_launcher_poll", "h_launcher_event")


def inclusive(cg):
    """Instructions in all, and inclusive in each of FUNCS."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", cg],
                         capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if not parts or not parts[0].replace(",", "").isdigit():
            continue
        n = int(parts[0].replace(",", ""))
        if "PROGRAM TOTALS" in line:
            got["total"] = n
        for f in FUNCS:
            if (":" + f + " ") in line or line.rstrip().endswith(":" + f) or (":" + f + " [") in line:
                got[f] = got.get(f, 0) + n
    return {k: got.get(k, 0) for k in ("total",) + FUNCS}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", action="append", required=True, help="label=build-dir")
    ap.add_argument("--mode", default="fsync,callgrind,latency")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    builds = [b.split("=", 1) for b in a.build]
    modes = a.mode.split(",")
    res = {}
    for label, build in builds:
        if "fsync" in modes:
            res.setdefault(label, {})["fsyncs_per_run"] = round(fsyncs(build, a.runs), 3)
        if "callgrind" in modes:
            res.setdefault(label, {})["instructions_per_run"] = callgrind(build, a.runs)
        print(json.dumps({label: res.get(label)}), flush=True)
    if "latency" in modes:
        for r in range(a.rounds):
            for label, build in builds:
                load = os.getloadavg()[0]
                rep, _ = one(build, a.runs)
                lat = rep["latency_ms"]
                row = {"round": r, "build": label, "load1": round(load, 2), "dispatch": lat}
                res.setdefault(label, {}).setdefault("latency", []).append(row)
                print(json.dumps(row), flush=True)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
