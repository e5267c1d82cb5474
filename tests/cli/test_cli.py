"""The davit CLI against a real server, with a test launcher finishing the runs."""

import base64
import json
import os
import threading

from davit_harness import Launcher, openssl_key, spool_record


def test_pool_commands(server, tmp_path):
    key, csr = openssl_key(str(tmp_path), "rsa", "cli")
    p = server.cli("pool", "create", "web", "--csr", csr)
    out = p.stdout.decode()
    assert out.count("\n") == 1  # only the token
    tok = json.loads(base64.b64decode(out.strip()))
    assert tok["endpoint"] == "http://127.0.0.1:%d" % server.port
    listing = server.cli("pool", "list").stdout.decode()
    assert listing.splitlines()[0].split()[:3] == ["NAME", "ID", "KEY"] and "web" in listing
    pools = json.loads(server.cli("pool", "list", "--json").stdout)
    assert pools[0]["name"] == "web" and pools[0]["keytype"] == "rsa"
    assert "keytype" in server.cli("pool", "show", "web").stdout.decode()
    key2, csr2 = openssl_key(str(tmp_path), "ec", "cli2")
    new = server.cli("pool", "reset", "web", "--csr", csr2).stdout.decode().strip()
    assert json.loads(base64.b64decode(new))["pool_secret"] != tok["pool_secret"]
    assert "0 worker" in server.cli("pool", "cycle", "web").stdout.decode()
    server.cli("pool", "delete", "web")
    p = server.cli("pool", "show", "web", check=False)
    assert p.returncode == 6 and b"not found" in p.stderr


def test_usage_and_config_errors(server):
    assert server.cli("pool", check=False).returncode == 2
    assert server.cli("run", "submit", "--pool", "x", check=False).returncode == 2
    assert server.cli("run", "show", "abc", check=False).returncode == 2
    assert server.cli("bogus", check=False).returncode == 2
    p = server.cli("pool", "list", env={"DAVIT_SERVER": ""}, check=False)
    assert p.returncode == 2 and b"DAVIT_SERVER" in p.stderr
    p = server.cli("pool", "list", env={"DAVIT_API_TOKEN": "dva_wrong"}, check=False)
    assert p.returncode == 6 and b"invalid API token" in p.stderr
    p = server.cli("pool", "list", env={"DAVIT_SERVER": "http://127.0.0.1:1"}, check=False)
    assert p.returncode == 7
    # SPACELIFT_ aliases
    env = {"DAVIT_SERVER": "", "DAVIT_API_TOKEN": "",
           "SPACELIFT_SERVER": "http://127.0.0.1:%d" % server.port, "SPACELIFT_API_TOKEN": server.token}
    assert server.cli("pool", "list", env=env).returncode == 0


def _finish(server, la, outcome, lines):
    msg = la.poll_until(lambda m: m["type"] == "run")
    rid = msg["run"]["id"]
    la.event(rid, "running", phase="plan")
    data = b"".join(spool_record("o", i + 1, line + "\n", "plan") for i, line in enumerate(lines))
    la.log(rid, 0, data)
    la.event(rid, "result", outcome=outcome, reason="test")


def test_run_submit_follow_exit_codes(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    for outcome, code in [("finished", 0), ("failed", 1), ("timed_out", 3), ("canceled", 4)]:
        t = threading.Thread(target=_finish, args=(server, la, outcome, ["hello " + outcome]))
        t.start()
        p = server.cli("run", "submit", "--pool", "p", "--image", "busybox", "--phase", "plan=echo hi",
                       "--before", "plan=echo before", "--after", "plan=echo after", "--env", "A=1",
                       "--secret", "S=hidden", "--timeout", "10m", "--follow", check=False)
        t.join()
        assert p.returncode == code, (outcome, p.returncode, p.stderr)
        assert ("hello " + outcome).encode() in p.stdout
    runs = json.loads(server.cli("run", "list", "--json").stdout)
    assert len(runs) == 4
    rid = runs[0]["id"]
    show = json.loads(server.cli("run", "show", str(rid), "--json").stdout)
    spec = show["spec"]
    assert spec["phases"][0] == {"name": "plan", "commands": ["echo hi"], "before": ["echo before"],
                                 "after": ["echo after"]}
    assert spec["secrets"] == {"S": "***"} and spec["env"] == {"A": "1"} and spec["timeouts"] == {"run": "10m"}
    assert b"hello" in server.cli("run", "logs", str(rid)).stdout
    assert server.cli("run", "logs", str(rid), "--follow", check=False).returncode == 4
    table = server.cli("run", "list", "--state", "failed").stdout.decode()
    assert len(table.splitlines()) == 2 and "failed" in table
    # lost: the launcher goes away after starting
    rid = int(server.cli("run", "submit", "--pool", "p", "--image", "x", "--phase", "a=true").stdout)
    p = server.cli("run", "cancel", str(rid))
    assert b"canceled" in p.stdout
    assert server.cli("run", "cancel", str(rid), check=False).returncode == 6


def test_workers_and_releases(server, tmp_path):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    table = server.cli("worker", "list").stdout.decode()
    assert "test-host" in table and "idle" in table and '"zone":"test"' in table
    server.cli("worker", "drain", str(la.id))
    assert json.loads(server.cli("worker", "list", "--pool", "p", "--json").stdout)[0]["state"] == "draining"
    server.cli("worker", "undrain", str(la.id))
    assert server.cli("worker", "drain", "999", check=False).returncode == 6
    f = tmp_path / "davit-worker"
    f.write_bytes(b"\x7fELF" + os.urandom(5000))
    out = server.cli("release", "publish", str(f), "--arch", "arm64", "--version", "9.9.9").stdout.decode()
    assert "arm64" in out and "9.9.9" in out
    rels = json.loads(server.cli("release", "list", "--json").stdout)
    assert any(r["version"] == "9.9.9" and r["latest"] for r in rels)
    assert server.cli("release", "publish", str(f), "--arch", "mips", "--version", "1", check=False).returncode == 6
