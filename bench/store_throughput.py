#!/usr/bin/python3
"""The store's throughput, from a client's side, over plain HTTP on loopback.

    bench/store_throughput.py --binary build/davit [--binary-b OTHER/davit] [--rounds 3]

Measures, for each binary (interleaved A B A B ... when two are given):

- registrations/s: --registrations launchers registering at once from --clients threads
  (challenge, Ed25519 signature, register), then one poll each;
- runs/s through submit -> claim -> result: --clients threads submit --runs runs while
  --launchers stand-in launchers poll, take each run and report its result at once;
- with --strace: fsyncs (fsync + fdatasync) per operation in each phase, counted by attaching
  strace -c to the server for that phase only (slower: its runs/s are not comparable).

Python threads over plain HTTP: the numbers are relative (A against B, same machine, same
moment); bench/load/ measures the real table with TLS and many connections.
"""

import argparse
import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "server"))
from davit_harness import Server  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


class Conn:
    """One keep-alive HTTP connection (one per thread)."""

    def __init__(self, port, token=None):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token = token

    def call(self, method, path, body=None, token=None):
        h = {"Content-Type": "application/json"}
        tok = token or self.token
        if tok:
            h["Authorization"] = "Bearer " + tok
        data = json.dumps(body).encode() if body is not None else None
        self.c.request(method, path, body=data, headers=h)
        r = self.c.getresponse()
        out = r.read()
        return r.status, (json.loads(out) if out else None)


def make_pool(server, name):
    key = ed25519.Ed25519PrivateKey.generate()
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])).sign(key, None)
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    data = server.ok("POST", "/api/v1/pools", {"name": name, "csr": pem}, status=201)
    tok = json.loads(base64.b64decode(data["token"]))
    return key, tok["pool_id"], tok["pool_secret"]


def register(conn, key, pool_id, secret, capacity=1):
    st, ch = conn.call("POST", "/api/v1/launcher/challenge", {"pool_id": pool_id})
    assert st == 200, (st, ch)
    msg = "davit-register-v1\n%s\n%s\n%s\n" % (pool_id, ch["challenge_id"], ch["nonce"])
    sig = base64.b64encode(key.sign(msg.encode())).decode()
    st, data = conn.call("POST", "/api/v1/launcher/register", {
        "pool_id": pool_id, "pool_secret": secret, "challenge_id": ch["challenge_id"],
        "signature": sig, "hostname": "bench", "version": "0.1.0", "arch": "amd64",
        "capacity": capacity})
    assert st == 200, (st, data)
    return data["session_token"]


class Strace:
    """Counts fsync and fdatasync of a running process while in use (None: off)."""

    def __init__(self, pid, on):
        self.pid, self.on, self.p = pid, on, None

    def __enter__(self):
        if self.on:
            self.out = tempfile.NamedTemporaryFile(suffix=".strace", delete=False).name
            self.p = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o",
                                       self.out, "-p", str(self.pid)], stderr=subprocess.PIPE)
            # strace says it attached on stderr, one line per thread
            self.p.stderr.readline()
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.p:
            self.p.send_signal(signal.SIGINT)
            self.p.wait()
            text = open(self.out).read()
            os.unlink(self.out)
            self.count = sum(int(m.group(1)) for m in re.finditer(
                r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(?:fsync|fdatasync)\s*$", text, re.M))


def run_all(fn, args):
    """fn(a) for each a, each in its own thread; returns when all have."""
    ts = [threading.Thread(target=fn, args=(a,)) for a in args]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def phase_register(server, args, key, pool_id, secret):
    """Registers args.registrations launchers from args.clients threads; returns seconds."""
    per = [args.registrations // args.clients] * args.clients
    per[0] += args.registrations - sum(per)
    errors = []

    def worker(n):
        try:
            c = Conn(server.port)
            for _ in range(n):
                tok = register(c, key, pool_id, secret)
                st, _ = c.call("POST", "/api/v1/launcher/poll", {"ack": 0, "wait_s": 0}, token=tok)
                assert st == 200
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    t0 = time.monotonic()
    run_all(worker, per)
    if errors:
        raise RuntimeError(errors[0])
    return time.monotonic() - t0


def phase_runs(server, args, sessions, pool):
    """args.runs runs through submit -> claim -> result; returns seconds."""
    done = {"n": 0}
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def launcher(tok):
        try:
            c = Conn(server.port, tok)
            ack = 0
            while not stop.is_set():
                st, data = c.call("POST", "/api/v1/launcher/poll", {"ack": ack, "wait_s": 1})
                assert st == 200, (st, data)
                for m in data["messages"]:
                    ack = max(ack, m["id"])
                    if m["type"] != "run":
                        continue
                    st, d = c.call("POST", "/api/v1/launcher/runs/%d/events" % m["run"]["id"],
                                   {"seq": 1, "type": "result", "outcome": "finished"})
                    assert st == 200, (st, d)
                    with lock:
                        done["n"] += 1
                        if done["n"] >= args.runs:
                            stop.set()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
            stop.set()

    per = [args.runs // args.clients] * args.clients
    per[0] += args.runs - sum(per)

    def submitter(n):
        try:
            c = Conn(server.port, server.token)
            spec = {"pool": pool, "image": "busybox", "phases": [{"name": "p", "commands": ["true"]}]}
            for _ in range(n):
                st, d = c.call("POST", "/api/v1/runs", spec)
                assert st == 201, (st, d)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
            stop.set()

    ls = [threading.Thread(target=launcher, args=(t,)) for t in sessions]
    for t in ls:
        t.start()
    t0 = time.monotonic()
    run_all(submitter, per)
    stop.wait(600)
    dt = time.monotonic() - t0
    for t in ls:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return dt


def cpu_s(pid):
    """The process's user + system CPU seconds so far (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(binary, args, tmp):
    server = Server(tmp, "--threads", str(args.server_threads), "--lease", "60s",
                    "--poll-timeout", "5s", binary=binary)
    try:
        key, pool_id, secret = make_pool(server, "bench")
        pid = server.proc.pid
        with Strace(pid, args.strace) as sr:
            c0 = cpu_s(pid)
            reg_s = phase_register(server, args, key, pool_id, secret)
            c1 = cpu_s(pid)
        c = Conn(server.port)
        sessions = [register(c, key, pool_id, secret) for _ in range(args.launchers)]
        with Strace(pid, args.strace) as sx:
            c2 = cpu_s(pid)
            run_s = phase_runs(server, args, sessions, "bench")
            c3 = cpu_s(pid)
        # Server CPU per operation: what bounds its rate once the client is not the limit.
        out = {"registrations_per_s": args.registrations / reg_s, "runs_per_s": args.runs / run_s,
               "server_cpu_ms_per_registration": (c1 - c0) * 1000 / args.registrations,
               "server_cpu_ms_per_run": (c3 - c2) * 1000 / args.runs}
        if args.strace:
            out["fsyncs_per_registration"] = sr.count / args.registrations
            out["fsyncs_per_run"] = sx.count / args.runs
        return out
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--binary-b", help="a second binary (the baseline), run in turn with the first")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--registrations", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8, help="submitting / registering threads")
    ap.add_argument("--launchers", type=int, default=8, help="stand-in launchers taking runs")
    ap.add_argument("--server-threads", type=int, default=8, help="the server's --threads")
    ap.add_argument("--strace", action="store_true", help="count fsyncs per operation")
    args = ap.parse_args()
    bins = [("A", args.binary)] + ([("B", args.binary_b)] if args.binary_b else [])
    results = {name: [] for name, _ in bins}
    for r in range(args.rounds):
        for name, b in bins:
            with tempfile.TemporaryDirectory() as tmp:
                res = one(os.path.abspath(b), args, tmp)
            results[name].append(res)
            print("round %d %s %s" % (r + 1, name, json.dumps({k: round(v, 2) for k, v in res.items()})),
                  flush=True)
    for name, b in bins:
        rows = results[name]
        med = {k: sorted(x[k] for x in rows)[len(rows) // 2] for k in rows[0]}
        print("median %s (%s): %s" % (name, b, json.dumps({k: round(v, 2) for k, v in med.items()})))


if __name__ == "__main__":
    main()
