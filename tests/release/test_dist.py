"""What `make release` writes to dist/: static binaries for both
architectures, SHA256SUMS and its Ed25519 signature, checkable with plain
openssl and sha256sum (VERIFY.md)."""
import os
import shutil
import subprocess

import pytest

from conftest import BINARIES, DIST, dist, flip
from elfcheck import NotStatic, check_static, inspect


def test_dist_holds_exactly_the_release_files():
    expected = set(BINARIES) | {"SHA256SUMS", "SHA256SUMS.sig", "davit-release.pub", "VERIFY.md"}
    assert set(os.listdir(DIST)) == expected


@pytest.mark.parametrize("name", BINARIES)
def test_every_binary_is_fully_static_for_its_architecture(name):
    assert check_static(dist(name)) == name.rsplit("-", 1)[1]


def test_the_check_tells_a_dynamic_program_from_a_static_one():
    # The same check on a program of this machine that is dynamic: it must fail.
    ls = shutil.which("ls")
    info = inspect(ls)
    assert info["interp"] and info["needed"] > 0
    with pytest.raises(NotStatic, match="PT_INTERP"):
        check_static(ls)


def test_worker_stays_small():
    for arch in ("amd64", "arm64"):
        assert os.path.getsize(dist(f"davit-worker-linux-{arch}")) < 300 * 1024


def verify_sig(directory):
    return subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "davit-release.pub", "-rawin",
         "-in", "SHA256SUMS", "-sigfile", "SHA256SUMS.sig"], cwd=directory, capture_output=True)


def check_sums(directory):
    return subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=directory, capture_output=True)


def test_sums_and_signature_verify_as_verify_md_says():
    with open(dist("VERIFY.md")) as f:
        doc = f.read()
    assert "openssl pkeyutl -verify -pubin -inkey davit-release.pub -rawin" in doc
    assert "sha256sum -c" in doc
    p = verify_sig(DIST)
    assert p.returncode == 0 and b"Signature Verified Successfully" in p.stdout, p.stderr
    p = check_sums(DIST)
    assert p.returncode == 0, p.stdout
    with open(dist("SHA256SUMS")) as f:
        listed = sorted(line.split()[1] for line in f)
    assert listed == sorted(BINARIES)


def tampered_copy(tmp_path):
    d = tmp_path / "dist"
    shutil.copytree(DIST, d)
    return d


def test_a_tampered_sums_file_or_signature_fails_the_check(tmp_path):
    d = tampered_copy(tmp_path)
    flip(d / "SHA256SUMS", 3)
    assert verify_sig(d).returncode != 0
    d = tampered_copy(tmp_path / "2")
    flip(d / "SHA256SUMS.sig", 10)
    assert verify_sig(d).returncode != 0


def test_a_tampered_binary_fails_the_sums(tmp_path):
    d = tampered_copy(tmp_path)
    flip(d / "davit-launcher-linux-arm64", 5000)
    assert verify_sig(d).returncode == 0
    p = check_sums(d)
    assert p.returncode != 0 and b"davit-launcher-linux-arm64: FAILED" in p.stdout
