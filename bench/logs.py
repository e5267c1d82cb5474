#!/usr/bin/python3
"""Log ingest and read-back of one run, measured from the client's side, for
a build and, interleaved with it, a baseline build (issue 11).

  ingest:    PUT a run's spool (records of 64 KiB, as the worker writes a
             large phase) in pieces of --piece MiB as fast as the server takes
             them, against `dd bs=1M conv=fdatasync` of as many bytes into the
             same data directory, measured right after (ratio = dd's time /
             davit's time: 1.0 is as fast as the disk);
  read-back: GET the finished log (raw and text), plain HTTP and TLS, with
             curl into /dev/null (the client reads at wire speed), MB/s.

Each round runs every build once, in turn, so drift hits all alike; the
median of the rounds is printed. Use release builds.

Usage: bench/logs.py [--mib 500] [--piece 1] [--rounds 3] [--build build]
                     [--baseline DIR] [--dir /var/tmp]
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
sys.path.insert(0, os.path.join(HERE, "..", "tests", "server"))
import davit_harness  # noqa: E402
from davit_harness import Launcher, Server, spool_record  # noqa: E402

RECORD = 64 * 1024


def make_spool(mib):
    """mib MiB of text records (lines of 100 bytes), as a list of records."""
    line = (b"%-99s\n" % b"the quick brown fox jumps over the lazy dog 0123456789")
    payload = (line * (RECORD // len(line) + 1))[:RECORD - 1] + b"\n"
    recs, total, seq = [], 0, 0
    while total < mib << 20:
        seq += 1
        r = spool_record("o", seq, payload, "apply")
        recs.append(r)
        total += len(r)
    return recs


def pieces(recs, piece):
    out, cur, n = [], [], 0
    for r in recs:
        if n + len(r) > piece and cur:
            out.append(b"".join(cur))
            cur, n = [], 0
        cur.append(r)
        n += len(r)
    if cur:
        out.append(b"".join(cur))
    return out


def tls_files(tmp):
    key, cert = os.path.join(tmp, "tls.key"), os.path.join(tmp, "tls.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def curl_mbs(url, token, insecure):
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
            "-H", "Authorization: Bearer " + token, url]
    if insecure:
        args.insert(1, "-k")
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
    size, secs = int(out[0]), float(out[1])
    return size, size / secs / 1e6


def dd_secs(path, mib):
    t = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % mib,
                    "conv=fdatasync"], check=True, capture_output=True)
    t = time.monotonic() - t
    os.unlink(path)
    return t


def one(build, spool_pieces, total, mib, base_dir):
    davit_harness.DAVIT = os.path.join(build, "davit")
    tmp = tempfile.mkdtemp(prefix="davit-bench-logs.", dir=base_dir)
    res = {}
    try:
        server = Server(tmp, binary=os.path.join(build, "davit"))
        try:
            token, pkey = server.create_pool("p")
            la = Launcher(server, token, pkey)
            la.register()
            rid = server.submit("p")
            la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == rid)
            assert la.event(rid, "running", phase="apply")[0] == 200
            off = 0
            t = time.monotonic()
            for p in spool_pieces:
                st, data, _ = la.log(rid, off, p)
                assert st == 200, (st, data)
                off += len(p)
            res["ingest_s"] = time.monotonic() - t
            assert off == total
            res["dd_s"] = dd_secs(os.path.join(tmp, "dd.out"), mib)
            assert la.event(rid, "result", outcome="finished", exit_code=0)[0] == 200
            url = "http://127.0.0.1:%d/api/v1/runs/%d/logs" % (server.port, rid)
            size, res["raw_http"] = curl_mbs(url + "?format=raw", server.token, False)
            assert size == total, (size, total)
            _, res["text_http"] = curl_mbs(url, server.token, False)
            admin = server.token  # printed only when the data directory is new
        finally:
            server.stop()
        # the same database served over TLS
        cert, key = tls_files(tmp)
        server = Server(tmp, "--tls-cert", cert, "--tls-key", key,
                        binary=os.path.join(build, "davit"))
        try:
            url = "https://127.0.0.1:%d/api/v1/runs/%d/logs" % (server.port, rid)
            size, res["raw_tls"] = curl_mbs(url + "?format=raw", admin, True)
            assert size == total, (size, total)
            _, res["text_tls"] = curl_mbs(url, admin, True)
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=500)
    ap.add_argument("--piece", type=float, default=1, help="MiB per PUT (the launcher's batch)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build", default=os.environ.get("DAVIT_BUILD_DIR", "build"))
    ap.add_argument("--baseline", help="another build directory, measured interleaved")
    ap.add_argument("--dir", default="/var/tmp", help="where data directories go (a real disk)")
    a = ap.parse_args()
    recs = make_spool(a.mib)
    spool_pieces = pieces(recs, int(a.piece * (1 << 20)))
    total = sum(len(p) for p in spool_pieces)
    del recs
    builds = [a.build] + ([a.baseline] if a.baseline else [])
    results = {b: [] for b in builds}
    for i in range(a.rounds):
        for b in builds:
            r = one(b, spool_pieces, total, a.mib, a.dir)
            results[b].append(r)
            print("round %d %s: %s" % (i + 1, b, {k: round(v, 2) for k, v in r.items()}),
                  file=sys.stderr)
    print("%d MiB log (%d bytes), PUT pieces of %g MiB, median of %d rounds" %
          (a.mib, total, a.piece, a.rounds))
    print("%-28s %10s %10s %8s %10s %10s %10s %10s" % ("build", "ingest MB/s", "dd MB/s", "ratio",
                                                     "raw http", "text http", "raw tls",
                                                     "text tls"))
    for b in builds:
        rs = results[b]

        def med(k):
            return statistics.median(r[k] for r in rs)
        ratio = statistics.median(r["dd_s"] / r["ingest_s"] for r in rs)
        print("%-28s %10.0f %10.0f %8.2f %10.0f %10.0f %10.0f %10.0f" % (
            b, total / med("ingest_s") / 1e6, a.mib * 1048576 / med("dd_s") / 1e6, ratio,
            med("raw_http"), med("text_http"), med("raw_tls"), med("text_tls")))


if __name__ == "__main__":
    main()
