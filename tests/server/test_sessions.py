"""Browser sessions (docs/security.md, "Browser sessions"): sign-in with an API token gives an
HttpOnly, SameSite=Strict cookie (Secure under TLS) naming a server-side session; with the
cookie, a request that changes something needs the session's CSRF value and must not come
from another site; sign-out and a token's revocation end the session at once.

One server for the module (and one with TLS for the Secure attribute): each test makes its
own tokens and sessions."""
import http.client
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile

import pytest

from davit_fixtures import check_stopped
from davit_harness import Server, wait_for

SESSION = "/api/v1/session"


@pytest.fixture(scope="module")
def tmp_dir():
    d = tempfile.mkdtemp(prefix="davit-sessions-")
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def srv(tmp_dir):
    (tmp_dir / "srv").mkdir()
    s = Server(tmp_dir / "srv", "--sweep-interval", "1s")  # test_expired_session_is_swept
    yield s
    check_stopped(s)


def make_token(srv, name, role):
    data = srv.ok("POST", "/api/v1/tokens", {"name": name, "role": role}, status=201)
    assert data["name"] == name and data["role"] == role
    return data["token"]


def cookie_of(headers, name="davit_session"):
    """The session id from a Set-Cookie header, and the header's attributes."""
    sc = headers["Set-Cookie"]
    parts = [p.strip() for p in sc.split(";")]
    got, _, value = parts[0].partition("=")
    assert got == name
    return value, parts[1:]


def sign_in(srv, token, headers=None):
    st, data, h = srv.request("POST", SESSION, {"token": token}, token=None, headers=headers)
    assert st == 200, (st, data)
    sid, attrs = cookie_of(h)
    return sid, data, attrs


def with_cookie(srv, method, path, sid, body=None, csrf=None, headers=None):
    h = {"Cookie": "davit_session=" + sid}
    if csrf is not None:
        h["X-CSRF-Token"] = csrf
    h.update(headers or {})
    return srv.request(method, path, body, token=None, headers=h)


def test_sign_in_cookie_and_session(srv):
    tok = make_token(srv, "s-viewer", "viewer")
    sid, data, attrs = sign_in(srv, tok)
    assert data["name"] == "s-viewer" and data["role"] == "viewer" and len(data["csrf"]) >= 22
    assert "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/" in attrs
    assert "Secure" not in attrs  # plain HTTP on loopback
    # at least 128 random bits: 43 base64url characters are 256
    assert len(sid) >= 22 and tok not in sid
    # the session shows the same, and the cookie works on the API
    st, shown, _ = with_cookie(srv, "GET", SESSION, sid)
    assert st == 200 and shown == data
    st, _, _ = with_cookie(srv, "GET", "/api/v1/pools", sid)
    assert st == 200
    # no cookie: not signed in (a bearer alone does not make a browser session)
    st, err, _ = srv.request("GET", SESSION, token=None)
    assert st == 401 and set(err) == {"error"}
    st, err, _ = srv.request("GET", SESSION, token=tok)
    assert st == 401
    st, err, _ = with_cookie(srv, "GET", SESSION, "not-a-session")
    assert st == 401 and "not-a-session" not in err["error"]


def test_database_holds_no_token_or_session_id(srv):
    tok = make_token(srv, "s-stored", "operator")
    sid, data, _ = sign_in(srv, tok)
    dump = srv.db_dump()
    assert "web_sessions" in dump and tok not in dump and sid not in dump


def test_wrong_token_is_401_without_echo(srv):
    bad = "dvt_WRONGTOKENxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    st, data, h = srv.request("POST", SESSION, {"token": bad}, token=None)
    assert st == 401 and set(data) == {"error"} and bad not in data["error"] and "Set-Cookie" not in h
    st, data, h = srv.request("POST", SESSION, {"token": ""}, token=None)
    assert st == 401 and "Set-Cookie" not in h
    st, data, h = srv.request("POST", SESSION, b'{"token": 7}', token=None)
    assert st == 400 and "Set-Cookie" not in h


def test_csrf_missing_wrong_right(srv):
    tok = make_token(srv, "s-operator", "operator")
    sid, data, _ = sign_in(srv, tok)
    path = "/api/v1/workers/999999/drain"  # reaches its handler only past the checks: 404
    st, err, _ = with_cookie(srv, "POST", path, sid, {})
    assert st == 403 and err == {"error": "missing or wrong CSRF token"}
    st, err, _ = with_cookie(srv, "POST", path, sid, {}, csrf=data["csrf"][:-1] + "x")
    assert st == 403 and err == {"error": "missing or wrong CSRF token"}
    st, err, _ = with_cookie(srv, "POST", path, sid, {}, csrf=data["csrf"])
    assert st == 404, err
    # another session's CSRF value is not this one's
    _, other, _ = sign_in(srv, tok)
    st, err, _ = with_cookie(srv, "POST", path, sid, {}, csrf=other["csrf"])
    assert st == 403
    # a bearer needs none
    st, err, _ = srv.request("POST", path, {}, token=tok)
    assert st == 404, err


def test_cross_site_refused(srv):
    tok = make_token(srv, "s-cross", "operator")
    sid, data, _ = sign_in(srv, tok)
    path = "/api/v1/workers/999999/drain"
    good = data["csrf"]
    st, err, _ = with_cookie(srv, "POST", path, sid, {}, csrf=good, headers={"Sec-Fetch-Site": "cross-site"})
    assert st == 403 and set(err) == {"error"}
    st, err, _ = with_cookie(srv, "POST", path, sid, {}, csrf=good, headers={"Origin": "https://evil.example"})
    assert st == 403 and "evil" not in err["error"]
    # the same site, as a browser says it, passes
    origin = "http://127.0.0.1:%d" % srv.port
    st, err, _ = with_cookie(srv, "POST", path, sid, {}, csrf=good,
                             headers={"Sec-Fetch-Site": "same-origin", "Origin": origin})
    assert st == 404, err
    # a cross-site sign-in (login CSRF) is refused too
    st, err, h = srv.request("POST", SESSION, {"token": tok}, token=None, headers={"Sec-Fetch-Site": "cross-site"})
    assert st == 403 and "Set-Cookie" not in h


def test_sign_out_kills_the_session(srv):
    tok = make_token(srv, "s-out", "viewer")
    sid, data, _ = sign_in(srv, tok)
    sid2, _, _ = sign_in(srv, tok)
    # sign-out needs the CSRF value too
    st, err, _ = with_cookie(srv, "DELETE", SESSION, sid)
    assert st == 403
    st, body, h = with_cookie(srv, "DELETE", SESSION, sid, csrf=data["csrf"])
    assert st == 204
    value, attrs = cookie_of(h)
    assert value == "" and "Max-Age=0" in attrs and "HttpOnly" in attrs
    st, _, _ = with_cookie(srv, "GET", SESSION, sid)
    assert st == 401
    st, _, _ = with_cookie(srv, "GET", "/api/v1/pools", sid)
    assert st == 401
    # the token's other session lives on
    st, _, _ = with_cookie(srv, "GET", SESSION, sid2)
    assert st == 200


def test_revoke_kills_sessions(srv):
    tok = make_token(srv, "s-revoked", "operator")
    sid, data, _ = sign_in(srv, tok)
    srv.ok("DELETE", "/api/v1/tokens/s-revoked")
    st, _, _ = with_cookie(srv, "GET", "/api/v1/pools", sid)
    assert st == 401
    st, _, _ = with_cookie(srv, "GET", SESSION, sid)
    assert st == 401
    st, _, _ = srv.request("GET", "/api/v1/pools", token=tok)
    assert st == 401
    st, _, _ = srv.request("POST", SESSION, {"token": tok}, token=None)
    assert st == 401
    # a new token of the same name does not bring the old sessions back
    make_token(srv, "s-revoked", "admin")
    st, _, _ = with_cookie(srv, "GET", SESSION, sid)
    assert st == 401


def test_expired_session_is_refused_then_swept(srv):
    tok = make_token(srv, "s-expiry", "viewer")
    sid, data, _ = sign_in(srv, tok)
    # as if its 12 idle hours (or 7 days) had passed: another connection to the database
    n = srv.db_query("UPDATE web_sessions SET expires_ms = 1 WHERE csrf = ? RETURNING 1",
                     (data["csrf"],))
    assert len(n) == 1
    # refused at once, before any sweep
    st, _, _ = with_cookie(srv, "GET", SESSION, sid)
    assert st == 401
    # and deleted by the background sweep (every second here)
    wait_for("the sweep deletes the expired session",
             lambda: srv.db_query("SELECT count(*) FROM web_sessions WHERE csrf = ?",
                                  (data["csrf"],))[0][0] == 0, limit=60)


def test_admin_token_of_first_start_signs_in(srv):
    sid, data, _ = sign_in(srv, srv.token)
    assert data["name"] == "admin" and data["role"] == "admin"
    st, toks, _ = with_cookie(srv, "GET", "/api/v1/tokens", sid)
    assert st == 200 and toks["tokens"][0]["name"] == "admin"


def test_secure_cookie_behind_a_tls_proxy(make_server):
    # a TLS-terminating proxy in front: the server sees plain HTTP, browsers use https
    # (the harness reads the port from the "listening on URL" line, which shows --public-url)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = make_server("--listen", "127.0.0.1:%d" % port, "--public-url", "https://127.0.0.1:%d" % port)
    st, data, h = s.request("POST", SESSION, {"token": s.token}, token=None)
    assert st == 200
    # named __Host-: a sibling host cannot toss in a cookie of that name (docs/security.md)
    sid, attrs = cookie_of(h, "__Host-davit_session")
    assert "Secure" in attrs and "Path=/" in attrs and not any(a.startswith("Domain") for a in attrs)
    # only that name signs in: a plain davit_session cookie (tossed) is not read
    st, _, _ = s.request("GET", "/api/v1/session", token=None,
                         headers={"Cookie": "__Host-davit_session=" + sid})
    assert st == 200
    st, _, _ = s.request("GET", "/api/v1/session", token=None,
                         headers={"Cookie": "davit_session=" + sid})
    assert st == 401


def test_secure_cookie_under_tls(tmp_path):
    tmp = tmp_path
    cert, key = str(tmp / "cert.pem"), str(tmp / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    s = Server(tmp, "--tls-cert", cert, "--tls-key", key)
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", s.port, timeout=30,
                                           context=ssl.create_default_context(cafile=cert))
        conn.request("POST", SESSION, body=b'{"token": "%s"}' % s.token.encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        _, attrs = cookie_of(dict(resp.getheaders()), "__Host-davit_session")
        assert "Secure" in attrs and "HttpOnly" in attrs and "SameSite=Strict" in attrs
        conn.close()
    finally:
        check_stopped(s)
