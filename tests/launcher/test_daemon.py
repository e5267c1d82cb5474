"""Integration tests of the launcher daemon (`davit-launcher` with no command)
against a real `davit server`, the real dockerd and the real `openssl`.

Everything stays on loopback: the server listens on 127.0.0.1 (a port the
kernel picks), run containers use network `none`. Each test removes what it
started, also when it fails: launcher and server processes by their own pid,
the containers carrying its launcher's io.davit.launcher label, and its
temporary directory.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

BUILD = os.environ.get("DAVIT_BUILD_DIR", "")
SOURCE = os.environ.get("DAVIT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
LAUNCHER = os.path.join(BUILD, "davit-launcher")
DAVIT = os.path.join(BUILD, "davit")
IMAGE = "davit/runner-busybox"

sys.path.insert(0, os.path.join(SOURCE, "tests", "server"))
from davit_harness import Server  # noqa: E402

# 300 numbered lines over about 6 s: a deterministic output to checksum.
SLOW_LINES = 'i=0; while [ $i -lt 300 ]; do echo "line $i"; i=$((i+1)); sleep 0.02; done'


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module", autouse=True)
def engine():
    assert os.access(LAUNCHER, os.X_OK), f"{LAUNCHER} not built (DAVIT_BUILD_DIR)"
    if docker("version", check=False).returncode != 0:
        pytest.fail("no Docker Engine answers; run scripts/ensure-docker")
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        subprocess.run([os.path.join(SOURCE, "scripts", "build-runner-image")], check=True)


def wait_for(cond, what, limit=60):
    """Waits for cond() to be true; limit only stops a hung test."""
    end = time.monotonic() + limit
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


class Daemon:
    """One davit-launcher process (restartable) with its own state directory."""

    def __init__(self, tmp, token, key_b64, name="l1", env=None, alias="DAVIT"):
        self.tmp = tmp
        self.state = os.path.join(tmp, name + "-state")
        self.logpath = os.path.join(tmp, name + ".err")
        self.outpath = os.path.join(tmp, name + ".out")
        self.proc = None
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DAVIT_", "SPACELIFT_")) and k != "DOCKER_HOST"}
        self.env.update({"DAVIT_STATE_DIR": self.state, "DAVIT_WORKER_NETWORK": "none",
                         alias + "_TOKEN": token, alias + "_POOL_PRIVATE_KEY": key_b64})
        self.env.update(env or {})

    def start(self, wait=True):
        self.err = open(self.logpath, "ab")
        self.out = open(self.outpath, "ab")
        self.proc = subprocess.Popen([LAUNCHER], env=self.env, stdout=self.out, stderr=self.err)
        if wait:
            wait_for(lambda: "registered" in self.log() or self.proc.poll() is not None,
                     "the launcher to register")
            assert self.proc.poll() is None, self.log()
        return self

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stdout(self):
        with open(self.outpath, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, limit=120):
        try:
            return self.proc.wait(timeout=limit)
        finally:
            self.err.close()
            self.out.close()

    def kill9(self):
        self.signal(signal.SIGKILL)
        return self.wait()

    def server_id(self):
        with open(os.path.join(self.state, "server-id")) as f:
            return json.load(f)["launcher_id"]

    def containers(self):
        path = os.path.join(self.state, "launcher-id")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            lid = f.read().strip()
        return docker("ps", "-aq", "--filter", f"label=io.davit.launcher={lid}").stdout.split()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.wait()
        left = self.containers()
        if left:
            docker("rm", "-f", "-v", *left, check=False)
        return left


@pytest.fixture
def env():
    """A server, and the launchers a test starts; all removed at the end."""
    tmp = tempfile.mkdtemp(prefix="davit-daemon-test.")
    box = {"tmp": tmp, "daemons": [], "server": None}
    try:
        box["server"] = Server(tmp)
        yield box
    finally:
        left = []
        for d in box["daemons"]:
            left += d.close()
        if box["server"]:
            box["server"].stop()
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"containers left behind: {left}"


def make_pool(box, name="web"):
    """The docs walkthrough: openssl, then `davit pool create`; returns (token, key_b64, key path)."""
    tmp = box["tmp"]
    key = os.path.join(tmp, name + ".key")
    csr = os.path.join(tmp, name + ".csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:4096", "-nodes", "-keyout", key,
                    "-out", csr, "-subj", "/CN=x"], check=True, capture_output=True)
    token = box["server"].cli("pool", "create", name, "--csr", csr).stdout.decode().strip()
    key_b64 = subprocess.run(["base64", "-w", "0", key], check=True,
                             capture_output=True).stdout.decode()
    return token, key_b64, key


def daemon(box, token, key_b64, **kw):
    d = Daemon(box["tmp"], token, key_b64, **kw)
    box["daemons"].append(d)
    return d


def submit(server, *phases, pool="web"):
    args = ["run", "submit", "--pool", pool, "--image", IMAGE]
    for p in phases:
        args += ["--phase", p]
    return int(server.cli(*args).stdout.decode().strip())


def logs(server, run_id):
    return server.cli("run", "logs", str(run_id)).stdout.decode()


def numbered(text):
    return [line for line in text.splitlines() if re.fullmatch(r"line \d+", line)]


def one_line(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_docs_walkthrough(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64, alias="SPACELIFT").start()
    rid = submit(server, "plan=echo planning; seq 1 50", "apply=echo applied")
    r = server.wait_state(rid, ("finished", "failed", "canceled", "timed_out", "lost"))
    assert r["state"] == "finished", r
    out = logs(server, rid)
    assert "planning" in out and "applied" in out
    assert [str(i) for i in range(1, 51)] == [x for x in out.splitlines() if x.isdigit()]
    workers = json.loads(server.cli("worker", "list", "--json").stdout)["workers"]
    assert [w["id"] for w in workers] == [d.server_id()]
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert d.containers() == []


def test_run_logs_on_standard_output_and_metadata(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64, env={"DAVIT_RUN_LOGS_ON_STANDARD_OUTPUT": "1",
                                         "SPACELIFT_METADATA_zone": "z1"}).start()
    rid = submit(server, "plan=echo hello-stdout")
    assert server.wait_state(rid, ("finished", "failed"))["state"] == "finished"
    recs = [json.loads(line) for line in d.stdout().splitlines()]
    assert any(r["type"] == "stdout" and r["text"] == "hello-stdout\n" and r["run"] == str(rid)
               for r in recs), recs
    workers = json.loads(server.cli("worker", "list", "--json").stdout)["workers"]
    assert workers[0]["metadata"] == {"zone": "z1"}
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_credential_errors(env):
    server = env["server"]
    token, key_b64, key = make_pool(env)
    tmp = env["tmp"]
    other = os.path.join(tmp, "other.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", other], check=True,
                   capture_output=True)
    other_b64 = base64.b64encode(open(other, "rb").read()).decode()
    t = json.loads(base64.b64decode(token))
    t["endpoint"] = "http://127.0.0.1:9"
    unreachable = base64.b64encode(json.dumps(t).encode()).decode()
    cases = [
        ("missing", {}, "DAVIT_TOKEN"),
        ("token not base64", {"DAVIT_TOKEN": "%%%", "DAVIT_POOL_PRIVATE_KEY": key_b64},
         "DAVIT_TOKEN"),
        ("key not base64", {"DAVIT_TOKEN": token, "DAVIT_POOL_PRIVATE_KEY": "%%%"},
         "DAVIT_POOL_PRIVATE_KEY"),
        ("not a key", {"DAVIT_TOKEN": token,
                       "DAVIT_POOL_PRIVATE_KEY": base64.b64encode(b"hello").decode()},
         "DAVIT_POOL_PRIVATE_KEY"),
        ("another key", {"DAVIT_TOKEN": token, "DAVIT_POOL_PRIVATE_KEY": other_b64},
         "does not match pool"),
        ("unreachable", {"DAVIT_TOKEN": unreachable, "DAVIT_POOL_PRIVATE_KEY": key_b64},
         "http://127.0.0.1:9"),
        ("dead docker socket", {"DAVIT_TOKEN": token, "DAVIT_POOL_PRIVATE_KEY": key_b64,
                                "DOCKER_HOST": "unix://" + tmp + "/no-engine.sock"},
         tmp + "/no-engine.sock"),
        # checked at start, since runs would use it without the release's signature check
        ("worker binary missing", {"DAVIT_TOKEN": token, "DAVIT_POOL_PRIVATE_KEY": key_b64,
                                   "DAVIT_WORKER_BINARY": tmp + "/no-worker"},
         "DAVIT_WORKER_BINARY " + tmp + "/no-worker: No such file or directory"),
        ("worker binary a directory", {"DAVIT_TOKEN": token, "DAVIT_POOL_PRIVATE_KEY": key_b64,
                                       "DAVIT_WORKER_BINARY": tmp},
         "not a regular file"),
    ]
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("DAVIT_", "SPACELIFT_")) and k != "DOCKER_HOST"}
    for name, extra, needle in cases:
        e = dict(base, DAVIT_STATE_DIR=os.path.join(tmp, "cred-state"), **extra)
        p = subprocess.run([LAUNCHER], env=e, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, (name, p.returncode, p.stderr)
        assert needle in one_line(p.stderr), (name, p.stderr)

    # A token that was reset: the old one no longer registers.
    new_csr = os.path.join(tmp, "new.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ed25519", "-nodes", "-keyout",
                    os.path.join(tmp, "new.key"), "-out", new_csr, "-subj", "/CN=x"],
                   check=True, capture_output=True)
    server.cli("pool", "reset", "web", "--csr", new_csr)
    e = dict(base, DAVIT_STATE_DIR=os.path.join(tmp, "cred-state"), DAVIT_TOKEN=token,
             DAVIT_POOL_PRIVATE_KEY=key_b64)
    p = subprocess.run([LAUNCHER], env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "the pool's token was reset" in one_line(p.stderr)


def test_cancel_from_the_cli(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    rid = submit(server, "plan=echo started; sleep 300")
    server.wait_state(rid, ("running",))
    wait_for(lambda: "started" in logs(server, rid), "the first log line")
    t0 = time.monotonic()
    server.cli("run", "cancel", str(rid))
    r = server.wait_state(rid, ("canceled", "failed", "finished"), limit=30)
    assert r["state"] == "canceled", r
    wait_for(lambda: d.containers() == [], "the container to go", limit=20)
    assert time.monotonic() - t0 < 15  # the worker's kill grace (10 s) plus slack
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_kill9_and_restart_loses_and_repeats_nothing(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    rid = submit(server, "plan=" + SLOW_LINES)
    wait_for(lambda: len(numbered(logs(server, rid))) >= 30, "some lines at the server")
    assert d.kill9() == -signal.SIGKILL
    assert d.containers(), "the run's container should outlive the launcher"
    time.sleep(1)  # the run goes on writing its spool meanwhile
    d.start()
    r = server.wait_state(rid, ("finished", "failed", "canceled", "timed_out", "lost"))
    assert r["state"] == "finished", (r, d.log())
    got = numbered(logs(server, rid))
    want = ["line %d" % i for i in range(300)]
    assert hashlib.sha256("\n".join(got).encode()).hexdigest() == \
        hashlib.sha256("\n".join(want).encode()).hexdigest(), (len(got), got[:5])
    assert "adopting a run" in d.log()
    wait_for(lambda: d.containers() == [], "the adopted run's container to go")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_tampered_worker_is_refused_and_no_container_starts(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    rel_dir = os.path.join(server.data_dir, "releases")
    for name in os.listdir(rel_dir):
        path = os.path.join(rel_dir, name)
        with open(path, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 0xFF]))
    d = daemon(env, token, key_b64).start()
    rid = submit(server, "plan=echo should-not-run")
    r = server.wait_state(rid, ("finished", "failed", "canceled", "timed_out", "lost"))
    assert r["state"] == "failed", r
    assert "refusing it" in r["reason"], r
    # The reason is in the run's log too, as the launcher's section.
    assert launcher_section(r["reason"]) in logs(server, rid)
    assert "run started" not in d.log() and "run prepared" not in d.log()
    assert d.containers() == []
    assert not [n for n in os.listdir(os.path.join(d.state, "workers")) if not n.startswith(".")]
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def launcher_section(reason):
    """What `davit run logs` shows for a run that failed before its container
    started (docs/run-directory.md, "The launcher's records")."""
    return ("=== phase launcher\n"
            f"davit: {reason}\n"
            "=== phase launcher ended: outcome=failed exit=-1 duration_ms=0\n"
            "=== run: outcome=failed phase=launcher exit=-1 duration_ms=0 reason=" + reason)


def test_failure_before_the_container_is_in_the_log(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    # No registry is reachable: loopback port 9 refuses connections.
    image = "127.0.0.1:9/davit-absent-%d:y" % os.getpid()
    rid = int(server.cli("run", "submit", "--pool", "web", "--image", image,
                         "--phase", "plan=echo never").stdout.decode().strip())
    r = server.wait_state(rid, ("finished", "failed", "canceled", "timed_out", "lost"))
    assert r["state"] == "failed", r
    assert r["reason"].startswith(f'image "{image}" is not present locally and could not be '
                                  "pulled: "), r
    # --follow, too, shows the reason rather than ending with nothing.
    p = server.cli("run", "logs", "--follow", str(rid), check=False)
    out = p.stdout.decode()
    assert p.returncode == 1 and out.startswith(launcher_section(r["reason"])), (p, out)
    assert "never" not in out
    assert d.containers() == []
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


# A root phase forges a passing result and appends it to the spool, then hangs. It first waits
# until the worker has recorded its genuine output: the worker records output as it arrives
# (docs/run-directory.md), so the spool then holds exactly S 1, c 2, o 3, and nothing more until
# the command ends. Counting before that raced the worker: the genuine o 3 could land between the
# count and the append, so the forged record reused seq 3 ("next" below became "repeat").
# "repeat" forces that interleaving on purpose: a forged record is a bad MAC whatever its seq.
@pytest.mark.parametrize("seq", ["next", "repeat"])
def test_forged_record_is_neither_believed_nor_shipped(env, seq):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    forge = ('S=/opt/davit/run/spool; until grep -aqx genuine $S; do sleep 0.05; done; '
             'n=$(($(grep -ac "^@[oecSEWR] [0-9]" $S)' + (' + 1' if seq == "next" else '') + ')); '
             'P="outcome=finished phase=- exit=0 duration_ms=1 reason=FOR""GED"; '
             'printf "@R %d 1 - %d 0123456789abcdef0123456789abcdef\\n%s\\n" $n ${#P} "$P" '
             '>> $S; sleep 60')
    rid = submit(server, "plan=echo genuine; " + forge)
    r = server.wait_state(rid, ("finished", "failed", "canceled", "timed_out", "lost"))
    assert r["state"] == "failed", r
    # The forged record is the 4th, after S 1, c 2, o 3, whichever seq it claims.
    assert r["reason"] == "spool tampered: record 4 has a bad MAC", r
    out = logs(server, rid)
    assert "genuine" in out and "FORGED" not in out, out
    assert "=== run:" not in out  # the forged R, and nothing after it, was not shipped
    wait_for(lambda: d.containers() == [], "the container to go", limit=20)
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_drain_undrain_and_cycle(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    wid = str(d.server_id())

    def state():
        return json.loads(server.cli("worker", "list", "--json").stdout)["workers"][0]["state"]

    server.cli("worker", "drain", wid)
    wait_for(lambda: state() == "draining", "the worker to show draining")
    rid = submit(server, "plan=echo after-undrain")
    time.sleep(2)
    assert server.run(rid)["state"] == "queued"
    server.cli("worker", "undrain", wid)
    assert server.wait_state(rid, ("finished", "failed"))["state"] == "finished"

    # Cycle while a run is in hand: it finishes, then the launcher exits with 75.
    rid = submit(server, "plan=sleep 2; echo cycled")
    server.wait_state(rid, ("running",))
    server.cli("pool", "cycle", "web", "--deadline", "30s")
    assert d.wait() == 75, d.log()
    assert server.run(rid)["state"] == "finished"
    assert d.containers() == []


def test_cycle_deadline_cancels_the_run(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    rid = submit(server, "plan=sleep 300")
    server.wait_state(rid, ("running",))
    server.cli("pool", "cycle", "web", "--deadline", "2s")
    assert d.wait() == 75, d.log()
    r = server.run(rid)
    assert r["state"] == "canceled" and "cycle" in r["reason"], r


def test_sigterm_drains_then_second_sigterm_cancels(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    rid = submit(server, "plan=sleep 3; echo drained-ok")
    server.wait_state(rid, ("running",))
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert server.run(rid)["state"] == "finished"

    d.start()
    rid = submit(server, "plan=sleep 300")
    server.wait_state(rid, ("running",))
    d.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in d.log().split("registered")[-1], "the launcher to drain")
    assert d.proc.poll() is None  # still draining, still polling
    assert server.run(rid)["state"] == "running"
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    r = server.run(rid)
    assert r["state"] == "canceled" and "shutdown" in r["reason"], r


def test_token_reset_makes_the_launcher_exit(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    tmp = env["tmp"]
    new_csr = os.path.join(tmp, "reset.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ed25519", "-nodes", "-keyout",
                    os.path.join(tmp, "reset.key"), "-out", new_csr, "-subj", "/CN=x"],
                   check=True, capture_output=True)
    server.cli("pool", "reset", "web", "--csr", new_csr)
    assert d.wait(limit=60) == 2, d.log()
    last = [line for line in d.log().splitlines() if line.strip()][-1]
    assert "the pool's token was reset" in last, last


def test_server_kill9_mid_run_loses_and_repeats_nothing():
    """The server dies mid-run and comes back on the same port: the launcher
    retries with backoff, the spool buffers the output meanwhile."""
    import socket
    tmp = tempfile.mkdtemp(prefix="davit-daemon-test.")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    box = {"tmp": tmp, "daemons": [], "server": None}
    left = []
    try:
        server = box["server"] = Server(tmp, "--listen", "127.0.0.1:%d" % port)
        assert server.port == port
        token, key_b64, _ = make_pool(box)
        d = daemon(box, token, key_b64).start()
        rid = submit(server, "plan=" + SLOW_LINES)
        wait_for(lambda: len(numbered(logs(server, rid))) >= 30, "some lines at the server")
        server.kill9()
        time.sleep(3)
        server.start()
        r = server.wait_state(rid, ("finished", "failed", "canceled", "timed_out", "lost"),
                              limit=120)
        assert r["state"] == "finished", (r, d.log())
        got = numbered(logs(server, rid))
        assert got == ["line %d" % i for i in range(300)], (len(got), got[:3])
        d.signal(signal.SIGTERM)
        assert d.wait() == 0
    finally:
        for d in box["daemons"]:
            left += d.close()
        if box["server"]:
            box["server"].stop()
        shutil.rmtree(tmp, ignore_errors=True)
    assert not left, f"containers left behind: {left}"


def test_credentials_never_reach_a_run_nor_stay_in_the_environment(env):
    """DAVIT_WHITELIST_ENVS naming the launcher's own credentials passes neither to a run, and
    once read they are gone from the launcher's environment: /proc/<pid>/environ shows the
    initial environment's bytes, so the values must be overwritten, not only unset."""
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    names = "SPACELIFT_TOKEN,SPACELIFT_POOL_PRIVATE_KEY,DAVIT_TOKEN,DAVIT_POOL_PRIVATE_KEY,PASSED_ON"
    d = daemon(env, token, key_b64, alias="SPACELIFT",
               env={"DAVIT_WHITELIST_ENVS": names, "PASSED_ON": "visible-value"}).start()
    with open("/proc/%d/environ" % d.proc.pid, "rb") as f:
        environ = f.read()
    assert b"PASSED_ON=visible-value" in environ  # the file is read right
    assert token.encode() not in environ and key_b64.encode() not in environ
    assert token[:24].encode() not in environ and key_b64[:24].encode() not in environ
    rid = submit(server, "plan=env; echo env-done")
    assert server.wait_state(rid, ("finished", "failed", "canceled", "timed_out", "lost"))["state"] == "finished"
    out = logs(server, rid)
    assert "env-done" in out and "PASSED_ON=visible-value" in out, out
    assert "_TOKEN" not in out and "_POOL_PRIVATE_KEY" not in out, out
    assert token[:24] not in out and key_b64[:24] not in out
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
