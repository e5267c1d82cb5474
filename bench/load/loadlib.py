"""Shared by bench/load/run and tests/server/test_load.py: a `davit server`
with TLS on a loopback port of its own, in a temporary data directory, pools
made with real `openssl` keys, and davit-load (bench/load/davit-load.c) run
against it.

Every process started here is ended by its own pid, also when something
fails (use Server as a context manager)."""

import http.client
import json
import os
import ssl
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "server"))
import davit_harness  # noqa: E402  (the one way tests start a server)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


def make_cert(tmp):
    """A self-signed EC P-256 certificate for 127.0.0.1, as test_api.py makes one."""
    cert, key = os.path.join(tmp, "server.crt"), os.path.join(tmp, "server.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1")
    return cert, key


class Server(davit_harness.Server):
    """davit_harness's server with --tls-cert, and nofile=(soft, hard) if given."""

    def __init__(self, build, tmp, nofile=None, extra=(), data_dir=None):
        self.cert, self.key = make_cert(tmp)
        # ASan's quarantine keeps freed memory resident for a while: it would count as memory
        # per connection in a sanitizer build. It changes nothing in a release build.
        if "quarantine_size_mb" not in os.environ.get("ASAN_OPTIONS", ""):
            os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
        super().__init__(tmp, "--tls-cert", self.cert, "--tls-key", self.key, *extra,
                         binary=os.path.join(build, "davit"), nofile=nofile, data_dir=data_dir)
        self.url = "https://127.0.0.1:%d" % self.port
        with open(os.path.join(self.tmp, "admin.token"), "w") as f:
            f.write(self.token + "\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def request(self, method, path, body=None):
        ctx = ssl.create_default_context(cafile=self.cert)
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=120)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Authorization": "Bearer " + self.token,
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data
        finally:
            conn.close()

    def create_pool(self, name):
        """Makes an Ed25519 key and CSR with openssl, creates the pool; returns (token file, key)."""
        key, csr = os.path.join(self.tmp, name + ".key"), os.path.join(self.tmp, name + ".csr")
        openssl("req", "-new", "-nodes", "-newkey", "ed25519", "-keyout", key, "-out", csr,
                "-subj", "/CN=davit-load")
        with open(csr) as f:
            st, data = self.request("POST", "/api/v1/pools", {"name": name, "csr": f.read()})
        if st != 201:
            raise RuntimeError("create pool %s: %d %s" % (name, st, data[:200]))
        tok = os.path.join(self.tmp, name + ".token")
        with open(tok, "w") as f:
            f.write(json.loads(data)["token"] + "\n")
        return tok, key


def run_load(build, server, pools, runs=0, submit_pool=None, extra=(), timeout=1800):
    """Runs davit-load; pools is [(name, count)], each made with server.create_pool first.
    Returns (exit status, the JSON report or None, stderr text)."""
    args = [os.path.join(build, "davit-load"), "--url", server.url, "--cacert", server.cert,
            "--admin-token-file", os.path.join(server.tmp, "admin.token"),
            "--server-pid", str(server.proc.pid)]
    for name, count in pools:
        args += ["--pool", "%s,%d,%s,%s" % (name, count, os.path.join(server.tmp, name + ".token"),
                                            os.path.join(server.tmp, name + ".key"))]
    if runs:
        args += ["--runs", str(runs), "--submit-pool", submit_pool]
    args += list(extra)
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines, out = [], []

    def echo():  # its progress lines, shown as they come and kept for the caller
        for line in p.stderr:
            text = line.decode(errors="replace")
            lines.append(text)
            sys.stderr.write("   " + text)
            sys.stderr.flush()

    readers = [threading.Thread(target=echo, daemon=True),
               threading.Thread(target=lambda: out.append(p.stdout.read()), daemon=True)]
    for t in readers:
        t.start()
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        lines.append("davit-load: killed after %d s\n" % timeout)
    finally:
        if p.poll() is None:  # timed out or interrupted: never leave it behind
            p.kill()
            p.wait()
    for t in readers:
        t.join(10)
    p.stdout.close()
    p.stderr.close()
    err = "".join(lines)
    out = out[0] if out else b""
    try:
        report = json.loads(out)
    except ValueError:
        report = None
    return p.returncode, report, err
