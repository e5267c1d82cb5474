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
