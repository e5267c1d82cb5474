#!/usr/bin/python3
"""Benchmarks of davit-worker against bare `docker run`, measured in one go.

  1. start-up: a one-phase `true` run with the worker as PID 1, against
     `docker run --rm IMAGE true`;
  2. output: a phase printing N MiB through the worker into the spool,
     against the same bytes written straight to a bind-mounted host file.

Prints medians and their ratios. Usage: bench/worker.py [--runs 21] [--mib 256]
Needs a built worker (DAVIT_BUILD_DIR, default build/) and the runner image.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "worker"))
from davit_rundir import read_spool, result, write_rundir  # noqa: E402

IMAGE = "davit/runner-busybox"


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def worker_cmd(worker, rundir):
    return ["docker", "run", "--rm", "--network", "none", "--label", "io.davit.run=bench",
            "-v", f"{worker}:/opt/davit/bin/davit-worker:ro", "-v", f"{rundir}:/opt/davit/run",
            "--entrypoint", "/opt/davit/bin/davit-worker", IMAGE]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    build = os.environ.get("DAVIT_BUILD_DIR", os.path.join(HERE, "..", "build"))
    worker = os.path.abspath(os.path.join(build, "davit-worker"))
    tmp = tempfile.mkdtemp(prefix="davit-bench-")
    try:
        bare, davit = [], []
        for i in range(args.runs):
            # Interleaved, so that drift on the machine hits both alike.
            bare.append(timed(["docker", "run", "--rm", "--network", "none",
                               "--label", "io.davit.run=bench", IMAGE, "true"]))
            rd = os.path.join(tmp, f"start{i}")
            write_rundir(rd, [{"name": "p", "commands": ["true"]}],
                         settings={"workspace": "/tmp"})
            davit.append(timed(worker_cmd(worker, rd)))
            assert result(read_spool(os.path.join(rd, "spool"))).kv("outcome") == "finished"
        b, d = statistics.median(bare), statistics.median(davit)
        print(f"start-up, one-phase `true` run, median of {args.runs}:")
        print(f"  docker run --rm IMAGE true   {b * 1000:8.1f} ms")
        print(f"  worker as PID 1              {d * 1000:8.1f} ms   ratio {d / b:.2f}")

        n = args.mib
        gen = f"head -c {n * 1048576} /dev/zero"
        bare, davit = [], []
        for i in range(5):
            out = os.path.join(tmp, f"direct{i}")
            os.makedirs(out)
            bare.append(timed(["docker", "run", "--rm", "--network", "none",
                               "--label", "io.davit.run=bench", "-v", f"{out}:/out", IMAGE,
                               "sh", "-c", f"{gen} > /out/file"]))
            rd = os.path.join(tmp, f"out{i}")
            write_rundir(rd, [{"name": "p", "commands": [gen]}], settings={"workspace": "/tmp"})
            davit.append(timed(worker_cmd(worker, rd)))
            assert os.path.getsize(os.path.join(rd, "spool")) > n * 1048576
            shutil.rmtree(out)
            shutil.rmtree(rd)
        b, d = statistics.median(bare), statistics.median(davit)
        print(f"output, {n} MiB from one phase, median of 5:")
        print(f"  straight to a host file      {b * 1000:8.1f} ms  {n / b:7.1f} MiB/s")
        print(f"  through the worker's spool   {d * 1000:8.1f} ms  {n / d:7.1f} MiB/s"
              f"   ratio {d / b:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
