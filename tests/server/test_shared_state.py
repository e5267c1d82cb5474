"""What servers sharing one database share beyond its tables (issue 18): registration challenges,
release files and the release-signing key.

On SQLite (one server) a restart stands for the second server: a challenge outlives it; release
files stay in the data directory only (the database keeps none). On PostgreSQL
(DAVIT_TEST_DATABASE=postgres, ctest's server_shared_state_pg) the same, a release whose cached
file is gone is served from the database, and two servers on one database: a challenge taken on
one registers on the other once, a release published on one downloads from the other, and a
server with another release key is refused.
"""
import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading

import pytest

import pg_cluster
from davit_fixtures import check_stopped
from davit_harness import DAVIT, Launcher, Server

on_postgres = pytest.mark.skipif(not pg_cluster.on_postgres(), reason="two servers need PostgreSQL")
on_sqlite = pytest.mark.skipif(pg_cluster.on_postgres(), reason="SQLite's rule (PostgreSQL refuses)")


def _publish(server, blob, version):
    st, data, _ = server.request("POST", "/api/v1/releases?arch=amd64&version=%s" % version, blob,
                                 headers={"Content-Type": "application/octet-stream"})
    assert st == 201, data
    return data


def _verify_release(server, tmp_path, rel, body):
    """The bytes are the release's, and its signature verifies with the pool token's release key
    (by openssl)."""
    assert hashlib.sha256(body).hexdigest() == rel["sha256"]
    token, _ = server.create_pool("verify-%d" % rel["id"])
    pub = json.loads(base64.b64decode(token))["release_key"]
    (tmp_path / "pub.pem").write_text(pub)
    msg = "davit-release-v1\nkind=worker\narch=amd64\nversion=%s\nsha256=%s\n" % (rel["version"], rel["sha256"])
    (tmp_path / "msg").write_bytes(msg.encode())
    (tmp_path / "sig").write_bytes(base64.b64decode(rel["signature"]))
    subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin",
                    "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig")], check=True,
                   capture_output=True)


@on_sqlite
def test_release_files_stay_out_of_sqlite(server):
    """On SQLite releases/ is the one copy: the database keeps no release file (it would only
    double the space, and keep retention from shrinking the database), and a release whose file
    is deleted is missing (500), not served from anywhere else."""
    blob = os.urandom(300 * 1024)
    rel = _publish(server, blob, "9.9.2")
    st, body, _ = server.request("GET", rel["url"], token=None)
    assert st == 200 and body == blob
    assert server.db_query("SELECT count(*) FROM release_blobs") == [(0,)]
    os.unlink(os.path.join(server.data_dir, "releases", rel["sha256"]))
    st, body, _ = server.request("GET", rel["url"], token=None)
    assert st == 500 and "its file is missing" in body["error"]


@on_postgres
def test_release_served_from_the_database_when_not_cached(server, tmp_path):
    blob = os.urandom(300 * 1024)
    rel = _publish(server, blob, "9.9.1")
    cached = os.path.join(server.data_dir, "releases", rel["sha256"])
    os.unlink(cached)
    st, body, headers = server.request("GET", rel["url"], token=None)
    assert st == 200 and body == blob
    assert headers["X-Davit-Sha256"] == rel["sha256"]
    _verify_release(server, tmp_path, rel, body)
    # cached again, whole and private: the next download reads the file
    with open(cached, "rb") as f:
        assert f.read() == blob
    assert stat.S_IMODE(os.stat(cached).st_mode) == 0o600
    assert not [n for n in os.listdir(os.path.dirname(cached)) if ".tmp-" in n]
    st, body, _ = server.request("GET", "/api/v1/releases/latest?kind=worker&arch=amd64&download=1",
                                 token=None)
    assert st == 200 and body == blob


def test_challenge_outlives_a_restart_and_registers_once(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    ch = la.challenge()
    server.stop()
    server.start()
    body = la.register_body(ch)
    data = server.ok("POST", "/api/v1/launcher/register", body, token=None)
    assert data["launcher_id"]
    st, data, _ = server.request("POST", "/api/v1/launcher/register", body, token=None)
    assert st == 401 and data["error"] == "challenge unknown, expired or already used", (st, data)
    # a refused register (wrong signature) leaves a challenge usable
    ch = la.challenge()
    bad = la.register_body(ch)
    bad["signature"] = la.signed(dict(ch, nonce="not-the-nonce"))
    st, data, _ = server.request("POST", "/api/v1/launcher/register", bad, token=None)
    assert st == 401 and "signature" in data["error"], (st, data)
    server.ok("POST", "/api/v1/launcher/register", la.register_body(ch), token=None)


def _token_release_key(server, pool):
    token, _ = server.create_pool(pool)
    return json.loads(base64.b64decode(token))["release_key"]


def _new_key(path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(path)], check=True,
                   capture_output=True)
    os.chmod(path, 0o600)


def test_release_key_file(make_server, tmp_path):
    a = make_server()
    key = os.path.join(a.data_dir, "release-key.pem")
    pub_a = _token_release_key(a, "a")
    # a second server given the first one's key signs as it does, and makes no key of its own
    b = make_server("--release-key-file", key)
    assert _token_release_key(b, "b") == pub_a
    assert not os.path.exists(os.path.join(b.data_dir, "release-key.pem"))
    rel = _publish(b, b"\x7fELF b" * 100, "9.9.2")
    _verify_release(a, tmp_path, rel, b"\x7fELF b" * 100)
    b.stop()
    # the environment's name for it
    os.environ["DAVIT_RELEASE_KEY_FILE"] = key
    try:
        b.start()
    finally:
        del os.environ["DAVIT_RELEASE_KEY_FILE"]
    assert _token_release_key(b, "b2") == pub_a
    # a missing file: one line naming it
    missing = str(tmp_path / "nope.pem")
    p = subprocess.run([a.binary, "server", "--data-dir", str(tmp_path / "v9"), "--listen", "127.0.0.1:0",
                        "--release-key-file", missing], capture_output=True, timeout=60)
    assert p.returncode != 0 and missing.encode() in p.stderr, p.stderr


@on_sqlite
def test_release_key_changed_on_sqlite_is_kept(server, tmp_path):
    """On SQLite the data directory's key is the truth, as before issue 18: a new one is taken
    (and recorded), with a warning."""
    before = _token_release_key(server, "p1")
    server.stop()
    _new_key(os.path.join(server.data_dir, "release-key.pem"))
    server.start()
    after = _token_release_key(server, "p2")
    assert after != before
    assert "release key changed" in server.log()


@pytest.fixture(scope="module")
def pair():
    """Servers A and B on one database; B has A's release key (--release-key-file)."""
    url = pg_cluster.shared().create_db("shared")
    base = tempfile.mkdtemp(prefix="davit-module-")
    for d in ("a", "b"):
        os.mkdir(os.path.join(base, d))
    a = Server(os.path.join(base, "a"), "--database", url)
    b = None
    try:
        b = Server(os.path.join(base, "b"), "--database", url, "--release-key-file",
                   os.path.join(a.data_dir, "release-key.pem"))
        b.token = a.token  # the database's admin token, printed by the first server only
        yield a, b, url
    finally:
        if b:
            check_stopped(b)
        check_stopped(a)
        shutil.rmtree(base, ignore_errors=True)


@on_postgres
def test_challenge_from_one_server_registers_on_another_once(pair):
    a, b, _ = pair
    token, key = a.create_pool("ch")
    la = Launcher(a, token, key)
    ch = la.challenge()  # from A
    body = la.register_body(ch)
    data = b.ok("POST", "/api/v1/launcher/register", body, token=None)  # through B
    assert data["launcher_id"]
    st, data, _ = a.request("POST", "/api/v1/launcher/register", body, token=None)
    assert st == 401 and data["error"] == "challenge unknown, expired or already used", (st, data)
    st, data, _ = b.request("POST", "/api/v1/launcher/register", body, token=None)
    assert st == 401, (st, data)


@on_postgres
def test_one_challenge_raced_on_two_servers_registers_once(pair):
    a, b, _ = pair
    token, key = a.create_pool("race")
    la = Launcher(a, token, key)
    for _ in range(5):
        body = la.register_body(la.challenge())
        got = {}
        go = threading.Barrier(2)

        def reg(server):
            go.wait()
            got[server.port] = server.request("POST", "/api/v1/launcher/register", body, token=None)[0]

        ts = [threading.Thread(target=reg, args=(s,)) for s in (a, b)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(got.values()) == [200, 401], got


@on_postgres
def test_release_published_on_one_server_downloads_from_another(pair, tmp_path):
    a, b, _ = pair
    blob = os.urandom(2 * 1024 * 1024)
    rel = _publish(a, blob, "9.8.1")
    assert not os.path.exists(os.path.join(b.data_dir, "releases", rel["sha256"]))
    st, body, headers = b.request("GET", rel["url"], token=None)
    assert st == 200 and body == blob
    assert headers["X-Davit-Signature"] == rel["signature"]
    _verify_release(b, tmp_path, rel, body)  # with B's pool token's key: the same key as A's
    assert _token_release_key(a, "ka") == _token_release_key(b, "kb")
    # B cached it: served again from its file
    assert os.path.exists(os.path.join(b.data_dir, "releases", rel["sha256"]))
    latest = b.ok("GET", "/api/v1/releases/latest?kind=worker&arch=amd64", token=None)
    assert latest["id"] == rel["id"]


@on_postgres
def test_a_server_with_another_release_key_is_refused(pair, tmp_path):
    a, _, url = pair
    data = tmp_path / "c"
    p = subprocess.run([DAVIT, "server", "--data-dir", str(data), "--listen", "127.0.0.1:0",
                        "--database", url], capture_output=True, timeout=60)
    err = p.stderr.decode()
    assert p.returncode != 0, err
    lines = [l for l in err.splitlines() if "release key" in l]
    assert len(lines) == 1, err
    assert "--release-key-file" in lines[0] and "release-key.pem" in lines[0], lines[0]
    assert lines[0].count("sha256 ") == 2, lines[0]
    assert pg_cluster.PASSWORD not in err
    # its own key, made at that start, stays for the operator to replace
    assert os.path.exists(data / "release-key.pem")
