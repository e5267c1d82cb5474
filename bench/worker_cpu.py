#!/usr/bin/python3
"""Instructions davit-worker spends moving a phase's output into the spool,
counted by valgrind's callgrind (exact and repeatable on a noisy machine),
for this build and, side by side, a baseline build.

The glibc build of the worker (davit-worker-glibc, the same sources) runs
directly, not in a container, with a phase printing N MiB; only the worker
process is counted (the phase's own processes are not traced). The run
directory gets a run key when the worker knows of one (it names the key
file in its messages); a worker older than the spool's MACs gets none.

With --writes N the phase writes its output N bytes at a time (dd obs=N), as
a program printing line by line does; the worker then reads many small pieces.

Usage: bench/worker_cpu.py [--mib 64] [--writes N] [--build build] [--baseline DIR]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "worker"))
from davit_rundir import write_rundir  # noqa: E402


def instructions(build, mib, writes=0):
    worker = os.path.join(build, "davit-worker-glibc")
    with open(worker, "rb") as f:
        keyed = b"gave this run no key" in f.read()
    with tempfile.TemporaryDirectory(prefix="davit-bench-cpu.") as tmp:
        rundir = os.path.join(tmp, "run")
        os.mkdir(rundir)
        # 64 KiB lines: what a phase printing a large file looks like.
        cmd = f"head -c {mib * 1024 * 1024} /dev/zero | tr '\\0' x | fold -w 65535"
        if writes:
            cmd += f" | dd obs={writes} 2>/dev/null"
        write_rundir(rundir, [{"name": "out", "commands": [cmd]}],
            settings={"workspace": tmp}, key=keyed)
        p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                            worker, "--run-dir", rundir], capture_output=True, text=True)
        m = re.search(r"Collected : (\d+)", p.stderr)
        with open(os.path.join(rundir, "spool"), "rb") as f:
            records = sum(1 for line in f if line.startswith(b"@o "))
        if p.returncode != 0 or not m:
            sys.exit(f"{worker}: exit {p.returncode}: {p.stderr[-2000:]}")
        return int(m.group(1)), records


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--writes", type=int, default=0, help="bytes per write of the phase")
    ap.add_argument("--build", default=os.environ.get("DAVIT_BUILD_DIR", "build"))
    ap.add_argument("--baseline", help="another build directory to compare with")
    a = ap.parse_args()
    new, recs = instructions(a.build, a.mib, a.writes)
    print(f"{a.build}: {new:,} instructions for {a.mib} MiB ({new / (a.mib << 20):.2f}/byte), "
          f"{recs:,} output records")
    if a.baseline:
        base, brecs = instructions(a.baseline, a.mib, a.writes)
        print(f"{a.baseline}: {base:,} instructions for {a.mib} MiB "
              f"({base / (a.mib << 20):.2f}/byte), {brecs:,} output records")
        print(f"ratio: {new / base:.3f}")


if __name__ == "__main__":
    main()
