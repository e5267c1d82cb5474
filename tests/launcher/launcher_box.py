"""Helpers shared by the issue 15 launcher tests (test_admission, test_ephemeral,
test_launcher_metrics): a server for a whole module, ed25519 pools (quicker
to make than test_daemon's RSA ones), and a count of the containers a
launcher created, also those removed since.
"""

import base64
import os
import shutil
import subprocess
import tempfile
import time

import pytest
from test_daemon import Server
from davit_harness import openssl_key  # noqa: E402  (test_daemon puts tests/server on the path)

ENDED = ("finished", "failed", "canceled", "timed_out", "lost")


class Box(dict):
    """What test_daemon's env fixture holds: tmp, server, daemons."""

    def close(self):
        left = []
        for d in self["daemons"]:
            left += d.close()
        if self["server"]:
            self["server"].stop()
        shutil.rmtree(self["tmp"], ignore_errors=True)
        assert not left, f"containers left behind: {left}"


def open_box():
    tmp = tempfile.mkdtemp(prefix="davit-launcher15-test.")
    box = Box(tmp=tmp, daemons=[], server=None)
    try:
        box["server"] = Server(tmp)
    except Exception:
        box.close()
        raise
    return box


@pytest.fixture(scope="module")
def box():
    """One server for the module, and the launchers its tests start; removed at its end."""
    b = open_box()
    try:
        yield b
    finally:
        b.close()


def cli_pool(box, name, kind="ed25519"):
    """`davit pool create` with a CSR of kind (davit_harness.openssl_key's:
    ed25519, or ec for a pool that sealed secrets can be sent to); returns
    (token, key_b64)."""
    key, csr = openssl_key(box["tmp"], kind, name)
    token = box["server"].cli("pool", "create", name, "--csr", csr).stdout.decode().strip()
    with open(key, "rb") as f:
        return token, base64.b64encode(f.read()).decode()


def launcher_label(d):
    with open(os.path.join(d.state, "launcher-id")) as f:
        return "io.davit.launcher=" + f.read().strip()


def created(d, since):
    """IDs of the containers created with d's launcher label since `since` (a time.time())."""
    out = subprocess.run(["docker", "events", "--since", "%.3f" % since, "--until",
                          "%.3f" % time.time(), "--filter", "type=container", "--filter",
                          "event=create", "--filter", "label=" + launcher_label(d),
                          "--format", "{{.ID}}"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def clean_env():
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("DAVIT_", "SPACELIFT_")) and k != "DOCKER_HOST"}
