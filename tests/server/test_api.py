"""The API over real HTTP: pools, the launcher protocol, the auth matrix, bad input."""

import base64
import json
import os
import socket
import threading
import time

from davit_harness import Launcher, openssl_key, spool_record


def is_json_error(data):
    return isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"]


def test_healthz_and_admin_token_needed(server):
    st, data, _ = server.request("GET", "/healthz", token=None)
    assert st == 200 and data["status"] == "ok"
    for method, path in [("GET", "/api/v1/pools"), ("GET", "/api/v1/runs"), ("POST", "/api/v1/runs"),
                         ("GET", "/api/v1/workers"), ("POST", "/api/v1/releases?arch=amd64&version=1")]:
        st, data, _ = server.request(method, path, token=None)
        assert st == 401 and is_json_error(data), (method, path, st, data)
        st, data, _ = server.request(method, path, token="dva_wrong")
        assert st == 401 and is_json_error(data)


def test_pool_lifecycle_and_token(server):
    token, key = server.create_pool("alpha")
    t = json.loads(base64.b64decode(token))
    assert set(t) == {"v", "endpoint", "pool_id", "pool_secret", "release_key"}
    assert t["endpoint"] == "http://127.0.0.1:%d" % server.port
    assert "BEGIN PUBLIC KEY" in t["release_key"]
    pools = server.ok("GET", "/api/v1/pools")["pools"]
    assert [p["name"] for p in pools] == ["alpha"]
    assert "secret" not in json.dumps(pools) and t["pool_secret"] not in json.dumps(pools)
    shown = server.ok("GET", "/api/v1/pools/alpha")
    assert shown["id"] == t["pool_id"] and shown["keytype"] == "ed25519"
    st, data, _ = server.request("POST", "/api/v1/pools", {"name": "alpha", "csr": open(key.replace(".key", ".csr")).read()})
    assert st == 409 and is_json_error(data)
    server.ok("DELETE", "/api/v1/pools/alpha")
    st, data, _ = server.request("GET", "/api/v1/pools/alpha")
    assert st == 404 and is_json_error(data)


def test_key_types(server, tmp_path):
    for i, kind in enumerate(["rsa", "ec", "ed25519"]):
        token, key = server.create_pool("k%d" % i, kind)
        la = Launcher(server, token, key)
        la.register()
        assert la.session.startswith("dvs_")
    for kind in ["rsa1024", "ec384"]:
        key, csr = openssl_key(str(tmp_path), kind, "weak" + kind)
        st, data, _ = server.request("POST", "/api/v1/pools", {"name": "weak", "csr": open(csr).read()})
        assert st == 400 and is_json_error(data), (kind, data)


def test_run_flow_logs_and_secrets(make_server):
    # Plaintext secrets only with --allow-plaintext-secrets, and then sealed to the pool's key at
    # once: neither the store nor the launcher's message holds them (docs/secrets.md).
    server = make_server("--allow-plaintext-secrets")
    token, key = server.create_pool("p", kind="ec")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p", secrets={"TOKEN": "s3cr3t-value"}, env={"A": "1"})
    assert server.run(rid)["state"] == "queued"
    msgs = la.poll()
    run_msgs = [m for m in msgs if m["type"] == "run"]
    assert len(run_msgs) == 1
    m = run_msgs[0]
    assert m["run"]["id"] == rid and list(m["run"]["spec"]["sealed"]["secrets"]) == ["TOKEN"]
    assert "s3cr3t-value" not in json.dumps(m) and "secrets" not in m["run"]["spec"]
    assert server.run(rid)["state"] == "assigned"
    # secrets never come back from the admin API
    shown = server.run(rid)
    assert "s3cr3t-value" not in json.dumps(shown) and "secrets" not in shown["spec"]
    assert la.event(rid, "preparing")[0] == 200
    st, data, _ = la.event(rid, "running", phase="plan")
    assert st == 200 and data["state"] == "running"
    assert server.run(rid)["phase"] == "plan"
    chunk1 = spool_record("S", 1, b"", "plan") + spool_record("c", 2, "run echo hi", "plan")
    chunk2 = spool_record("o", 3, "hi\n", "plan") + spool_record("E", 4, "outcome=succeeded exit=0 duration_ms=1", "plan")
    chunk3 = spool_record("R", 5, "outcome=finished phase=- exit=0 duration_ms=2 reason=all phases succeeded")
    st, data, _ = la.log(rid, 0, chunk1)
    assert st == 200 and data["next_offset"] == len(chunk1)
    # a repeated chunk is acknowledged and not stored twice
    st, data, _ = la.log(rid, 0, chunk1)
    assert st == 200 and data["next_offset"] == len(chunk1)
    # a gap is refused with the expected offset
    st, data, _ = la.log(rid, len(chunk1) + len(chunk2), chunk3)
    assert st == 409 and data["next_offset"] == len(chunk1) and is_json_error(data)
    # an overlapping chunk stores only its new part
    st, data, _ = la.log(rid, 0, chunk1 + chunk2)
    assert st == 200 and data["next_offset"] == len(chunk1 + chunk2)
    st, data, _ = la.log(rid, len(chunk1 + chunk2), chunk3)
    assert st == 200
    # not whole records
    st, data, _ = la.log(rid, len(chunk1 + chunk2 + chunk3), b"@o 6 1 - 100\nshort")
    assert st == 400 and is_json_error(data)
    st, data, _ = la.event(rid, "result", outcome="finished", exit_code=0, reason="all phases succeeded")
    assert st == 200 and data["state"] == "finished"
    # a retried event is acknowledged again
    st, data, _ = la.event(rid, "result", seq=la.seq[rid], outcome="finished")
    assert st == 200
    raw = server.request("GET", "/api/v1/runs/%d/logs?format=raw" % rid)[1]
    assert raw == chunk1 + chunk2 + chunk3
    text = server.request("GET", "/api/v1/runs/%d/logs" % rid)[1].decode()
    assert "hi\n" in text and "$ echo hi" in text and "=== phase plan" in text and "outcome=finished" in text
    # the secret is gone from the database once the run ended
    assert server.db_query("SELECT secrets_json FROM runs WHERE id = ?", (rid,))[0][0] is None
    # and so is its ciphertext: the spec kept with the ended run has no sealed block
    spec = json.loads(server.db_query("SELECT spec_json FROM runs WHERE id = ?", (rid,))[0][0])
    assert "sealed" not in spec and spec["env"] == {"A": "1"}, spec
    assert "s3cr3t-value" not in server.log()
    metrics = server.request("GET", "/metrics", token=None)[1].decode()
    assert 'davit_runs{pool="p",state="finished"} 1' in metrics
    assert 'davit_runs_pending{pool="p"} 0' in metrics
    assert "davit_dispatch_latency_seconds_count 1" in metrics


def test_auth_matrix(make_server):
    server = make_server("--session-ttl", "2s")
    ta, ka = server.create_pool("a")
    tb, kb = server.create_pool("b")
    la, lb = Launcher(server, ta, ka), Launcher(server, tb, kb)
    la.register()
    lb.register()
    rid_b = server.submit("b")
    assert any(m["type"] == "run" for m in lb.poll())
    # pool A's session touching pool B's run
    st, data, _ = la.event(rid_b, "running", phase="plan")
    assert st == 403 and is_json_error(data)
    st, data, _ = la.log(rid_b, 0, spool_record("o", 1, "x"))
    assert st == 403 and is_json_error(data)
    # a launcher session is not an admin token
    st, data, _ = server.request("GET", "/api/v1/runs/%d" % rid_b, token=la.session)
    assert st == 401 and is_json_error(data)
    # wrong pool secret
    ch = la.challenge()
    st, data, _ = server.request("POST", "/api/v1/launcher/register",
                                 la.register_body(ch, pool_secret="dps_wrong"), token=None)
    assert st == 401 and is_json_error(data)
    # valid secret, signature by the wrong key (pool B's)
    ch = la.challenge()
    body = la.register_body(ch)
    wrong = Launcher(server, ta, kb)
    body["signature"] = wrong.signed(ch)
    st, data, _ = server.request("POST", "/api/v1/launcher/register", body, token=None)
    assert st == 401 and is_json_error(data)
    # a replayed challenge: first use works, the second is refused
    ch = la.challenge()
    body = la.register_body(ch)
    st, _, _ = server.request("POST", "/api/v1/launcher/register", body, token=None)
    assert st == 200
    st, data, _ = server.request("POST", "/api/v1/launcher/register", body, token=None)
    assert st == 401 and is_json_error(data)
    # a challenge of pool A cannot register in pool B
    ch = la.challenge()
    body = lb.register_body(ch)
    st, data, _ = server.request("POST", "/api/v1/launcher/register", body, token=None)
    assert st == 401 and is_json_error(data)
    # garbage and missing sessions
    st, data, _ = server.request("POST", "/api/v1/launcher/poll", {}, token="dvs_nope")
    assert st == 401 and is_json_error(data)
    st, data, _ = server.request("POST", "/api/v1/launcher/poll", {}, token=None)
    assert st == 401 and is_json_error(data)
    # an expired session (the server was started with --session-ttl 2s)
    old = la.session
    time.sleep(3)
    st, data, _ = server.request("POST", "/api/v1/launcher/heartbeat", {}, token=old)
    assert st == 401 and is_json_error(data)
    la.register()
    assert la.call("POST", "/api/v1/launcher/heartbeat", {})[0] == 200


def test_bad_input(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    cases = [
        ("POST", "/api/v1/pools", b"{not json", "admin"),
        ("POST", "/api/v1/pools", {"name": "x", "csr": "y", "extra": 1}, "admin"),
        ("POST", "/api/v1/pools", {"name": 5, "csr": "y"}, "admin"),
        ("POST", "/api/v1/pools", [1, 2], "admin"),
        ("POST", "/api/v1/pools", {"name": "x", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, "admin"),
        ("POST", "/api/v1/pools", {"name": "x", "csr": "hello"}, "admin"),
        ("POST", "/api/v1/pools", {"name": "Bad Name", "csr": "x"}, "admin"),
        ("POST", "/api/v1/runs", {"pool": "p", "image": "x", "phases": [], "bogus": 1}, "admin"),
        ("POST", "/api/v1/runs", {"pool": "p", "image": 7, "phases": [{"name": "a", "commands": ["x"]}]}, "admin"),
        ("POST", "/api/v1/runs", {"image": "x", "phases": [{"name": "a", "commands": ["x"]}]}, "admin"),
        ("POST", "/api/v1/runs", {"pool": "p", "image": "x", "phases": [{"name": "a", "timeout": "ten"}]}, "admin"),
        ("GET", "/api/v1/runs?state=bogus", None, "admin"),
        ("POST", "/api/v1/launcher/poll", {"ack": "x"}, la.session),
        ("POST", "/api/v1/launcher/poll", {"ack": 0, "what": 1}, la.session),
        ("POST", "/api/v1/launcher/challenge", {"pool_id": 1}, None),
        ("PUT", "/api/v1/launcher/runs/1/log", b"", la.session),
    ]
    for method, path, body, tok in cases:
        st, data, _ = server.request(method, path, body, token=tok)
        assert 400 <= st < 500 and is_json_error(data), (method, path, body, st, data)
    # a pool token cut short
    ch = la.challenge()
    body = la.register_body(ch)
    del body["pool_id"], body["pool_secret"]
    body["token"] = token[: len(token) // 2]
    st, data, _ = server.request("POST", "/api/v1/launcher/register", body, token=None)
    assert st == 400 and is_json_error(data) and "token" in data["error"]
    body["token"] = token[:-3]
    st, data, _ = server.request("POST", "/api/v1/launcher/register", body, token=None)
    assert st == 400 and is_json_error(data)
    # the whole token works
    ch = la.challenge()
    body = la.register_body(ch)
    del body["pool_id"], body["pool_secret"]
    body["token"] = token
    assert server.request("POST", "/api/v1/launcher/register", body, token=None)[0] == 200
    st, data, _ = server.request("GET", "/api/v1/nothing-here")
    assert st == 404 and is_json_error(data)
    st, data, _ = server.request("PATCH", "/api/v1/pools")
    assert st == 405 and is_json_error(data)
    assert server.request("GET", "/healthz", token=None)[0] == 200


def _big_body(server, length, chunked=False):
    """Sends a huge body to a 1 MB endpoint; returns the status line and body read."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    head = "POST /api/v1/pools HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n" % server.token
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else "Content-Length: %d\r\n\r\n" % length
    s.sendall(head.encode())
    stop = threading.Event()

    def pump():
        block = b"x" * 65536
        sent = 0
        try:
            while sent < length and not stop.is_set():
                if chunked:
                    s.sendall(b"10000\r\n" + block + b"\r\n")
                else:
                    s.sendall(block)
                sent += len(block)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection after refusing the body

    t = threading.Thread(target=pump)
    t.start()
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        stop.set()
        t.join()
        s.close()
    return data


def test_huge_bodies_refused(server):
    data = _big_body(server, 100 * 1024 * 1024)
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b'"error"' in data
    data = _big_body(server, 3 * 1024 * 1024, chunked=True)
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b'"error"' in data
    # an endless chunked body: dropped up to a limit, then the connection is closed
    data = _big_body(server, 100 * 1024 * 1024, chunked=True)
    assert data == b"" or data.startswith(b"HTTP/1.1 413")
    assert server.request("GET", "/healthz", token=None)[0] == 200
    assert server.ok("GET", "/api/v1/pools")["pools"] == []


def test_cancel(server):
    token, key = server.create_pool("p")
    rid = server.submit("p")
    r = server.ok("POST", "/api/v1/runs/%d/cancel" % rid, {})
    assert r["state"] == "canceled"
    st, data, _ = server.request("POST", "/api/v1/runs/%d/cancel" % rid, {})
    assert st == 409 and is_json_error(data)
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    assert any(m["type"] == "run" for m in la.poll())
    la.event(rid, "running", phase="plan")
    r = server.ok("POST", "/api/v1/runs/%d/cancel" % rid, {})
    assert r["state"] == "running" and r["cancel_requested"] is True
    m = la.poll_until(lambda m: m["type"] == "cancel")
    assert m["run_id"] == rid
    assert la.event(rid, "result", outcome="canceled", reason="canceled by user")[0] == 200
    assert server.run(rid)["state"] == "canceled"
    # delete is refused while a run is active, allowed after
    rid = server.submit("p")
    st, data, _ = server.request("DELETE", "/api/v1/pools/p")
    assert st == 409 and is_json_error(data)
    server.ok("POST", "/api/v1/runs/%d/cancel" % rid, {})
    server.ok("DELETE", "/api/v1/pools/p")


def test_follow_streams_until_the_end(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    la.poll()
    la.event(rid, "running", phase="plan")
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", "/api/v1/runs/%d/logs?follow=1" % rid, headers={"Authorization": "Bearer " + server.token})
    resp = conn.getresponse()
    assert resp.status == 200
    rec = spool_record("o", 1, "first line\n", "plan")
    la.log(rid, 0, rec)
    got = b""
    while b"first line" not in got:
        got += resp.read1(65536)
    rec2 = spool_record("o", 2, "second line\n", "plan")
    la.log(rid, len(rec), rec2)
    la.event(rid, "result", outcome="failed", exit_code=1, reason="phase plan failed")
    rest = resp.read()  # ends because the run ended
    conn.close()
    assert b"second line" in got + rest


def test_poll_returns_when_a_run_is_queued(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    result = {}

    def poller():
        start = time.time()
        result["msgs"] = la.poll(wait_s=20)
        result["took"] = time.time() - start

    t = threading.Thread(target=poller)
    t.start()
    time.sleep(0.5)
    rid = server.submit("p")
    t.join()
    assert [m["run"]["id"] for m in result["msgs"] if m["type"] == "run"] == [rid]
    print("poll returned after %.3f s" % result["took"])


def test_releases(server, tmp_path):
    blob = b"\x7fELF fake worker " * 1000
    st, data, _ = server.request("POST", "/api/v1/releases?arch=amd64&version=1.2.3", blob,
                                 headers={"Content-Type": "application/octet-stream"})
    assert st == 201, data
    import hashlib
    assert data["sha256"] == hashlib.sha256(blob).hexdigest()
    latest = server.ok("GET", "/api/v1/releases/latest?kind=worker&arch=amd64", token=None)
    assert latest["id"] == data["id"]
    st, body, headers = server.request("GET", latest["url"], token=None)
    assert st == 200 and body == blob
    # the signature verifies with the release key from a pool token, by openssl
    token, _ = server.create_pool("p")
    pub = json.loads(base64.b64decode(token))["release_key"]
    (tmp_path / "pub.pem").write_text(pub)
    msg = "davit-release-v1\nkind=worker\narch=amd64\nversion=1.2.3\nsha256=%s\n" % data["sha256"]
    (tmp_path / "msg").write_bytes(msg.encode())
    (tmp_path / "sig").write_bytes(base64.b64decode(data["signature"]))
    import subprocess
    subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin",
                    "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig")], check=True, capture_output=True)
    st, data, _ = server.request("POST", "/api/v1/releases?arch=sparc&version=1", b"x")
    assert st == 400 and is_json_error(data)
    st, data, _ = server.request("GET", "/api/v1/releases/latest?kind=launcher&arch=arm64", token=None)
    assert st == 404 and is_json_error(data)


def test_https_and_plain_http_only_on_loopback(make_server, tmp_path):
    import os
    import subprocess
    from davit_harness import DAVIT
    # plain HTTP on a non-loopback address is refused before anything listens
    p = subprocess.run([DAVIT, "server", "--data-dir", str(tmp_path / "v0"), "--listen", "0.0.0.0:0"],
                       capture_output=True, timeout=60)
    assert p.returncode != 0 and b"loopback" in p.stderr
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server = make_server("--tls-cert", cert, "--tls-key", key)
    import ssl
    import http.client
    ctx = ssl.create_default_context(cafile=cert)
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=30)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()
    e = dict(os.environ, DAVIT_SERVER="https://127.0.0.1:%d" % server.port, DAVIT_API_TOKEN=server.token,
             DAVIT_CA_FILE=cert)
    p = subprocess.run([DAVIT, "pool", "list"], env=e, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    e.pop("DAVIT_CA_FILE")
    p = subprocess.run([DAVIT, "pool", "list"], env=e, capture_output=True, timeout=60)
    assert p.returncode == 7  # an unknown certificate is not trusted


def test_launcher_binary_download(server):
    st, data, _ = server.request("POST", "/api/v1/releases?kind=launcher&arch=amd64&version=2.0.0", b"LAUNCHER",
                                 headers={"Content-Type": "application/octet-stream"})
    assert st == 201
    st, body, headers = server.request("GET", "/api/v1/releases/latest?kind=launcher&arch=amd64&download=1", token=None)
    assert st == 200 and body == b"LAUNCHER" and headers["X-Davit-Version"] == "2.0.0"


def test_builtin_worker_published_on_first_start(tmp_path):
    import hashlib
    import platform
    import shutil
    from davit_harness import DAVIT, Server
    from davit_fixtures import check_stopped
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(DAVIT, bindir / "davit")
    # the build's own worker: the server publishes only an ELF file for the architecture
    with open(os.path.join(os.path.dirname(DAVIT), "davit-worker"), "rb") as f:
        worker = f.read()
    (bindir / "davit-worker").write_bytes(worker)
    server = Server(tmp_path, binary=str(bindir / "davit"))
    try:
        arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "amd64"
        rel = server.ok("GET", "/api/v1/releases/latest?kind=worker&arch=%s" % arch, token=None)
        assert rel["sha256"] == hashlib.sha256(worker).hexdigest()
        # a run assignment carries it
        from davit_harness import Launcher
        token, key = server.create_pool("p")
        la = Launcher(server, token, key, arch=arch)
        la.register()
        server.submit("p")
        m = [m for m in la.poll() if m["type"] == "run"][0]
        assert m["worker"]["sha256"] == rel["sha256"] and m["worker"]["url"] == rel["url"]
    finally:
        check_stopped(server)


def test_text_log_of_many_small_records_is_complete(server):
    """A text log decoded in many rounds (here 20000 marker records, several
    times the follow buffer) comes out whole, each record exactly once."""
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    la.poll_until(lambda m: m["type"] == "run")
    la.event(rid, "running", phase="plan")
    n = 20000
    name = "a-phase-with-a-long-name-" + "x" * 30
    data = b"".join(spool_record("E", i + 1, "outcome=succeeded exit=0 duration_ms=%d" % i, name)
                    for i in range(n))
    st, body, _ = la.log(rid, 0, data)
    assert st == 200 and body["next_offset"] == len(data), body
    la.event(rid, "result", outcome="finished", exit_code=0, reason="done")
    text = server.request("GET", "/api/v1/runs/%d/logs" % rid)[1].decode()
    lines = [l for l in text.splitlines() if l.startswith("=== phase %s ended" % name)]
    assert len(lines) == n
    assert lines[-1].endswith("duration_ms=%d" % (n - 1))


def test_metrics_token(make_server, tmp_path):
    """Issue 12: /metrics is open by default, and answers only the metrics or the admin token
    once one is set (a file, so that the token is not in `ps`)."""
    path = tmp_path / "metrics.token"
    path.write_text("scrape-token-0123456789\n")
    server = make_server("--metrics-token-file", str(path))
    st, body, _ = server.request("GET", "/metrics", token=None)
    assert st == 401 and is_json_error(body)
    assert server.request("GET", "/metrics", token="wrong-token-0123456789")[0] == 401
    st, body, _ = server.request("GET", "/metrics", token="scrape-token-0123456789")
    assert st == 200 and b"davit_runs_pending" in body
    assert server.request("GET", "/metrics")[0] == 200  # the admin token
    assert server.request("GET", "/healthz", token=None)[0] == 200
    short = tmp_path / "short.token"
    short.write_text("short")
    import subprocess
    p = subprocess.run([server.binary, "server", "--data-dir", str(tmp_path / "s2"),
                        "--metrics-token-file", str(short)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "at least 16 characters" in p.stderr, p.stderr
    assert "short" not in p.stderr


def test_raw_log_downloads(make_server):
    """A raw log comes back byte for byte from any offset: chunked while the run
    runs, and with its size (Content-Length, sent from large buffers) once the
    run has ended. The log spans several stored rows (256 KiB each)."""
    server = make_server()
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    assert any(m["type"] == "run" for m in la.poll())
    assert la.event(rid, "preparing")[0] == 200
    assert la.event(rid, "running", phase="plan")[0] == 200
    log = b""
    for seq in range(1, 13):  # 12 records of 64 KiB: about 790 KB, four stored rows
        rec = spool_record("o", seq, bytes([0x41 + seq]) * 65536, phase="plan")
        st, data, _ = la.log(rid, len(log), rec)
        assert st == 200 and data["next_offset"] == len(log) + len(rec)
        log += rec
    url = "/api/v1/runs/%d/logs?format=raw" % rid
    for off in (0, 1, 262143, 262144, 600001, len(log) - 1, len(log)):
        st, got, h = server.request("GET", url + "&offset=%d" % off)
        assert st == 200 and got == log[off:], off
        assert "Content-Length" not in h and h.get("Transfer-Encoding") == "chunked", h
    st, data, _ = la.event(rid, "result", outcome="finished", exit_code=0)
    assert st == 200 and data["state"] == "finished"
    for off in (0, 1, 262144, 700000, len(log) - 1, len(log), len(log) + 5):
        st, got, h = server.request("GET", url + "&offset=%d" % off)
        assert st == 200 and got == log[off:], off
        assert h.get("Content-Length") == str(max(len(log) - off, 0)), (off, h)
    # a page of a finished log is still a page, and text is still chunked
    st, got, _ = server.request("GET", url + "&offset=5&limit=300000")
    assert st == 200 and log[5:].startswith(got) and len(got) >= 300000
    st, text, h = server.request("GET", "/api/v1/runs/%d/logs" % rid)
    assert st == 200 and h.get("Transfer-Encoding") == "chunked" and b"M" * 1000 in text
