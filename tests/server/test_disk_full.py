"""A full disk under the server's data directory is said, not hidden: log
uploads get 507 naming the cause, /healthz is degraded, /metrics counts the
failures, and the run shows that its log waits. Once space is freed, the
same uploads succeed and nothing is lost.

The data directory is a small tmpfs of its own (tests run as root), filled
by a filler file; it is unmounted when the test ends, passed or failed."""

import errno
import os
import re
import subprocess

import pytest

from davit_fixtures import check_stopped
from davit_harness import Launcher, Server, spool_record


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "davit-test-disk", str(mnt)],
                   check=True)
    servers = []
    try:
        yield mnt, servers
    finally:
        try:
            for s in servers:
                check_stopped(s)
        finally:
            if subprocess.run(["umount", str(mnt)]).returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)])


def fill(path):
    """Writes path until the filesystem has no byte left."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            block = b"\0" * size
            while True:
                try:
                    f.write(block)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break


def store_errors(server, reason):
    text = server.request("GET", "/metrics")[1].decode()
    m = re.search(r'^davit_store_errors_total\{reason="%s"\} (\d+)$' % reason, text, re.M)
    assert m, text
    return int(m.group(1))


def test_full_disk_is_said_and_nothing_is_lost(small_disk, tmp_path):
    mnt, servers = small_disk
    server = Server(tmp_path, data_dir=str(mnt / "var"))
    servers.append(server)
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == rid)
    assert la.event(rid, "running", phase="plan")[0] == 200
    records = [spool_record("o", i + 1, os.urandom(16 * 1024).hex() + "\n", "plan") for i in range(64)]
    spool = b"".join(records)
    first = b"".join(records[:4])
    st, data, _ = la.log(rid, 0, first)
    assert st == 200 and data["next_offset"] == len(first)
    assert server.ok("GET", "/healthz")["status"] == "ok"
    assert server.run(rid)["log_waiting"] is None
    full_before = store_errors(server, "full")

    filler = mnt / "filler"
    fill(filler)
    # 2 MiB does not fit in what the WAL already holds: the write needs space
    rest = spool[len(first):]
    st, data, _ = la.log(rid, len(first), rest)
    assert st == 507, (st, data)
    assert "the server's storage is full" in data["error"] and "\n" not in data["error"], data
    st, health, _ = server.request("GET", "/healthz")
    assert st == 503 and health["status"] == "degraded", (st, health)
    assert "the server's storage is full" in health["error"]
    assert store_errors(server, "full") > full_before
    r = server.run(rid)
    assert r["state"] == "running" and r["log_waiting"] == "the server's storage is full", r
    assert r["log_bytes"] == len(first)
    assert "the server's storage is full" in server.log()

    # space again: the launcher's retry of the same bytes succeeds
    os.unlink(filler)
    st, data, _ = la.log(rid, len(first), rest)
    assert st == 200 and data["next_offset"] == len(spool), (st, data)
    assert server.ok("GET", "/healthz")["status"] == "ok"
    assert server.run(rid)["log_waiting"] is None
    assert la.event(rid, "result", outcome="finished", exit_code=0)[0] == 200
    assert server.request("GET", "/api/v1/runs/%d/logs?format=raw" % rid)[1] == spool
    text = server.request("GET", "/api/v1/runs/%d/logs" % rid)[1].decode()
    assert text.count("\n") == len(records)


def test_full_disk_fails_other_writes_with_507(small_disk, tmp_path):
    mnt, servers = small_disk
    server = Server(tmp_path, data_dir=str(mnt / "var"))
    servers.append(server)
    server.create_pool("p")
    filler = mnt / "filler"
    fill(filler)
    # a run whose spec outgrows the WAL's room: the submit needs space
    big = {"K%d" % i: os.urandom(1024).hex() for i in range(400)}
    st, data, _ = server.request("POST", "/api/v1/runs",
                                 {"pool": "p", "image": "busybox", "env": big,
                                  "phases": [{"name": "plan", "commands": ["true"]}]})
    assert st == 507 and "the server's storage is full" in data["error"], (st, data)
    assert server.request("GET", "/healthz")[0] == 503
    os.unlink(filler)
    st, data, _ = server.request("POST", "/api/v1/runs",
                                 {"pool": "p", "image": "busybox", "env": big,
                                  "phases": [{"name": "plan", "commands": ["true"]}]})
    assert st == 201, (st, data)
    assert server.ok("GET", "/healthz")["status"] == "ok"
