#!/usr/bin/python3
"""The static release launcher against today's dynamic build, measured in the
same run, interleaved (issue 13):

  1. start-up: exec -> the launcher's "registered" log line, which it writes
     just before its first long-poll;
  2. idle RSS: VmRSS while registered and long-polling (sampled 3 s after
     registration, max of 5 samples 0.2 s apart);
  3. the size of every file of dist/.

Usage: bench/release.py [--rounds 7] [--dist dist] [--build-dir build]
(make && make release first; the server is the build's davit.)
"""
import argparse
import base64
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from e2e import rss_kb  # noqa: E402


def one(binary, tmp, n, token, key_b64):
    env = {**os.environ, "DAVIT_TOKEN": token, "DAVIT_POOL_PRIVATE_KEY": key_b64,
           "DAVIT_STATE_DIR": os.path.join(tmp, f"bench-launcher-{n}"),
           "DAVIT_WORKER_NETWORK": "none"}
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for line in p.stderr:
            if b"registered" in line:
                break
        else:
            raise RuntimeError(f"{binary} ended before registering")
        start_ms = (time.perf_counter() - t0) * 1000
        time.sleep(3)
        rss = []
        for _ in range(5):
            rss.append(rss_kb(p.pid))
            time.sleep(0.2)
        return start_ms, max(rss)
    finally:
        p.terminate()
        p.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dist", default=os.path.join(HERE, "..", "dist"))
    ap.add_argument("--build-dir", default=os.path.join(HERE, "..", "build"))
    args = ap.parse_args()
    os.environ["DAVIT_BUILD_DIR"] = os.path.abspath(args.build_dir)
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
    from davit_e2e import Stack, make_pool  # noqa: E402

    print("size of each release file (bytes):")
    for f in sorted(os.listdir(args.dist)):
        print(f"  {f:32} {os.path.getsize(os.path.join(args.dist, f)):>10}")
    flavours = {"static (dist, musl)": os.path.join(args.dist, "davit-launcher-linux-amd64"),
                "dynamic (build, glibc)": os.path.join(args.build_dir, "davit-launcher")}
    print(f"  dynamic launcher for comparison: {os.path.getsize(flavours['dynamic (build, glibc)'])}")
    stack = Stack()
    try:
        token, key = make_pool(stack.server, stack.tmp, "bench")
        with open(key, "rb") as f:
            key_b64 = base64.b64encode(f.read()).decode()
        res = {k: ([], []) for k in flavours}
        n = 0
        for _ in range(args.rounds):
            for name, binary in flavours.items():
                n += 1
                s, r = one(binary, stack.tmp, n, token, key_b64)
                res[name][0].append(s)
                res[name][1].append(r)
        print(f"launcher, {args.rounds} rounds interleaved, medians (min-max):")
        for name, (starts, rss) in res.items():
            print(f"  {name:24} start-up {statistics.median(starts):7.1f} ms "
                  f"({min(starts):.1f}-{max(starts):.1f}), idle RSS "
                  f"{statistics.median(rss) / 1024:5.2f} MiB ({min(rss)}-{max(rss)} KiB)")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
