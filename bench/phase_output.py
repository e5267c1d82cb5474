#!/usr/bin/python3
"""A phase printing a lot (500 MB by default): its time inside davit against
the same command writing to /dev/null in a bare `docker run` of the same
image (issue 11), for a build and, interleaved with it, a baseline build.

davit's side is `davit-launcher exec` (worker, spool, the launcher's tail
and printer; the printed text goes to a pipe this script drains): the time
is the phase's duration_ms as the worker records it, and the wall time of
the whole exec. The yardstick is `time -p` of the same command, its output
to /dev/null, inside `docker run --rm` of the same image.

Usage: bench/phase_output.py [--mb 500] [--rounds 3] [--build build] [--baseline DIR]
       [--producer bulk|lines]
Needs a Docker Engine and davit/runner-busybox.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

IMAGE = "davit/runner-busybox"
PRODUCERS = {
    # 80-byte lines through a pipe, as a tool printing a large file does
    "bulk": "yes 'davit bench line: the quick brown fox jumps over the lazy dog 0123456789 abcdef' "
            "| head -c {n}",
    # one write per line, as a program flushing every line does (awk's fflush)
    "lines": "awk 'BEGIN {{ while (n < {n}) {{ print \"davit bench line: the quick brown fox "
             "jumps over the lazy dog 0123456789\"; fflush(); n += 71 }} }}'",
}


def davit_run(build, cmd, tmp):
    spec = os.path.join(tmp, "spec.json")
    with open(spec, "w") as f:
        json.dump({"image": IMAGE, "phases": [{"name": "out", "commands": [cmd]}]}, f)
    env = dict(os.environ, DAVIT_STATE_DIR=os.path.join(tmp, "state"),
               DAVIT_WORKER_NETWORK="none")
    t = time.monotonic()
    p = subprocess.Popen([os.path.join(build, "davit-launcher"), "exec", spec],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    tail, total = b"", 0
    while True:
        b = p.stdout.read(1 << 20)
        if not b:
            break
        total += len(b)
        tail = (tail + b)[-65536:]
    rc = p.wait()
    wall = time.monotonic() - t
    m = re.search(rb"out +< phase succeeded \(exit 0, (\d+) ms\)", tail)
    if rc != 0 or not m:
        raise SystemExit(f"{build}: exec exited {rc}: {tail[-2000:]!r}")
    return int(m.group(1)) / 1000, wall, total


def docker_run(cmd):
    t = time.monotonic()
    p = subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "sh", "-c",
                        f"time -p sh -c \"{cmd.replace(chr(34), chr(92) + chr(34))} > /dev/null\""],
                       capture_output=True, text=True, check=True)
    wall = time.monotonic() - t
    m = re.search(r"real ([0-9.]+)", p.stderr)
    return float(m.group(1)), wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--producer", choices=sorted(PRODUCERS), default="bulk")
    ap.add_argument("--build", default=os.environ.get("DAVIT_BUILD_DIR", "build"))
    ap.add_argument("--baseline", help="another build directory, measured interleaved")
    a = ap.parse_args()
    cmd = PRODUCERS[a.producer].format(n=a.mb * 1000 * 1000)
    builds = [a.build] + ([a.baseline] if a.baseline else [])
    res = {b: [] for b in builds}
    dock = []
    for i in range(a.rounds):
        dock.append(docker_run(cmd))
        for b in builds:
            tmp = tempfile.mkdtemp(prefix="davit-bench-phase.", dir="/var/tmp")
            try:
                res[b].append(davit_run(b, cmd, tmp))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        print(f"round {i + 1}: docker {dock[-1]}, " +
              ", ".join(f"{b} {res[b][-1]}" for b in builds), flush=True)
    d = statistics.median(x[0] for x in dock)
    print(f"{a.mb} MB, producer {a.producer}: {cmd}")
    print(f"median of {a.rounds}: docker run to /dev/null: command {d:.2f} s, "
          f"whole docker run {statistics.median(x[1] for x in dock):.2f} s")
    for b in builds:
        ph = statistics.median(x[0] for x in res[b])
        wall = statistics.median(x[1] for x in res[b])
        print(f"{b}: phase {ph:.2f} s ({ph / d:.2f}x), whole exec {wall:.2f} s")


if __name__ == "__main__":
    main()
