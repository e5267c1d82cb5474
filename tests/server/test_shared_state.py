"""What servers sharing one database share beyond its tables (issue 18): registration challenges,
release files and the release-signing key.

On SQLite (one server) a restart stands for the second server: a challenge outlives it, a release
whose cached file is gone is served from the database.
"""
import base64
import hashlib
import json
import os
import stat
import subprocess

from davit_harness import Launcher


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
