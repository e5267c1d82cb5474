#!/usr/bin/python3
"""Server memory per idle TLS long-poll: the server's RSS with N polls waiting,
less its RSS with none, over N.

A real davit server is started with a self-signed TLS certificate (made by
openssl) on a loopback port; one launcher registers (tests/server/
davit_harness.py), then N TLS connections each send that launcher's poll and
wait in it, as N idle launchers would. The server's VmRSS is read from /proc
before and once every poll waits (davit_dispatch_waiters, or RSS steady for a
server without that gauge).

    bench/conn_memory.py [--conns 1000] [--binary build/davit] [--rounds 1]

Use a release build: the sanitizers' shadow memory would swamp the numbers.
Python holds up to a few thousand connections; bench/load (a C program) does
10,000."""

import argparse
import asyncio
import http.client
import json
import os
import re
import resource
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "server"))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def waiters(server):
    text = server.request("GET", "/metrics", token=None)[1].decode()
    m = re.search(r"^davit_dispatch_waiters (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def poll_request(session, wait_s):
    body = json.dumps({"ack": 0, "wait_s": wait_s}).encode()
    return ("POST /api/v1/launcher/poll HTTP/1.1\r\nHost: davit\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (session, len(body))).encode() + body


async def hold(port, ctx, session, n, ready):
    """Opens n TLS connections that each poll once without waiting (as a
    launcher's connection has, between its polls), then send a poll that
    waits; keeps them open."""
    conns = []

    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        w.write(poll_request(session, 0))
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        await r.readexactly(length)
        w.write(poll_request(session, 180))
        await w.drain()
        conns.append((r, w))

    for i in range(0, n, 100):
        await asyncio.gather(*(one() for _ in range(min(100, n - i))))
    ready.set()
    return conns


def measure(binary, n, tmp):
    import davit_harness as h
    h.DAVIT = binary
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    https = http.client.HTTPSConnection
    h.http.client.HTTPConnection = lambda host, port, timeout=60: https(host, port, timeout=timeout, context=ctx)
    cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    server = h.Server(tmp, "--tls-cert", cert, "--tls-key", key, "--max-connections-per-address", "0",
                      "--lease", "300s", "--poll-timeout", "180s")
    try:
        token, pkey = server.create_pool("mem")
        la = h.Launcher(server, token, pkey)
        la.register()
        for _ in range(20):  # warm: the first requests allocate what every later one reuses
            server.request("GET", "/healthz", token=None)
        time.sleep(1)
        before = rss_kib(server.proc.pid)

        async def go():
            ready = asyncio.Event()
            conns = await hold(server.port, ctx, la.session, n, ready)
            end = time.monotonic() + 60
            last, steady = -1, 0
            while time.monotonic() < end:
                await asyncio.sleep(0.5)
                w = await asyncio.to_thread(waiters, server)
                rss = rss_kib(server.proc.pid)
                if w is not None and w >= n:
                    break
                steady = steady + 1 if rss == last else 0
                last = rss
                if w is None and steady >= 4:
                    break
            after = rss_kib(server.proc.pid)
            for _, w in conns:
                w.close()
            return after

        after = asyncio.run(go())
        return before, after
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build", "davit"))
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.conns + 512)), hard))
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="davit-bench-") as tmp:
            before, after = measure(os.path.abspath(args.binary), args.conns, tmp)
        print("%s conns=%d rss_before_kib=%d rss_after_kib=%d per_conn_kib=%.1f"
              % (args.binary, args.conns, before, after, (after - before) / args.conns), flush=True)


if __name__ == "__main__":
    main()
