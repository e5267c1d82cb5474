"""Integration tests of `davit-launcher exec` against the real dockerd.

Every test runs the launcher built in DAVIT_BUILD_DIR with its own state
directory (so its own launcher identity), containers on network `none`, and
the local runner image davit/runner-busybox. Each test removes what it made:
the processes it started (by pid), its containers, its temporary files, and
checks that no container of its launcher is left.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

BUILD = os.environ.get("DAVIT_BUILD_DIR", "")
SOURCE = os.environ.get("DAVIT_SOURCE_DIR", "")
LAUNCHER = os.path.join(BUILD, "davit-launcher")
WORKER = os.path.join(BUILD, "davit-worker")
IMAGE = "davit/runner-busybox"
# A registry on loopback that refuses connections: no traffic leaves the machine.
UNPULLABLE = "127.0.0.1:9/davit-absent:y"


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module", autouse=True)
def engine():
    assert os.access(LAUNCHER, os.X_OK), f"{LAUNCHER} not built (DAVIT_BUILD_DIR)"
    assert os.access(WORKER, os.X_OK), f"{WORKER} not built"
    if docker("version", check=False).returncode != 0:
        pytest.fail("no Docker Engine answers; run scripts/ensure-docker")
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        subprocess.run([os.path.join(SOURCE, "scripts", "build-runner-image")], check=True)


class Launcher:
    """One launcher identity: a state directory, an environment, the pids it started."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="davit-launcher-test.")
        self.state = os.path.join(self.tmp, "state")
        self.procs = []
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DAVIT_", "SPACELIFT_")) and k != "DOCKER_HOST"}
        self.env.update({
            "DAVIT_STATE_DIR": self.state,
            "DAVIT_WORKER_NETWORK": "none",
            "TZ": "UTC",
        })

    def spec(self, phases, **extra):
        doc = {"image": IMAGE, "phases": phases, **extra}
        fd, path = tempfile.mkstemp(suffix=".json", dir=self.tmp)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        return path

    def args(self, spec, *flags):
        return [LAUNCHER, "exec", *flags, spec]

    def run(self, spec, *flags, env=None, timeout=120):
        e = dict(self.env, **(env or {}))
        return subprocess.run(self.args(spec, *flags), env=e, capture_output=True, text=True,
                              timeout=timeout)

    def popen(self, spec, *flags, env=None):
        e = dict(self.env, **(env or {}))
        p = subprocess.Popen(self.args(spec, *flags), env=e, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, bufsize=1)
        self.procs.append(p)
        return p

    def launcher_id(self):
        with open(os.path.join(self.state, "launcher-id")) as f:
            return f.read().strip()

    def containers(self):
        path = os.path.join(self.state, "launcher-id")
        if not os.path.exists(path):
            return []
        out = docker("ps", "-aq", "--filter", f"label=io.davit.launcher={self.launcher_id()}")
        return out.stdout.split()

    def wait_for_container(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = self.containers()
            if ids:
                return ids[0]
            time.sleep(0.1)
        raise AssertionError("no container appeared")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        left = self.containers()
        if left:
            docker("rm", "-f", "-v", *left, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return left


@pytest.fixture
def L():
    launcher = Launcher()
    yield launcher
    state_runs = os.path.join(launcher.state, "runs")
    runs_left = os.listdir(state_runs) if os.path.isdir(state_runs) else []
    left = launcher.close()
    assert left == [], f"containers left behind: {left}"
    assert runs_left == [], f"run state left behind: {runs_left}"


def read_until(p, pattern, timeout=30):
    """Reads p's stdout line by line until a line matches; returns all lines read."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"{pattern!r} not seen in {lines!r}")


def result_line(stdout):
    last = stdout.strip().splitlines()[-1]
    assert " = run " in last, stdout
    return last


# --- the run itself ---------------------------------------------------------


def test_happy_path(L):
    spec = L.spec(
        [{"name": "init", "commands": ["echo hello from $DAVIT_PHASE"]},
         {"name": "plan", "before": ["echo before"], "commands": [
             "echo token=$API_TOKEN", "echo oops >&2", "sleep 1.5"],
          "after": ["echo after $DAVIT_PHASE_OUTCOME"]}],
        env={"GREETING": "hi"}, secrets={"API_TOKEN": "sekrit-value-123"}, user="1983")
    p = L.popen(spec)
    cid = L.wait_for_container()
    info = json.loads(docker("inspect", cid).stdout)[0]
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, out + err

    # Secrets never reach Docker's view of the container, nor the output.
    assert "sekrit" not in json.dumps(info)
    assert "sekrit" not in out + err
    assert info["Config"]["Entrypoint"] == ["/opt/davit/bin/davit-worker"]
    assert info["HostConfig"]["NetworkMode"] == "none"
    labels = info["Config"]["Labels"]
    assert labels["io.davit.launcher"] == L.launcher_id()
    assert labels["io.davit.pool"] == "local"
    assert labels["io.davit.run"].startswith("exec-")
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/opt/davit/bin/davit-worker"]["RW"] is False
    assert mounts["/mnt/workspace"]["Type"] == "volume"
    assert "/opt/davit/run" in mounts

    assert "init     | hello from init" in out
    assert "plan     | token=***" in out
    assert "plan     ! oops" in out
    assert "plan     | after succeeded" in out
    assert "finished: all 2 phases succeeded" in result_line(out)
    # The workspace volume goes with the container.
    vol = mounts["/mnt/workspace"]["Name"]
    assert docker("volume", "inspect", vol, check=False).returncode != 0


def test_json_output(L):
    spec = L.spec([{"name": "a", "commands": ["printf 'x\\ny\\n'"]}])
    r = L.run(spec, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    types = [o["type"] for o in objs]
    assert types[0] == "phase_start" and types[-1] == "result"
    assert {"type": "stdout", "text": "x\ny\n"}.items() <= next(
        o for o in objs if o["type"] == "stdout").items()
    res = objs[-1]
    assert res["outcome"] == "finished" and res["exit_code"] == 0
    seqs = [o["seq"] for o in objs if "seq" in o]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_failing_phase(L):
    r = L.run(os.path.join(SOURCE, "examples", "failing.json"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "test     ! test_login: FAILED" in r.stdout
    assert "never printed" not in r.stdout
    assert "deploy   < phase skipped" in r.stdout
    assert "failed" in result_line(r.stdout)


def test_examples_hello(L):
    r = L.run(os.path.join(SOURCE, "examples", "hello.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not-really-a-secret" not in r.stdout


# --- timeouts ---------------------------------------------------------------


def test_worker_run_timeout(L):
    spec = L.spec([{"name": "slow", "commands": ["echo start", "sleep 60"]}],
                  timeouts={"run": "2s", "kill_grace": "1s"})
    t0 = time.monotonic()
    r = L.run(spec)
    assert r.returncode == 3, r.stdout + r.stderr
    assert time.monotonic() - t0 < 20
    last = result_line(r.stdout)
    assert "timed_out" in last and "launcher:" not in last


def test_worker_output_timeout(L):
    spec = L.spec([{"name": "quiet", "commands": ["echo start", "sleep 60"]}],
                  timeouts={"no_output": "2s", "kill_grace": "1s"})
    r = L.run(spec)
    assert r.returncode == 3, r.stdout + r.stderr
    last = result_line(r.stdout)
    assert "timed_out" in last and "launcher:" not in last


def test_worker_phase_timeout(L):
    spec = L.spec([{"name": "p", "commands": ["sleep 60"], "timeout": "2s"}],
                  timeouts={"kill_grace": "1s"})
    r = L.run(spec)
    assert r.returncode == 3, r.stdout + r.stderr


def test_launcher_run_timeout(L):
    spec = L.spec([{"name": "slow", "commands": ["while true; do echo tick; sleep 0.3; done"]}],
                  timeouts={"kill_grace": "1s"})
    t0 = time.monotonic()
    r = L.run(spec, env={"DAVIT_LAUNCHER_RUN_TIMEOUT": "2s"})
    assert r.returncode == 3, r.stdout + r.stderr
    assert time.monotonic() - t0 < 20
    assert "DAVIT_LAUNCHER_RUN_TIMEOUT" in r.stdout
    assert "timed_out: launcher: run timeout (2s) expired" in result_line(r.stdout)


def test_launcher_logs_timeout_spacelift_alias(L):
    spec = L.spec([{"name": "quiet", "commands": ["echo start", "sleep 60"]}],
                  timeouts={"kill_grace": "1s"})
    r = L.run(spec, env={"SPACELIFT_LAUNCHER_LOGS_TIMEOUT": "2s"})
    assert r.returncode == 3, r.stdout + r.stderr
    assert "timed_out: launcher: no output (2s) expired" in result_line(r.stdout)


# --- cancel -----------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cancel_by_signal(L, sig):
    spec = L.spec([{"name": "long", "commands": ["echo ready", "sleep 60"]},
                   {"name": "never", "commands": ["echo never"]}],
                  timeouts={"kill_grace": "2s"})
    p = L.popen(spec)
    read_until(p, r"\| ready")
    t0 = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 4, out + err
    assert time.monotonic() - t0 < 10
    assert f"canceled: canceled by {sig.name} to davit-launcher" in result_line(out)
    assert "| never" not in out


def test_cancel_during_pull_from_stalled_registry_simulated(L):
    """A registry that accepts connections and never answers (simulated on
    loopback: a real one cannot be made to stall on demand) keeps the pull
    hanging; a signal cancels the run before any container exists."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    try:
        spec = L.spec([{"name": "a", "commands": ["true"]}])
        doc = json.load(open(spec))
        doc["image"] = f"127.0.0.1:{port}/davit-stalled:y"
        json.dump(doc, open(spec, "w"))
        p = L.popen(spec)
        read_until(p, r"is not present locally: pulling it")
        time.sleep(0.5)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        srv.close()
    assert p.returncode == 4, out + err
    assert time.monotonic() - t0 < 5
    assert "canceled by SIGTERM before the run started" in result_line(out)


# --- what cannot work -------------------------------------------------------


def test_image_not_pullable(L):
    spec = L.spec([{"name": "a", "commands": ["true"]}])
    spec_doc = json.load(open(spec))
    spec_doc["image"] = UNPULLABLE
    json.dump(spec_doc, open(spec, "w"))
    r = L.run(spec)
    assert r.returncode == 1, r.stdout + r.stderr
    want = f'image "{UNPULLABLE}" is not present locally and could not be pulled: '
    assert want in r.stdout
    assert "connection refused" in r.stdout


def test_worker_missing(L):
    spec = L.spec([{"name": "a", "commands": ["true"]}])
    r = L.run(spec, "--worker", "/nonexistent/davit-worker")
    assert r.returncode == 2
    assert "worker binary /nonexistent/davit-worker: No such file or directory" in r.stderr


def test_worker_not_executable(L):
    spec = L.spec([{"name": "a", "commands": ["true"]}])
    copy = os.path.join(L.tmp, "davit-worker")
    shutil.copy(WORKER, copy)
    os.chmod(copy, 0o644)
    r = L.run(spec, env={"DAVIT_WORKER_BINARY": copy})
    assert r.returncode == 2
    assert f"worker binary {copy}: not executable (mode 0644)" in r.stderr


def test_docker_socket_without_daemon(L):
    spec = L.spec([{"name": "a", "commands": ["true"]}])
    missing = os.path.join(L.tmp, "missing.sock")
    r = L.run(spec, env={"DOCKER_HOST": f"unix://{missing}"})
    assert r.returncode == 2, r.stderr
    assert f"cannot connect to the Docker Engine at unix://{missing}" in r.stderr
    assert "No such file or directory" in r.stderr

    # A socket file that nobody listens on.
    dead = os.path.join(L.tmp, "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(dead)
        r = L.run(spec, env={"DOCKER_HOST": f"unix://{dead}"})
    finally:
        s.close()
    assert r.returncode == 2, r.stderr
    assert f"cannot connect to the Docker Engine at unix://{dead}" in r.stderr
    assert "Connection refused" in r.stderr


def test_docker_host_tcp_via_loopback_proxy_simulated(L):
    """DOCKER_HOST=tcp://: the Engine only listens on its unix socket here, so a
    loopback TCP proxy to it stands in for a Docker-in-Docker sidecar."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    conns = []

    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s_ in (a, b):
                try:
                    s_.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            u.connect("/var/run/docker.sock")
            conns.extend([c, u])
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        spec = L.spec([{"name": "a", "commands": ["echo over tcp"]}])
        r = L.run(spec, env={"DOCKER_HOST": f"tcp://127.0.0.1:{port}", "DAVIT_DEBUG": "1"})
    finally:
        srv.close()
        for c in conns:
            c.close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "a        | over tcp" in r.stdout
    assert re.search(r'docker call method=POST path="?/v1\.\d+/containers/create', r.stderr)


def test_bad_spec_and_usage(L):
    bad = L.spec([{"name": "a", "timeout": "ten"}])
    r = L.run(bad)
    assert r.returncode == 2
    # The log escapes quotes in messages (common/log.c), so match either form.
    assert re.search(r'phases\[0\]\.timeout: not a duration: \\?"ten\\?"', r.stderr), r.stderr
    r = subprocess.run([LAUNCHER, "exec"], capture_output=True, text=True, env=L.env)
    assert r.returncode == 2 and "usage:" in r.stderr
    r = subprocess.run([LAUNCHER, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("davit-launcher ")


def test_oom_killed(L):
    spec = L.spec([{"name": "hog", "commands": ["echo start", "dd if=/dev/zero of=/dev/null bs=256M count=1"]}],
                  limits={"memory_mb": 32})
    r = L.run(spec)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "out of memory (OOMKilled)" in result_line(r.stdout)


# --- configuration that reaches the container --------------------------------


def test_whitelist_mask_and_extra_mounts(L):
    data = os.path.join(L.tmp, "data")
    os.mkdir(data)
    with open(os.path.join(data, "file"), "w") as f:
        f.write("from the host\n")
    spec = L.spec([{"name": "a", "commands": [
        "echo plain=$PLAIN_VAR", "echo masked=$MASKED_VAR", "cat /data/file",
        "touch /data/x 2>/dev/null || echo read-only"]}])
    r = L.run(spec, env={
        "PLAIN_VAR": "visible", "MASKED_VAR": "hidden-value",
        "DAVIT_WHITELIST_ENVS": "PLAIN_VAR,MASKED_VAR", "SPACELIFT_MASK_ENVS": "MASKED_VAR",
        "DAVIT_WORKER_EXTRA_MOUNTS": f"{data}:/data:ro"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| plain=visible" in r.stdout
    assert "| masked=***" in r.stdout
    assert "hidden-value" not in r.stdout
    assert "| from the host" in r.stdout
    assert "| read-only" in r.stdout


# --- restarts ---------------------------------------------------------------


@pytest.mark.parametrize("when", ["running", "exited"])
def test_kill9_then_adopt(L, when):
    spec = L.spec([{"name": "count", "commands": [
        "for i in $(seq 1 12); do echo line $i; sleep 0.4; done"]}])
    p = L.popen(spec)
    first = read_until(p, r"\| line 3$")
    time.sleep(0.15)  # between two lines: the offset of line 3 is saved
    p.kill()
    rest, _ = p.communicate(timeout=10)
    first += rest.splitlines(keepends=True)
    cid = L.wait_for_container()
    state = docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip()
    assert state == "running"
    if when == "exited":
        docker("wait", cid)

    r = L.run(spec)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "adopted run" in r.stdout
    assert "finished" in result_line(r.stdout)
    lines = [m.group(1) for m in re.finditer(r"\| line (\d+)$", "".join(first) + r.stdout, re.M)]
    assert lines == [str(i) for i in range(1, 13)], lines
    assert docker("ps", "-aq", "--filter", f"id={cid}").stdout.strip() == ""


def test_leftover_of_another_spec_is_stopped(L):
    spec = L.spec([{"name": "a", "commands": ["echo ready", "sleep 60"]}],
                  timeouts={"kill_grace": "1s"})
    p = L.popen(spec)
    read_until(p, r"\| ready")
    p.kill()
    p.communicate(timeout=10)
    old = L.wait_for_container()

    other = L.spec([{"name": "b", "commands": ["echo other"]}])
    r = L.run(other)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stopped and removed a run left behind" in r.stderr
    assert "adopted" not in r.stdout
    assert docker("ps", "-aq", "--filter", f"id={old}").stdout.strip() == ""


def test_state_dir_in_use(L):
    spec = L.spec([{"name": "a", "commands": ["echo ready", "sleep 60"]}],
                  timeouts={"kill_grace": "1s"})
    p = L.popen(spec)
    read_until(p, r"\| ready")
    r = L.run(spec)
    assert r.returncode == 2
    assert "is in use by another davit-launcher" in r.stderr
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    assert p.returncode == 4


# --- a run's own code cannot rewrite what the worker recorded --------------

# Appends a record with the next seq and a MAC the phase has to make up.
FORGE = ('S=/opt/davit/run/spool; n=$(($(grep -ac "^@[oecSEWR] [0-9]" $S) + 1)); '
         'printf "@%s %d 1 %s %d 0123456789abcdef0123456789abcdef\\n%s\\n" '
         '"$T" $n "$PH" ${#P} "$P" >> $S')


@pytest.mark.parametrize("forged", [
    # A passing result, then hang: without verification the launcher takes the
    # result and kills the container after the grace.
    ("R", "-", "outcome=finished phase=- exit=0 duration_ms=1 reason=all phases succeeded"),
    # A line under the name of another phase.
    ("o", "apply", "FORGED-LINE"),
], ids=["passing_result", "other_phase_line"])
def test_forged_records_fail_the_run(L, forged):
    t, phase, payload = forged
    spec = L.spec([{"name": "plan", "commands": [
        f"T={t} PH={phase} P='{payload}'; " + FORGE, "sleep 60"]},
        {"name": "apply", "commands": ["echo never"]}], timeouts={"kill_grace": "1s"})
    r = L.run(spec)
    assert r.returncode == 1, r.stdout + r.stderr
    last = result_line(r.stdout)
    assert "spool tampered: record 3 has a bad MAC" in last, last
    assert "finished" not in last
    # Nothing from the forged record on is believed or shown.
    assert "apply    | FORGED-LINE" not in r.stdout
    assert "never" not in r.stdout


def test_truncated_spool_fails_the_run(L):
    spec = L.spec([{"name": "plan", "commands": [
        "echo evidence of a failure", ": > /opt/davit/run/spool", "exit 1"]}],
        timeouts={"kill_grace": "1s"})
    r = L.run(spec)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "spool tampered: " in result_line(r.stdout), r.stdout


def test_runs_gain_no_privileges_by_default(L):
    """Issue 12: no-new-privileges unless turned off; capabilities dropped and a read-only root
    filesystem when asked. Read from the kernel's view of a phase, as the run's user."""
    spec = L.spec([{"name": "p", "commands": [
        "grep NoNewPrivs /proc/self/status", "touch /made-here 2>/dev/null && echo rootfs-rw"
        " || echo rootfs-ro"]}])
    r = L.run(spec)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"NoNewPrivs:\s+1", r.stdout) and "rootfs-rw" in r.stdout, r.stdout
    r = L.run(spec, env={"DAVIT_WORKER_NO_NEW_PRIVILEGES": "0",
                         "DAVIT_WORKER_READ_ONLY_ROOTFS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"NoNewPrivs:\s+0", r.stdout) and "rootfs-ro" in r.stdout, r.stdout
