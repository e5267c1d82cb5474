"""--admin-token-file (docs/server.md, "Admin token from a file"): the admin token is the one in
the file, never printed; a changed file rotates it; a file that is not a token, or that others may
write, stops the start with one line that never shows its content."""

import os
import secrets
import subprocess

from davit_harness import DAVIT, Server


def token_file(tmp, token, name="admin-token", mode=0o600):
    path = os.path.join(str(tmp), name)
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, mode)
    return path


def admin_ok(server, token):
    st, _, _ = server.request("GET", "/api/v1/tokens", token=token)
    return st


def test_the_files_token_is_the_admin_token_and_is_never_printed_or_logged(tmp_path):
    token = "dva_" + secrets.token_urlsafe(32)
    path = token_file(tmp_path, token)
    server = Server(tmp_path, "--admin-token-file", path)
    try:
        assert server.token is None, "the server printed an admin token"
        assert admin_ok(server, token) == 200
        assert admin_ok(server, "dva_" + secrets.token_urlsafe(32)) == 401
    finally:
        server.stop()
    log = server.log()
    assert token not in log and token[4:] not in log
    assert "admin token set from file" in log


def test_a_changed_file_rotates_the_admin_token(tmp_path):
    old = secrets.token_hex(32)
    path = token_file(tmp_path, old)
    # First start without the file: the printed token is replaced by the file's.
    server = Server(tmp_path)
    printed = server.token
    assert printed and admin_ok(server, printed) == 200
    server.stop()
    server.extra = ["--admin-token-file", path]
    server.start()
    try:
        assert admin_ok(server, old) == 200
        assert admin_ok(server, printed) == 401
    finally:
        server.stop()
    new = secrets.token_hex(32)
    token_file(tmp_path, new)
    env_server = None
    os.environ["DAVIT_ADMIN_TOKEN_FILE"] = path
    try:
        server.extra = []
        server.start()
        env_server = server
        assert admin_ok(server, new) == 200
        assert admin_ok(server, old) == 401
    finally:
        del os.environ["DAVIT_ADMIN_TOKEN_FILE"]
        if env_server:
            server.stop()
    log = server.log()
    assert "admin token rotated from file" in log
    for t in (old, new):
        assert t not in log


def refused(tmp_path, path):
    """Starts the server on path and returns its stderr; it must exit 2 before serving."""
    p = subprocess.run([DAVIT, "server", "--data-dir", os.path.join(str(tmp_path), "var"),
                        "--listen", "127.0.0.1:0", "--admin-token-file", path],
                       capture_output=True, timeout=60)
    assert p.returncode == 2, p
    assert p.stdout == b""
    err = p.stderr.decode()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("davit server: --admin-token-file " + path + ": "), err
    return err


def test_a_bad_file_stops_the_start_with_one_line(tmp_path):
    short = "dva_tooshort"
    err = refused(tmp_path, token_file(tmp_path, short, "short"))
    assert "shorter than 32" in err and short not in err
    weak = "password" * 5
    err = refused(tmp_path, token_file(tmp_path, weak, "weak"))
    assert "does not look random" in err and weak not in err
    spaced = secrets.token_hex(16) + " " + secrets.token_hex(16)
    err = refused(tmp_path, token_file(tmp_path, spaced, "spaced"))
    assert spaced[:8] not in err
    good = secrets.token_hex(32)
    err = refused(tmp_path, token_file(tmp_path, good, "open", mode=0o620))
    assert "writable by group or others" in err and good not in err
    err = refused(tmp_path, os.path.join(str(tmp_path), "missing"))
    assert "No such file" in err
    assert not os.path.exists(os.path.join(str(tmp_path), "var", "davit.db"))
