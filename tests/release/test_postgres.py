"""The release davit speaks PostgreSQL (issue 18): scripts/release-deps builds libpq statically
(with the release's OpenSSL) and the release links it, for both architectures (arm64 under
qemu-aarch64-static). A port that nothing listens on gives libpq's own connection error, never
the message of a build without PostgreSQL support; a private PostgreSQL 15 (tests/server's
pg_cluster) is migrated by each architecture's binary and served by the amd64 one."""
import os
import subprocess
import sys
import urllib.request

import pytest

from conftest import ARCHES, HERE, QEMU, dist

sys.path.insert(0, os.path.join(HERE, "..", "server"))
import pg_cluster  # noqa: E402


def davit(arch):
    return ([QEMU] if arch == "arm64" else []) + [dist(f"davit-linux-{arch}")]


from pg_cluster import cluster  # noqa: E402,F401  (the module's private PostgreSQL)


@pytest.mark.parametrize("arch", ARCHES)
def test_release_davit_reaches_postgres_through_libpq(arch, tmp_path):
    # Port 1: privileged and unused, so the connection is refused at once.
    p = subprocess.run(
        davit(arch) + ["server", "--data-dir", str(tmp_path / "data"), "--listen",
                       "127.0.0.1:0", "--database",
                       "postgres://davit@127.0.0.1:1/davit?connect_timeout=5"],
        capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "without PostgreSQL" not in out, out
    assert "Connection refused" in out, out


@pytest.mark.parametrize("arch", ARCHES)
def test_release_davit_migrates_a_real_postgres(arch, cluster):
    url = cluster.create_db(f"release_{arch}")
    cmd = davit(arch) + ["server", "migrate", "--database", url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "schema migrated from version 0 to" in p.stdout, p.stdout
    assert pg_cluster.PASSWORD not in p.stdout + p.stderr
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "nothing to do" in p.stdout, p.stdout + p.stderr


def test_release_davit_serves_on_a_real_postgres(cluster, tmp_path):
    url = cluster.create_db("release_serve")
    port = pg_cluster.free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        davit("amd64") + ["server", "--data-dir", str(tmp_path / "data"), "--listen",
                          f"127.0.0.1:{port}", "--database", url],
        stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("listening on "):
                break
        else:
            pytest.fail("server did not start: " + (tmp_path / "server.log").read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as r:
            assert r.status == 200
        tables = cluster.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'runs'",
                              db="release_serve")
        assert tables.strip() == "1"
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()
        log.close()
