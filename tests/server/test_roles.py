"""Who may do what (docs/security.md, "Roles"): every route of src/server/routes.c with the least
role it needs, checked against every kind of caller: none, viewer, operator, admin, and a revoked
token, each with a bearer token and (for the roles) with a browser session's cookie.

ROLES below is the table the docs show. The test fails when routes.c has a route the table does
not list, or lists it with another role: a new endpoint is given its role on purpose, here and
in routes.c.

The requests name objects that do not exist (id 999999, empty bodies): a caller let through gets
404 or 400 from the handler, never 401 or 403, and nothing changes, so one server serves all."""
import os
import re
import subprocess

import pytest

from davit_harness import DAVIT, wait_for

ROUTES_C = os.path.join(os.environ.get("DAVIT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
                        "src", "server", "routes.c")

# (method, pattern): what it needs. none: open; viewer/operator/admin: at least that role;
# cookie: a browser session only; launcher: a launcher's session; metrics: /metrics' own rule.
ROLES = {
    ("GET", "/healthz"): "none",
    ("GET", "/metrics"): "metrics",
    ("POST", "/api/v1/pools"): "admin",
    ("GET", "/api/v1/pools"): "viewer",
    ("GET", "/api/v1/pools/*"): "viewer",
    ("DELETE", "/api/v1/pools/*"): "admin",
    ("POST", "/api/v1/pools/*/reset"): "admin",
    ("POST", "/api/v1/pools/*/cycle"): "operator",
    ("GET", "/api/v1/pools/*/scaling"): "viewer",
    ("POST", "/api/v1/runs"): "operator",
    ("GET", "/api/v1/runs"): "viewer",
    ("GET", "/api/v1/runs/*"): "viewer",
    ("DELETE", "/api/v1/runs/*"): "admin",
    ("POST", "/api/v1/runs/*/cancel"): "operator",
    ("GET", "/api/v1/runs/*/logs"): "viewer",
    ("GET", "/api/v1/workers"): "viewer",
    ("GET", "/api/v1/watch"): "viewer",
    ("POST", "/api/v1/workers/*/drain"): "operator",
    ("POST", "/api/v1/workers/*/undrain"): "operator",
    ("POST", "/api/v1/releases"): "admin",
    ("GET", "/api/v1/releases"): "viewer",
    ("GET", "/api/v1/releases/latest"): "none",
    ("GET", "/api/v1/releases/*/download"): "none",
    ("POST", "/api/v1/tokens"): "admin",
    ("GET", "/api/v1/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/*"): "admin",
    ("POST", "/api/v1/session"): "none",
    ("GET", "/api/v1/session"): "cookie",
    ("DELETE", "/api/v1/session"): "cookie",
    ("POST", "/api/v1/launcher/challenge"): "none",
    ("POST", "/api/v1/launcher/register"): "none",
    ("POST", "/api/v1/launcher/poll"): "launcher",
    ("POST", "/api/v1/launcher/heartbeat"): "launcher",
    ("POST", "/api/v1/launcher/runs/*/events"): "launcher",
    ("PUT", "/api/v1/launcher/runs/*/log"): "launcher",
}

# Routes another branch adds (h14-ui: the web UI's files, public: the data comes from the API,
# which checks the role). Checked like the others once routes.c has them; not missing before.
ELSEWHERE = {
    ("GET", "/"): "none",
    ("GET", "/ui/*"): "none",
}

KIND = {"AUTH_NONE": "none", "AUTH_VIEWER": "viewer", "AUTH_OPERATOR": "operator", "AUTH_ADMIN": "admin",
        "AUTH_COOKIE": "cookie", "AUTH_SESSION": "launcher", "AUTH_METRICS": "metrics"}
RANK = {"viewer": 1, "operator": 2, "admin": 3}


def parse_routes():
    with open(ROUTES_C) as f:
        text = f.read()
    found = re.findall(r'\{"([A-Z]+)",\s*"([^"]+)",\s*(AUTH_[A-Z]+)\s*,', text)
    assert len(found) >= 30, "cannot read the route table of " + ROUTES_C
    return {(m, p): KIND.get(a, a) for m, p, a in found}


def test_table_lists_every_route():
    routes = parse_routes()
    table = {**ROLES, **{k: v for k, v in ELSEWHERE.items() if k in routes}}
    missing = sorted(set(routes) - set(table))
    assert not missing, "routes.c has routes this table does not list (give each its role): %s" % missing
    stale = sorted(set(ROLES) - set(routes))
    assert not stale, "the table lists routes routes.c does not have: %s" % stale
    differ = {k: (routes[k], table[k]) for k in routes if routes[k] != table[k]}
    assert not differ, "routes.c and the table disagree (routes.c, table): %s" % differ


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server


@pytest.fixture(scope="module")
def callers(srv):
    """name -> (bearer token, (session id, csrf) or None)."""
    out = {"none": (None, None)}
    for role in ("viewer", "operator", "admin"):
        tok = srv.ok("POST", "/api/v1/tokens", {"name": "r-" + role, "role": role}, status=201)["token"]
        st, data, h = srv.request("POST", "/api/v1/session", {"token": tok}, token=None)
        assert st == 200, data
        sid = h["Set-Cookie"].split(";")[0].split("=", 1)[1]
        out[role] = (tok, (sid, data["csrf"]))
    tok = srv.ok("POST", "/api/v1/tokens", {"name": "r-revoked", "role": "admin"}, status=201)["token"]
    srv.ok("DELETE", "/api/v1/tokens/r-revoked")
    out["revoked"] = (tok, None)
    out["first-start admin"] = (srv.token, None)
    return out


def call(srv, method, pattern, token=None, session=None):
    path = pattern.replace("*", "999999")
    body = None if method in ("GET", "DELETE") else {}
    headers = {}
    if session:
        headers["Cookie"] = "davit_session=" + session[0]
        headers["X-CSRF-Token"] = session[1]
    return srv.request(method, path, body, token=token, headers=headers)


def expected(need, caller):
    """'401', '403' or 'pass' (neither) for a caller with role caller (None: no credentials)."""
    if need == "none" or (need == "metrics"):  # no metrics token set: /metrics is open
        return "pass"
    if caller in (None, "revoked"):
        return "401"
    if need == "launcher":
        return "401"  # an API token is not a launcher's session
    if need == "cookie":
        return None  # checked below: only a cookie
    return "pass" if RANK[caller] >= RANK[need] else "403"


def outcome(st):
    return "401" if st == 401 else "403" if st == 403 else "pass"


def test_each_role_against_each_endpoint(srv, callers):
    bad = []
    table = {**ROLES, **{k: v for k, v in ELSEWHERE.items() if k in parse_routes()}}
    for (method, pattern), need in sorted(table.items()):
        if pattern == "/api/v1/session":
            continue  # test_session_routes: DELETE would end the session the others use
        for name, (tok, session) in callers.items():
            role = {"none": None, "first-start admin": "admin"}.get(name, name)
            want = expected(need, role)
            st, data, _ = call(srv, method, pattern, token=tok)
            if outcome(st) != want:
                bad.append((method, pattern, name, "bearer", st, data))
            if session and want is not None:
                st, data, _ = call(srv, method, pattern, session=session)
                if outcome(st) != want:
                    bad.append((method, pattern, name, "cookie", st, data))
            if st in (401, 403):
                assert set(data) == {"error"} and "\n" not in data["error"], data
    assert not bad, "\n".join(map(repr, bad))


def test_session_routes(srv, callers):
    # a bearer token is no browser session; every role's cookie is
    for name, (tok, session) in callers.items():
        assert call(srv, "GET", "/api/v1/session", token=tok)[0] == 401
        if session:
            st, data, _ = call(srv, "GET", "/api/v1/session", session=session)
            assert st == 200 and data["role"] == name
    assert call(srv, "DELETE", "/api/v1/session")[0] == 401


def test_request_log_names_the_token(srv, callers):
    call(srv, "POST", "/api/v1/workers/*/drain", token=callers["operator"][0])
    call(srv, "POST", "/api/v1/workers/*/undrain", session=callers["viewer"][1])

    def logged(status, by):  # the line is written when the request ends, after its answer
        return any("path=/api/v1/workers/999999/" in line and "status=%d" % status in line
                   and "by=" + by in line for line in srv.log().splitlines())
    wait_for("the drain's request line", lambda: logged(404, "r-operator"))
    wait_for("the undrain's request line", lambda: logged(403, "r-viewer"))
    # and never the token
    assert callers["operator"][0] not in srv.log()


def test_role_too_low_is_one_line_403(srv, callers):
    st, data, _ = call(srv, "POST", "/api/v1/runs", token=callers["viewer"][0])
    assert st == 403 and data == {"error": "forbidden: this needs the operator role; r-viewer has viewer"}
    st, data, _ = call(srv, "POST", "/api/v1/pools", token="dvt_not-a-token")
    assert st == 401 and data == {"error": "invalid API token"}


def test_token_api(srv):
    st, data, _ = srv.request("POST", "/api/v1/tokens", {"name": "admin", "role": "viewer"})
    assert st == 400 and "admin" in data["error"]
    st, data, _ = srv.request("POST", "/api/v1/tokens", {"name": "Bad Name", "role": "viewer"})
    assert st == 400 and "Bad" not in data["error"]
    st, data, _ = srv.request("POST", "/api/v1/tokens", {"name": "t-x", "role": "root"})
    assert st == 400 and "root" not in data["error"]
    srv.ok("POST", "/api/v1/tokens", {"name": "t-x", "role": "viewer"}, status=201)
    st, data, _ = srv.request("POST", "/api/v1/tokens", {"name": "t-x", "role": "admin"})
    assert st == 409
    st, data, _ = srv.request("DELETE", "/api/v1/tokens/admin")
    assert st == 409  # the first-start admin token stays valid
    st, data, _ = srv.request("DELETE", "/api/v1/tokens/t-nosuch")
    assert st == 404
    listed = srv.ok("GET", "/api/v1/tokens")["tokens"]
    assert listed[0] == {"name": "admin", "role": "admin", "created_at": None, "last_used_at": None,
                         "builtin": True}
    assert all(set(t) >= {"name", "role", "created_at", "last_used_at"} and "token" not in t
               and "token_hash" not in t for t in listed)


def test_cli_token_commands(srv):
    tok = srv.cli("token", "create", "c-ci", "--role", "operator").stdout.decode()
    assert tok.count("\n") == 1 and tok.startswith("dvt_")
    tok = tok.strip()
    # the new token works with its role
    e = {"DAVIT_API_TOKEN": tok}
    assert srv.cli("pool", "list", env=e).returncode == 0
    p = srv.cli("token", "list", env=e, check=False)
    assert p.returncode == 6 and b"needs the admin role" in p.stderr
    listing = srv.cli("token", "list").stdout.decode()
    head = listing.splitlines()[0].split()
    assert head[:3] == ["NAME", "ROLE", "CREATED"] and "c-ci" in listing and tok not in listing
    row = [line for line in listing.splitlines() if line.startswith("c-ci ")][0].split()
    assert row[1] == "operator" and row[3] != "-"  # used once above
    p = srv.cli("token", "create", "c-bad", "--role", "root", check=False)
    assert p.returncode == 2 and b"--role" in p.stderr
    p = srv.cli("token", "create", "c-bad", check=False)
    assert p.returncode == 2
    assert b"revoked" in srv.cli("token", "revoke", "c-ci").stdout
    p = srv.cli("pool", "list", env=e, check=False)
    assert p.returncode == 6 and b"invalid API token" in p.stderr
    p = srv.cli("token", "revoke", "c-ci", check=False)
    assert p.returncode == 6
    for sub in ("create", "list", "revoke"):
        p = subprocess.run([DAVIT, "token", sub, "--help"], capture_output=True, timeout=30)
        assert p.returncode == 0 and b"davit token " + sub.encode() in p.stdout
