"""End-to-end harness: a real davit server, real davit-launcher daemons, the
real davit CLI, the real dockerd and keys made by the real openssl command.

Everything a test starts is stopped by the fixtures, by its own pid, and every
container of the test's launchers is removed, also when a test fails.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import pg_cluster  # noqa: E402  (DAVIT_TEST_DATABASE=postgres: the server's PostgreSQL)

BUILD = os.environ.get("DAVIT_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build-asan")
# DAVIT_RELEASE_DIR: the suite runs `make release`'s amd64 binaries (dist/)
# instead of the build's; tests/release registers that run (release_e2e).
RELEASE = os.environ.get("DAVIT_RELEASE_DIR")
DAVIT = os.path.join(RELEASE, "davit-linux-amd64") if RELEASE else os.path.join(BUILD, "davit")
LAUNCHER = (os.path.join(RELEASE, "davit-launcher-linux-amd64") if RELEASE
            else os.path.join(BUILD, "davit-launcher"))
IMAGE = "davit/runner-busybox"
ENDED = ("finished", "failed", "canceled", "timed_out", "lost")


def free_port():
    """A port free on loopback now; the server is started on it right after."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, limit=60, what="condition", step=0.1):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {limit}s waiting for {what}")


class Server:
    """A server on a fixed port, so that it can be killed and restarted under
    the endpoint that the pool tokens carry."""

    def __init__(self, tmp, *extra, tls=False):
        self.tmp = tmp
        self.data = os.path.join(tmp, "server")
        self.port = free_port()
        self.extra = list(extra)
        self.ca = None
        if tls:
            # A self-signed certificate for 127.0.0.1, made by the openssl command.
            self.ca = os.path.join(tmp, "server.crt")
            key = os.path.join(tmp, "server.key")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", self.ca,
                            "-days", "1", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True)
            self.extra += ["--tls-cert", self.ca, "--tls-key", key]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.token = None
        self.proc = None
        self.start()

    def start(self):
        self.logf = open(os.path.join(self.tmp, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [DAVIT, "server", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}",
             *pg_cluster.database_args(self.data), *self.extra],
            stdout=subprocess.PIPE, stderr=self.logf, text=True)
        for line in self.proc.stdout:
            if "admin API token" in line:
                self.token = line.split()[-1]
            if line.startswith("listening on "):
                break
        else:
            raise RuntimeError("server did not start:\n" + self.log())
        assert self.token, "no admin token"

    def log(self):
        with open(os.path.join(self.tmp, "server.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
            self.logf.close()
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def env(self):
        env = {**os.environ, "DAVIT_SERVER": self.url, "DAVIT_API_TOKEN": self.token,
               # the pins of pool keys (docs/secrets.md): this server's own, never ~/.config
               "DAVIT_KNOWN_POOLS": os.path.join(self.tmp, "known-pools")}
        if self.ca:
            env["DAVIT_CA_FILE"] = self.ca
        return env

    def cli(self, *args, check=True, timeout=120):
        p = subprocess.run([DAVIT, *args], env=self.env(), capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"davit {' '.join(args)}: exit {p.returncode}: "
                                 f"{p.stderr.decode(errors='replace')}")
        return p

    def json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def submit(self, pool, *phases, extra=()):
        args = ["run", "submit", "--pool", pool, "--image", IMAGE]
        for ph in phases:
            args += ["--phase", ph]
        return int(self.cli(*args, *extra).stdout.decode().strip())

    def run(self, run_id):
        return self.json("run", "show", str(run_id))

    def wait_ended(self, run_id, limit=120):
        return wait_for(lambda: (r := self.run(run_id))["state"] in ENDED and r,
                        limit, f"run {run_id} to end")

    def logs(self, run_id):
        return self.cli("run", "logs", str(run_id)).stdout

    def raw_log(self, run_id):
        """The stored spool bytes, exactly as the launcher shipped them."""
        import urllib.request
        req = urllib.request.Request(f"{self.url}/api/v1/runs/{run_id}/logs?format=raw",
                                     headers={"Authorization": f"Bearer {self.token}"})
        import ssl
        ctx = ssl.create_default_context(cafile=self.ca) if self.ca else None
        with urllib.request.urlopen(req, timeout=60, context=ctx) as resp:
            return resp.read()

    def workers(self, pool):
        return self.json("worker", "list", "--pool", pool)["workers"]


def make_pool(server, tmp, name, kind="rsa:2048"):
    """A key and CSR made the way the docs say, and the pool's token."""
    key = os.path.join(tmp, f"{name}.key")
    csr = os.path.join(tmp, f"{name}.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", kind, "-nodes", "-keyout", key,
                    "-out", csr, "-subj", f"/CN={name}"], check=True, capture_output=True)
    token = server.cli("pool", "create", name, "--csr", csr).stdout.decode().strip()
    return token, key


class Launcher:
    def __init__(self, tmp, name, token, key, **env):
        self.state = os.path.join(tmp, f"launcher-{name}")
        self.logpath = os.path.join(tmp, f"launcher-{name}.log")
        with open(key, "rb") as f:
            key_b64 = __import__("base64").b64encode(f.read()).decode()
        self.env = {**os.environ, "DAVIT_TOKEN": token, "DAVIT_POOL_PRIVATE_KEY": key_b64,
                    "DAVIT_STATE_DIR": self.state, "DAVIT_WORKER_NETWORK": "none",
                    **{k: str(v) for k, v in env.items()}}
        self.proc = None
        self.start()

    def start(self):
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen([LAUNCHER], env=self.env, stdout=self.logf,
                                     stderr=subprocess.STDOUT)

    def server_id(self):
        """The id the server gave this launcher (the API's "worker")."""
        with open(os.path.join(self.state, "server-id")) as f:
            return json.load(f)["launcher_id"]

    def identity(self):
        try:
            with open(os.path.join(self.state, "launcher-id")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=60):
        code = self.proc.wait(timeout=timeout)
        self.logf.close()
        return code

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.logf.close()
        self.proc = None

    def containers(self, all_=True):
        ident = self.identity()
        if not ident:
            return []
        out = subprocess.run(["docker", "ps", "-q", *(["-a"] if all_ else []), "--filter",
                              f"label=io.davit.launcher={ident}"], capture_output=True, text=True)
        return out.stdout.split()

    def remove_containers(self):
        ids = self.containers()
        if ids:
            subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True)


class Stack:
    """The fixture's object: a temporary directory, one server, launchers."""

    def __init__(self, *server_args, tls=False):
        self.tmp = tempfile.mkdtemp(prefix="davit-e2e-")
        self.launchers = []
        self.server = Server(self.tmp, *server_args, tls=tls)

    def launcher(self, name, token, key, **env):
        la = Launcher(self.tmp, name, token, key, **env)
        self.launchers.append(la)
        return la

    def close(self):
        # Checked before the launchers are killed: a launcher must clean up
        # after every run it ended, not only when it exits.
        leftovers = [c for la in self.launchers for c in la.containers()]
        for la in self.launchers:
            la.stop()
            la.remove_containers()
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return leftovers
