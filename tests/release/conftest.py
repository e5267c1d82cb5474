"""Fixtures for the release tests: they check what `make release` wrote.

DAVIT_RELEASE_DIR names the dist/ directory (default: dist/ of the source
tree). The tests never build it: `make test` runs `make release` first.
"""
import os
import sys

import pytest

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

SOURCE = os.environ.get("DAVIT_SOURCE_DIR") or os.path.join(HERE, "..", "..")
DIST = os.environ.get("DAVIT_RELEASE_DIR") or os.path.join(SOURCE, "dist")
ARCHES = ("amd64", "arm64")
PROGRAMS = ("davit", "davit-launcher", "davit-worker")
BINARIES = [f"{p}-linux-{a}" for p in PROGRAMS for a in ARCHES]
QEMU = "qemu-aarch64-static"


def dist(name):
    return os.path.join(DIST, name)


def flip(path, offset):
    """Flips one bit of the byte at offset: a tampered file."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 1]))


@pytest.fixture(scope="session", autouse=True)
def release_is_built():
    missing = [b for b in BINARIES if not os.path.exists(dist(b))]
    assert not missing, f"{DIST} lacks {missing}: run `make release`"
