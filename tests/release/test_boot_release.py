"""deploy/boot/davit-launcher-boot with DAVIT_RELEASE_URL: the launcher for
this machine's architecture comes from a release site (a copy of dist/,
served on loopback), checked against SHA256SUMS and its Ed25519 signature.
Any tampering: exit 2, nothing installed, nothing started."""
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from conftest import DIST, SOURCE, dist, flip
from davit_e2e import Stack, free_port, make_pool, wait_for

BOOT = os.path.join(SOURCE, "deploy", "boot", "davit-launcher-boot")


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def site(tmp_path):
    """A copy of dist/ served over HTTP on loopback; yields (directory, url)."""
    d = tmp_path / "site"
    shutil.copytree(DIST, d)
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                          "--directory", str(d)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: listening(port), what="the release site to listen")
        yield d, f"http://127.0.0.1:{port}"
    finally:
        p.kill()
        p.wait()


@pytest.fixture
def stack():
    s = Stack()
    yield s
    leftovers = s.close()
    assert not leftovers, f"containers left behind: {leftovers}"


def boot(stack, url, pubkey, name="web"):
    token, key = make_pool(stack.server, stack.tmp, name)
    with open(key, "rb") as f:
        key_b64 = base64.b64encode(f.read()).decode()
    bindir = os.path.join(stack.tmp, f"bin-{name}")
    env = {**os.environ, "DAVIT_TOKEN": token, "DAVIT_POOL_PRIVATE_KEY": key_b64,
           "DAVIT_STATE_DIR": os.path.join(stack.tmp, f"state-{name}"),
           "DAVIT_LAUNCHER_BIN_DIR": bindir, "DAVIT_WORKER_NETWORK": "none",
           "DAVIT_RELEASE_URL": url, "DAVIT_RELEASE_PUBKEY": pubkey}
    p = subprocess.Popen([BOOT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p, os.path.join(bindir, "davit-launcher")


def test_boot_runs_the_verified_launcher_of_a_release_site(stack, site):
    d, url = site
    p, installed = boot(stack, url, str(d / "davit-release.pub"))
    try:
        wait_for(lambda: stack.server.workers("web"), what="the booted launcher to register")
        with open(installed, "rb") as a, open(dist("davit-launcher-linux-amd64"), "rb") as b:
            assert a.read() == b.read()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def other_key(tmp_path):
    pub = str(tmp_path / "other.pub")
    subprocess.run(f"openssl genpkey -algorithm ed25519 | openssl pkey -pubout -out {pub}",
                   shell=True, check=True, capture_output=True)
    return pub


@pytest.mark.parametrize("tamper,message", [
    ("sums", b"SHA256SUMS: the signature does not verify"),
    ("signature", b"SHA256SUMS: the signature does not verify"),
    ("binary", b"davit-launcher-linux-amd64: downloaded sha256"),
    ("key", b"SHA256SUMS: the signature does not verify"),
    ("missing", b"cannot download"),
])
def test_boot_refuses_a_tampered_release_and_starts_nothing(stack, site, tmp_path, tamper,
                                                             message):
    d, url = site
    pub = str(d / "davit-release.pub")
    if tamper == "sums":
        # The launcher's line made to list another digest.
        text = (d / "SHA256SUMS").read_text().splitlines()
        i = next(n for n, line in enumerate(text) if line.endswith("davit-launcher-linux-amd64"))
        text[i] = ("0" if text[i][0] != "0" else "1") + text[i][1:]
        (d / "SHA256SUMS").write_text("\n".join(text) + "\n")
    elif tamper == "signature":
        flip(d / "SHA256SUMS.sig", 7)
    elif tamper == "binary":
        flip(d / "davit-launcher-linux-amd64", 4096)
    elif tamper == "key":
        pub = other_key(tmp_path)
    else:
        os.unlink(d / "SHA256SUMS.sig")
    p, installed = boot(stack, url, pub)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 2, err
    assert message in err, err
    assert not os.path.exists(installed)
    assert stack.server.workers("web") == []
