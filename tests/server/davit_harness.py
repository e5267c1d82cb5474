"""Helpers for the server's integration tests: a real `davit server` on a
loopback port picked by the kernel, and a test launcher that speaks the
protocol of docs/protocol.md, signing challenges with keys made by the real
`openssl` command.

Every process started here is killed by its own pid when the test ends,
and every temporary directory is pytest's tmp_path."""

import base64
import http.client
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "worker"))
from davit_rundir import record_mac  # noqa: E402  (one definition of a record's MAC)
import pg_cluster  # noqa: E402  (DAVIT_TEST_DATABASE=postgres: the servers' PostgreSQL)

BUILD = os.environ.get("DAVIT_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
DAVIT = os.path.join(BUILD, "davit")


def openssl_key(dirpath, kind="ed25519", name="pool"):
    """Makes a private key and a CSR with the openssl command; returns (key, csr) paths."""
    key = os.path.join(dirpath, name + ".key")
    csr = os.path.join(dirpath, name + ".csr")
    newkey = {"ed25519": "ed25519", "rsa": "rsa:2048", "rsa1024": "rsa:1024",
              "ec": "ec", "ec384": "ec"}[kind]
    cmd = ["openssl", "req", "-new", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=davit-test"]
    if kind == "ec":
        cmd += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    elif kind == "ec384":
        cmd += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]
    else:
        cmd += ["-newkey", newkey]
    subprocess.run(cmd, check=True, capture_output=True)
    return key, csr


def openssl_sign(keyfile, message, dirpath):
    msg = os.path.join(dirpath, "msg.bin")
    with open(msg, "wb") as f:
        f.write(message)
    with open(keyfile) as f:
        ed = "BEGIN PRIVATE KEY" in f.read() and b"ED25519" in subprocess.run(
            ["openssl", "pkey", "-in", keyfile, "-noout", "-text"], capture_output=True).stdout.upper()
    if ed:
        cmd = ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", keyfile, "-in", msg]
    else:
        cmd = ["openssl", "dgst", "-sha256", "-sign", keyfile, msg]
    return base64.b64encode(subprocess.run(cmd, check=True, capture_output=True).stdout).decode()


SPOOL_KEY = bytes(range(32))  # any key: the server does not check MACs


def wait_for(what, pred, limit=60):
    """Waits for a condition the server promises; limit only stops a hung test."""
    end = time.time() + limit
    while not pred():
        if time.time() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def spool_record(t, seq, payload, phase="-"):
    """One spool record (docs/run-directory.md), signed with SPOOL_KEY."""
    if isinstance(payload, str):
        payload = payload.encode()
    base = b"@%s %d %d %s %d" % (t.encode(), seq, int(time.time() * 1000), phase.encode(),
                                 len(payload))
    mac = record_mac(SPOOL_KEY, base, payload)
    return base + b" " + mac.encode() + b"\n" + payload + b"\n"


class Server:
    def __init__(self, tmp, *extra, data_dir=None, binary=None, nofile=None):
        self.binary = binary or DAVIT
        self.nofile = nofile  # (soft, hard) open files limit the server starts with
        self.tmp = str(tmp)
        self.data_dir = data_dir or os.path.join(self.tmp, "var")
        self.extra = list(extra)
        self.token = None
        self.proc = None
        self.start()

    def start(self):
        self.stderr = open(os.path.join(self.tmp, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "server", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"] +
            pg_cluster.database_args(self.data_dir) + self.extra,
            stdout=subprocess.PIPE, stderr=self.stderr, preexec_fn=self._limits)
        deadline = time.time() + 30
        buf = b""
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 1)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                for line in buf.decode().splitlines():
                    if "admin API token" in line:
                        self.token = line.split()[-1]
                    if line.startswith("listening on "):
                        self.port = int(line.rsplit(":", 1)[1])
                        print("server pid %d on port %d" % (self.proc.pid, self.port))
                        return
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("server did not start: " + buf.decode() + self.log())

    def _limits(self):
        if self.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)

    def log(self):
        with open(os.path.join(self.tmp, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
            self.stderr.close()
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def request(self, method, path, body=None, token="admin", headers=None, timeout=60):
        """Returns (status, parsed JSON or raw bytes, response headers)."""
        h = dict(headers or {})
        if token == "admin":
            token = self.token
        if token:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            ctype = resp.getheader("Content-Type", "")
            if ctype.startswith("application/json"):
                data = json.loads(data)
            return resp.status, data, dict(resp.getheaders())
        finally:
            conn.close()

    def ok(self, method, path, body=None, status=200, **kw):
        st, data, _ = self.request(method, path, body, **kw)
        assert st == status, (method, path, st, data)
        return data

    def db_query(self, sql, params=()):
        """Rows of sql on this server's database, SQLite or PostgreSQL (pg_cluster.db_query)."""
        return pg_cluster.db_query(self.data_dir, sql, params)

    def db_dump(self):
        return pg_cluster.db_dump(self.data_dir)

    def cli(self, *args, env=None, check=True, timeout=120):
        e = dict(os.environ)
        e.update({"DAVIT_SERVER": "http://127.0.0.1:%d" % self.port, "DAVIT_API_TOKEN": self.token,
                  # the pins of pool keys (docs/secrets.md): this server's own, never ~/.config
                  "DAVIT_KNOWN_POOLS": os.path.join(self.tmp, "known-pools")})
        e.update(env or {})
        p = subprocess.run([DAVIT] + list(args), env=e, capture_output=True, timeout=timeout)
        if check:
            assert p.returncode == 0, (args, p.returncode, p.stdout, p.stderr)
        return p

    def create_pool(self, name, kind="ed25519"):
        key, csr = openssl_key(self.tmp, kind, name)
        with open(csr) as f:
            data = self.ok("POST", "/api/v1/pools", {"name": name, "csr": f.read()}, status=201)
        return data["token"], key

    def submit(self, pool, commands=("echo hi",), **extra):
        spec = {"pool": pool, "image": "busybox", "phases": [{"name": "plan", "commands": list(commands)}]}
        spec.update(extra)
        return self.ok("POST", "/api/v1/runs", spec, status=201)["id"]

    def run(self, run_id):
        return self.ok("GET", "/api/v1/runs/%d" % run_id)

    def wait_state(self, run_id, states, limit=60):
        """Waits (no timed assertion: limit only stops a hung test) for a run to reach a state."""
        end = time.time() + limit
        while True:
            r = self.run(run_id)
            if r["state"] in states:
                return r
            if time.time() > end:
                raise AssertionError("run %d stuck in %s" % (run_id, r["state"]))
            time.sleep(0.1)


class Launcher:
    """A stand-in for davit-launcher, speaking docs/protocol.md."""

    def __init__(self, server, token, keyfile, hostname="test-host", capacity=1, arch="amd64"):
        self.server = server
        self.token = token
        self.keyfile = keyfile
        self.hostname = hostname
        self.capacity = capacity
        self.arch = arch
        t = json.loads(base64.b64decode(token))
        self.pool_id = t["pool_id"]
        self.secret = t["pool_secret"]
        self.endpoint = t["endpoint"]
        self.session = None
        self.id = None
        self.ack = 0
        self.seq = {}

    def challenge(self):
        return self.server.ok("POST", "/api/v1/launcher/challenge", {"pool_id": self.pool_id}, token=None)

    def signed(self, ch, pool_id=None):
        msg = "davit-register-v1\n%s\n%s\n%s\n" % (pool_id or self.pool_id, ch["challenge_id"], ch["nonce"])
        return openssl_sign(self.keyfile, msg.encode(), self.server.tmp)

    def register_body(self, ch, **over):
        body = {"pool_id": self.pool_id, "pool_secret": self.secret, "challenge_id": ch["challenge_id"],
                "signature": self.signed(ch), "hostname": self.hostname, "version": "0.1.0",
                "arch": self.arch, "capacity": self.capacity, "metadata": {"zone": "test"}}
        if self.id:
            body["launcher_id"] = self.id
        body.update(over)
        return body

    def register(self, **over):
        ch = self.challenge()
        data = self.server.ok("POST", "/api/v1/launcher/register", self.register_body(ch, **over), token=None)
        self.session = data["session_token"]
        self.id = data["launcher_id"]
        return data

    def call(self, method, path, body=None, **kw):
        return self.server.request(method, path, body, token=self.session, **kw)

    def poll(self, wait_s=5):
        st, data, _ = self.call("POST", "/api/v1/launcher/poll", {"ack": self.ack, "wait_s": wait_s})
        assert st == 200, (st, data)
        msgs = data["messages"]
        if msgs:
            self.ack = max(m["id"] for m in msgs)
        return msgs

    def poll_until(self, pred, limit=60):
        end = time.time() + limit
        while time.time() < end:
            for m in self.poll(wait_s=2):
                if pred(m):
                    return m
        raise AssertionError("no matching message")

    def event(self, run_id, type_, seq=None, **kw):
        if seq is None:
            seq = self.seq.get(run_id, 0) + 1
        self.seq[run_id] = max(seq, self.seq.get(run_id, 0))
        body = {"seq": seq, "type": type_}
        body.update(kw)
        return self.call("POST", "/api/v1/launcher/runs/%d/events" % run_id, body)

    def log(self, run_id, offset, data):
        return self.call("PUT", "/api/v1/launcher/runs/%d/log?offset=%d" % (run_id, offset), data,
                         headers={"Content-Type": "application/octet-stream"})
