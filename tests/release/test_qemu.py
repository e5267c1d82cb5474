"""The arm64 release binaries, run on this amd64 machine under
qemu-aarch64-static: the worker produces what the amd64 worker produces, and
the launcher registers, takes runs and finishes them."""
import os
import re
import shutil
import subprocess
import sys

from conftest import HERE, QEMU, dist

sys.path.insert(0, os.path.join(HERE, "..", "worker"))
from davit_rundir import HEADER, KEYS, read_spool, record_mac, result, write_rundir  # noqa: E402
from davit_e2e import Launcher, Stack, make_pool, wait_for  # noqa: E402


def phases():
    return [
        {"name": "build", "commands": [
            'echo "hello $GREETING"', 'echo "to stderr" >&2', 'echo "secret: $TOKEN"',
            "printf 'no newline at the end'"],
         "after": ['echo "after: $DAVIT_PHASE_OUTCOME"']},
        {"name": "bytes", "commands": ["printf 'a\\001b\\377c\\n'", "seq 1 200"]},
        {"name": "fails", "commands": ["echo about to fail", "exit 3"]},
    ]


def without_time(spool, key):
    """The spool's bytes with every record's time made 0 (the millisecond
    timestamp in its header, the duration_ms of its payload) and its MAC made
    again for that: time is the one thing that differs between two runs of the
    same run directory."""
    out, pos = bytearray(), 0
    while pos < len(spool):
        m = HEADER.match(spool, pos)
        assert m, f"corrupt record at {pos}"
        length = int(m.group(6))
        payload = re.sub(rb"duration_ms=\d+", b"duration_ms=0", spool[m.end():m.end() + length])
        base = b"@%s %s 0 %s %d" % (m.group(2), m.group(3), m.group(5), len(payload))
        out += base + b" " + record_mac(key, base, payload).encode() + b"\n" + payload + b"\n"
        pos = m.end() + length + 1
    return bytes(out)


def run_worker(cmd, rundir):
    p = subprocess.run([*cmd, "--run-dir", rundir], capture_output=True, timeout=120)
    return p.returncode, p.stderr


def test_arm64_worker_spool_is_byte_for_byte_the_amd64_workers(tmp_path):
    a, b = str(tmp_path / "amd64"), str(tmp_path / "arm64")
    for d in (a, b):
        os.makedirs(str(tmp_path / ("ws-" + os.path.basename(d))))
    write_rundir(a, phases(), env={"GREETING": "world"}, secrets={"TOKEN": "s3cr3t"},
                 settings={"workspace": str(tmp_path / "ws-amd64"), "run_id": "run-1"})
    # The same run directory (and run key) for the other worker; only the
    # workspace differs, and no phase prints it.
    shutil.copytree(a, b)
    key = KEYS[os.path.realpath(a)]
    KEYS[os.path.realpath(b)] = key
    with open(os.path.join(b, "settings", "workspace"), "w") as f:
        f.write(str(tmp_path / "ws-arm64") + "\n")

    code_a, err_a = run_worker([dist("davit-worker-linux-amd64")], a)
    code_b, err_b = run_worker([QEMU, dist("davit-worker-linux-arm64")], b)
    assert (code_a, err_a) == (code_b, err_b)
    recs = read_spool(os.path.join(b, "spool"))  # every record's MAC checks with the run key
    assert result(recs).kv("outcome") == "failed"
    with open(os.path.join(a, "spool"), "rb") as f:
        spool_a = f.read()
    with open(os.path.join(b, "spool"), "rb") as f:
        spool_b = f.read()
    assert b"s3cr3t" not in spool_b and b"hello world" in spool_b
    assert without_time(spool_a, key) == without_time(spool_b, key)


class QemuLauncher(Launcher):
    """The arm64 release launcher, run by qemu-aarch64-static: it reports
    itself as arm64 (uname under qemu says aarch64)."""

    def start(self):
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen([QEMU, dist("davit-launcher-linux-arm64")], env=self.env,
                                     stdout=self.logf, stderr=subprocess.STDOUT)


def qemu_launcher(stack, name, token, key, **env):
    la = QemuLauncher(stack.tmp, name, token, key, **env)
    stack.launchers.append(la)
    return la


def stack_with(tmp_path, *files):
    """A Stack whose server is the amd64 release davit, started from a
    directory holding it and the given dist/ files only: the server publishes
    the releases it finds next to itself."""
    d = tmp_path / "bin"
    d.mkdir()
    for f in ("davit-linux-amd64", *files):
        shutil.copy2(dist(f), d / f)
    import davit_e2e
    saved = davit_e2e.DAVIT
    davit_e2e.DAVIT = str(d / "davit-linux-amd64")
    try:
        return Stack()
    finally:
        davit_e2e.DAVIT = saved


def close(stack):
    leftovers = stack.close()
    assert not leftovers, f"containers left behind: {leftovers}"


def test_arm64_launcher_registers_takes_a_run_and_finishes_it(tmp_path):
    # Every architecture's worker and launcher is published at start.
    stack = stack_with(tmp_path, "davit-worker-linux-amd64", "davit-worker-linux-arm64",
                       "davit-launcher-linux-amd64", "davit-launcher-linux-arm64")
    try:
        srv = stack.server
        rel = srv.json("release", "list")["releases"]
        assert sorted((r["kind"], r["arch"]) for r in rel) == [
            ("launcher", "amd64"), ("launcher", "arm64"), ("worker", "amd64"), ("worker", "arm64")]
        token, key = make_pool(srv, stack.tmp, "arm")
        # The run containers on this machine are amd64: the emulated arm64
        # launcher is pointed at the amd64 worker with DAVIT_WORKER_BINARY
        # (the arm64 worker itself is tested above, under qemu, directly).
        la = qemu_launcher(stack, "arm", token, key,
                           DAVIT_WORKER_BINARY=dist("davit-worker-linux-amd64"))
        wait_for(lambda: srv.workers("arm"), limit=120, what="the arm64 launcher")
        # The worker row is committed before the registering thread logs it,
        # so another request can see the worker a moment before the line.
        wait_for(lambda: re.search(r"launcher registered .*arch=arm64", srv.log()),
                 limit=30, what="the server's log of the arm64 registration")
        rid = srv.submit("arm", "main=echo hello from an arm64 launcher")
        run = srv.wait_ended(rid, limit=300)
        assert run["state"] == "finished", la.log()
        assert b"hello from an arm64 launcher" in srv.logs(rid)
    finally:
        close(stack)


def test_arm64_launcher_without_an_arm64_worker_fails_its_runs_clearly(tmp_path):
    stack = stack_with(tmp_path, "davit-worker-linux-amd64")
    try:
        srv = stack.server
        token, key = make_pool(srv, stack.tmp, "arm")
        la = qemu_launcher(stack, "arm", token, key)
        wait_for(lambda: srv.workers("arm"), limit=120, what="the arm64 launcher")
        for _ in range(2):
            run = srv.wait_ended(srv.submit("arm", "main=echo never"), limit=300)
            assert run["state"] == "failed"
            assert "no worker release is published for arm64" in str(run), run
        # Not a crash loop: the same process is still there, registered and idle.
        assert la.proc.poll() is None
        assert wait_for(lambda: srv.workers("arm")[0]["state"] == "idle", what="idle")
        assert len(srv.workers("arm")) == 1
    finally:
        close(stack)
