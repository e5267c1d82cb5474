"""Fixtures for the worker's integration tests.

Every container a test starts carries the label io.davit.run and is removed
when the test ends, passed or failed; so are the temporary directories.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from davit_rundir import read_spool  # noqa: E402

BUILD = os.environ.get("DAVIT_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build-asan")
IMAGE = os.environ.get("DAVIT_RUNNER_IMAGE", "davit/runner-busybox")


@pytest.fixture
def tmpdir_clean():
    """A temporary directory, removed at the end of the test."""
    d = tempfile.mkdtemp(prefix="davit-test-")
    os.chmod(d, 0o700)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def rundir(tmpdir_clean):
    return os.path.join(tmpdir_clean, "run")


class Containers:
    """Starts the static worker as PID 1 of containers, and removes them all."""

    def __init__(self):
        self.names = []
        self.worker = os.path.join(BUILD, "davit-worker")

    def start(self, rundir, image=IMAGE, extra=()):
        name = "davit-test-" + uuid.uuid4().hex[:12]
        self.names.append(name)
        cmd = ["docker", "run", "-d", "--name", name, "--label", "io.davit.run=" + name,
               "--network", "none",
               "-v", f"{self.worker}:/opt/davit/bin/davit-worker:ro",
               "--entrypoint", "/opt/davit/bin/davit-worker", *extra]
        if rundir:
            cmd += ["-v", f"{rundir}:/opt/davit/run"]
        subprocess.run(cmd + [image], check=True, capture_output=True)
        return name

    def wait(self, name, timeout=120):
        out = subprocess.run(["docker", "wait", name], check=True, capture_output=True,
                             text=True, timeout=timeout)
        return int(out.stdout.strip())

    def logs(self, name):
        out = subprocess.run(["docker", "logs", name], capture_output=True)
        return out.stdout, out.stderr

    def run(self, rundir, **kw):
        """Runs to the end; returns (exit code, spool records)."""
        name = self.start(rundir, **kw)
        code = self.wait(name)
        return code, read_spool(os.path.join(rundir, "spool"))

    def cleanup(self):
        if self.names:
            subprocess.run(["docker", "rm", "-f", "-v", *self.names], capture_output=True)


# Every container name this session started; the final check counts only these.
SESSION_NAMES = set()


@pytest.fixture
def containers():
    c = Containers()
    yield c
    SESSION_NAMES.update(c.names)
    c.cleanup()


@pytest.fixture(scope="session", autouse=True)
def no_leftover_containers():
    yield
    out = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}",
                          "--filter", "label=io.davit.run"], capture_output=True, text=True)
    # Only this session's own: other suites may share the Engine.
    leftovers = [n for n in out.stdout.split() if n in SESSION_NAMES]
    assert not leftovers, f"containers left behind: {leftovers}"
