"""The davit CLI against a real server, with a test launcher finishing the runs."""

import base64
import json
import os
import subprocess
import threading

import pytest

from davit_harness import BUILD, DAVIT, Launcher, openssl_key, spool_record

LAUNCHER = os.path.join(BUILD, "davit-launcher")

# Every command of davit, as a user types it (docs/cli.md).
COMMANDS = [("server",), ("help",), ("version",),
            ("pool", "create"), ("pool", "list"), ("pool", "show"), ("pool", "reset"),
            ("pool", "cycle"), ("pool", "delete"),
            ("run", "submit"), ("run", "list"), ("run", "show"), ("run", "logs"), ("run", "cancel"),
            ("run", "delete"),
            ("worker", "list"), ("worker", "drain"), ("worker", "undrain"),
            ("release", "publish"), ("release", "list"),
            ("token", "create"), ("token", "list"), ("token", "revoke")]
GROUPS = ["pool", "run", "worker", "release", "token"]


def bare_env():
    """No configuration at all: only the sanitizers' own settings survive."""
    return {k: v for k, v in os.environ.items() if k.startswith(("ASAN_", "UBSAN_", "LSAN_"))}


def bare(program, *args):
    return subprocess.run([program] + list(args), env=bare_env(), capture_output=True, timeout=60)


def test_pool_commands(server, tmp_path):
    key, csr = openssl_key(str(tmp_path), "rsa", "cli")
    p = server.cli("pool", "create", "web", "--csr", csr)
    out = p.stdout.decode()
    assert out.count("\n") == 1  # only the token
    tok = json.loads(base64.b64decode(out.strip()))
    assert tok["endpoint"] == "http://127.0.0.1:%d" % server.port
    listing = server.cli("pool", "list").stdout.decode()
    assert listing.splitlines()[0].split()[:3] == ["NAME", "ID", "KEY"] and "web" in listing
    pools = json.loads(server.cli("pool", "list", "--json").stdout)["pools"]
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
    token, key = server.create_pool("p", kind="ec")  # --secret is sealed to the pool's EC key
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
    runs = json.loads(server.cli("run", "list", "--json").stdout)["runs"]
    assert len(runs) == 4
    rid = runs[0]["id"]
    show = json.loads(server.cli("run", "show", str(rid), "--json").stdout)
    spec = show["spec"]
    assert spec["phases"][0] == {"name": "plan", "commands": ["echo hi"], "before": ["echo before"],
                                 "after": ["echo after"]}
    assert "secrets" not in spec and "sealed" not in spec  # dropped when the run ended
    assert b"hidden" not in json.dumps(show).encode()
    assert spec["env"] == {"A": "1"} and spec["timeouts"] == {"run": "10m"}
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
    assert json.loads(server.cli("worker", "list", "--pool", "p", "--json").stdout)["workers"][0]["state"] == "draining"
    server.cli("worker", "undrain", str(la.id))
    assert server.cli("worker", "drain", "999", check=False).returncode == 6
    f = tmp_path / "davit-worker"
    f.write_bytes(b"\x7fELF" + os.urandom(5000))
    out = server.cli("release", "publish", str(f), "--arch", "arm64", "--version", "9.9.9").stdout.decode()
    assert "arm64" in out and "9.9.9" in out
    rels = json.loads(server.cli("release", "list", "--json").stdout)["releases"]
    assert any(r["version"] == "9.9.9" and r["latest"] for r in rels)
    assert server.cli("release", "publish", str(f), "--arch", "mips", "--version", "1", check=False).returncode == 6



# Terminal control: ESC [ 2 J clears the screen, ESC ] 0 ; … BEL sets the title, U+009B is the
# one-character CSI (C1), DEL and a lone 0x9b byte are not text either.
HOSTILE = "h\x1b[2Jost\x1b]0;pwned\x07\u009b31m\x7f"


def test_server_strings_are_escaped_in_text_output(server):
    """A launcher's hostname, metadata and reasons cannot drive the operator's terminal."""
    token, key = server.create_pool("p")
    la = Launcher(server, token, key, hostname=HOSTILE)
    la.register(metadata={"zone": HOSTILE, "caf\u00e9": "b\u00e9b\u00e9"})
    rid = int(server.cli("run", "submit", "--pool", "p", "--image", "x", "--phase", "a=true").stdout)
    msg = la.poll_until(lambda m: m["type"] == "run")
    assert msg["run"]["id"] == rid
    la.event(rid, "result", outcome="failed", reason=HOSTILE)
    for args in [("worker", "list"), ("run", "show", str(rid)), ("run", "list")]:
        out = server.cli(*args).stdout
        for raw in (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b"):
            assert raw not in out, (args, raw, out)
    table = server.cli("worker", "list").stdout.decode()
    # escaped, still readable, and valid UTF-8 text kept as it is
    assert "h\\x1b[2Jost\\x1b]0;pwned\\x07\\u009b31m\\x7f" in table
    assert "caf\u00e9" in table and "b\u00e9b\u00e9" in table
    show = server.cli("run", "show", str(rid)).stdout.decode()
    assert "reason            h\\x1b[2J" in show
    # --json is the API's answer, for programs: the string is there, JSON-escaped
    workers = json.loads(server.cli("worker", "list", "--json").stdout)["workers"]
    assert workers[0]["hostname"] == HOSTILE
    # an error message from the server goes through the same escaping
    p = server.cli("pool", "show", "no\x1bpe", check=False)
    assert b"\x1b" not in p.stderr


# --- help and usage errors, with no configuration ---------------------------


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_command_answers_help_with_no_configuration(cmd):
    for args in [cmd + ("--help",), cmd + ("-h",), ("help",) + cmd]:
        p = bare(DAVIT, *args)
        assert p.returncode == 0 and p.stderr == b"", (args, p.returncode, p.stderr)
        assert p.stdout.decode().startswith("usage: davit " + " ".join(cmd)), (args, p.stdout)
    if len(cmd) == 2:
        # --help after other arguments, even wrong ones, is a question
        p = bare(DAVIT, *cmd, "42", "--bogus", "--help")
        assert p.returncode == 0 and p.stdout.decode().startswith("usage: davit " + " ".join(cmd))


def test_command_lists_with_no_configuration():
    for args in [("--help",), ("-h",), ("help",)]:
        p = bare(DAVIT, *args)
        assert p.returncode == 0 and p.stderr == b""
        out = p.stdout.decode()
        for cmd in COMMANDS:
            assert "\n  " + " ".join(cmd) in out, (args, cmd)
    for group in GROUPS:
        for args in [(group, "--help"), (group, "-h"), ("help", group)]:
            p = bare(DAVIT, *args)
            assert p.returncode == 0 and p.stderr == b"", args
            out = p.stdout.decode()
            assert out.startswith("usage: davit " + group)
            assert all(("\n  " + " ".join(c)) in out for c in COMMANDS if c[0] == group), out
    # the options of run list are in its usage
    out = bare(DAVIT, "run", "list", "--help").stdout.decode()
    assert all(o in out for o in ["--pool", "--state", "--limit N", "--before ID", "--all", "--json"])


def test_launcher_answers_help_with_no_configuration():
    for args in [("--help",), ("-h",), ("help",), ("exec", "--help"), ("exec", "-h"),
                 ("exec", "spec.json", "--help")]:
        p = bare(LAUNCHER, *args)
        assert p.returncode == 0 and p.stderr == b"", (args, p.stderr)
        assert p.stdout.decode().startswith("usage: davit-launcher"), args
        assert "davit-launcher exec [--json] [--worker PATH] SPEC.json" in p.stdout.decode()


def test_usage_errors_are_one_line_on_stderr():
    cases = [
        (DAVIT, (), "expected a command"),
        (DAVIT, ("bogus",), 'unknown command "bogus"'),
        (DAVIT, ("pool",), "pool: expected create, list, show, reset, cycle or delete"),
        (DAVIT, ("run", "bogus"), 'run: unknown subcommand "bogus"'),
        (DAVIT, ("run", "submit", "--bogus"), "run submit: --bogus: unknown option"),
        (DAVIT, ("run", "list", "--limit"), "run list: --limit: needs a value"),
        (DAVIT, ("run", "list", "--limit", "0"), "run list: --limit: expected a positive number"),
        (DAVIT, ("run", "list", "--before", "x"), "run list: --before: expected a positive number"),
        (DAVIT, ("run", "logs", "1", "--follow=yes"), "run logs: --follow: takes no value"),
        (DAVIT, ("run", "show"), "run show: expected one run id"),
        (DAVIT, ("run", "delete", "0"), "run delete: run id: expected a positive number"),
        (DAVIT, ("run", "delete", "1", "--json"), "run delete: --json: this command prints no JSON"),
        (DAVIT, ("run", "submit", "--pool", "p", "--image", "i", "--phase", "a=b", "--follow", "--json"),
         "--json and --follow do not go together"),
        (DAVIT, ("help", "nothing"), 'help: no command "nothing"'),
        (LAUNCHER, ("bogus",), 'unknown command "bogus"'),
        (LAUNCHER, ("exec",), "SPEC.json is missing"),
        (LAUNCHER, ("exec", "--worker"), "--worker needs a PATH"),
        (LAUNCHER, ("exec", "--bogus", "s.json"), "--bogus: unknown option"),
    ]
    for program, args, message in cases:
        p = bare(program, *args)
        err = p.stderr.decode()
        assert p.returncode == 2 and p.stdout == b"", (args, p.returncode, p.stdout, err)
        assert err.count("\n") == 1 and message in err, (args, err)
    # A mistyped option is named without what follows '=': it may be a secret.
    p = bare(DAVIT, "run", "submit", "--secrt=S=hunter2")
    assert p.returncode == 2 and b"--secrt" in p.stderr and b"hunter2" not in p.stderr
    # Arguments are checked before the configuration; then the configuration.
    p = bare(DAVIT, "run", "show", "5")
    assert p.returncode == 2 and b"DAVIT_SERVER is not set" in p.stderr


# --- the CLI's JSON is the API's JSON ----------------------------------------


def test_json_is_the_api_answer(server, tmp_path):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    f = tmp_path / "davit-worker"
    f.write_bytes(b"\x7fELF" + os.urandom(100))
    server.cli("release", "publish", str(f), "--arch", "amd64", "--version", "1.2.3")
    for args, path in [(("pool", "list"), "/api/v1/pools"),
                       (("pool", "show", "p"), "/api/v1/pools/p"),
                       (("run", "list"), "/api/v1/runs?limit=50"),
                       (("run", "list", "--pool", "p", "--state", "queued"),
                        "/api/v1/runs?limit=50&pool=p&state=queued"),
                       (("run", "show", str(rid)), "/api/v1/runs/%d" % rid),
                       (("worker", "list"), "/api/v1/workers"),
                       (("release", "list"), "/api/v1/releases")]:
        assert json.loads(server.cli(*args, "--json").stdout) == server.ok("GET", path), args


def test_run_list_shows_50_runs_by_default(server):
    server.create_pool("p")
    ids = [server.submit("p") for _ in range(51)]
    rows = server.cli("run", "list").stdout.decode().splitlines()[1:]
    assert [int(r.split()[0]) for r in rows] == ids[::-1][:50]
    assert len(json.loads(server.cli("run", "list", "--json").stdout)["runs"]) == 50
    assert len(server.cli("run", "list", "--limit", "60").stdout.decode().splitlines()) == 52


# --- paging and delete: the server side is GET /runs?before= with "next", and
# DELETE /runs/ID (issue 9, defect 7) -------------------------------------------


def test_run_list_pages(server):
    server.create_pool("p")
    server.create_pool("q")
    ids = []
    for i in range(7):
        ids.append(server.submit("p"))
        server.submit("q")  # interleaved: the filter must apply on every page
    newest_first = ids[::-1]
    page = json.loads(server.cli("run", "list", "--pool", "p", "--limit", "3", "--json").stdout)
    assert set(page) == {"runs", "next"} and isinstance(page["next"], int), page
    assert [r["id"] for r in page["runs"]] == newest_first[:3]
    # Follow the table's "more:" line, as a user would, to the last page.
    args, seen, pages = ["run", "list", "--pool", "p", "--limit", "3"], [], 0
    while args:
        p = server.cli(*args)
        seen += [int(r.split()[0]) for r in p.stdout.decode().splitlines()[1:]]
        pages += 1
        err = p.stderr.decode()
        if pages == 1:
            assert err == "more: davit run list --pool p --limit 3 --before %d\n" % page["next"]
        args = err.split()[2:] if err else None
        assert not err or err.startswith("more: davit run list ") and err.count("\n") == 1, err
    assert seen == newest_first and pages == 3
    last = json.loads(server.cli("run", "list", "--pool", "p", "--limit", "3", "--before",
                                 str(newest_first[5]), "--json").stdout)
    assert [r["id"] for r in last["runs"]] == newest_first[6:] and last["next"] is None
    # --all follows every page: one answer with every run and nothing after it.
    everything = json.loads(server.cli("run", "list", "--pool", "p", "--limit", "2", "--all",
                                       "--json").stdout)
    assert [r["id"] for r in everything["runs"]] == newest_first and everything["next"] is None
    p = server.cli("run", "list", "--limit", "4", "--all")
    assert len(p.stdout.decode().splitlines()) == 15 and p.stderr == b""


def test_run_delete(server):
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")

    def refused(run_id, status):
        p = server.cli("run", "delete", str(run_id), check=False)
        err = p.stderr.decode()
        assert p.returncode == 6 and p.stdout == b"", (p.returncode, p.stdout, err)
        assert err.count("\n") == 1 and "HTTP %d" % status in err, err

    refused(rid, 409)  # queued
    la.poll_until(lambda m: m["type"] == "run" and m["run"]["id"] == rid)
    la.event(rid, "running", phase="plan")
    la.log(rid, 0, spool_record("o", 1, "hello\n", "plan"))
    refused(rid, 409)  # running
    la.event(rid, "result", outcome="finished", reason="test")
    p = server.cli("run", "delete", str(rid))
    assert p.stdout == b"run %d deleted\n" % rid and p.stderr == b""
    p = server.cli("run", "show", str(rid), check=False)
    assert p.returncode == 6 and b"HTTP 404" in p.stderr
    assert server.request("GET", "/api/v1/runs/%d/logs" % rid)[0] == 404
    assert rid not in [r["id"] for r in json.loads(server.cli("run", "list", "--json").stdout)["runs"]]
    refused(rid, 404)  # already gone
    # a canceled run has ended too
    rid2 = server.submit("p")
    server.cli("run", "cancel", str(rid2))
    assert server.cli("run", "delete", str(rid2)).stdout == b"run %d deleted\n" % rid2


def test_pool_key_is_pinned(server, tmp_path):
    """A server that hands another key or pool id than the pinned one is refused (exit 9)."""
    pins = os.path.join(str(tmp_path), "pins")
    env = {"DAVIT_KNOWN_POOLS": pins, "TOK": "s3cret"}
    _, csr = openssl_key(str(tmp_path), "rsa", "pin1")
    server.cli("pool", "create", "pinned", "--csr", csr, env=env)
    line = open(pins).read().split()
    pool = server.ok("GET", "/api/v1/pools/pinned")
    assert line[1:] == ["pinned", pool["id"], pool["key_id"]]
    submit = ("run", "submit", "--pool", "pinned", "--phase", "a=true", "--secret", "TOK")
    server.cli(*submit, env=env)
    # The server now hands another key (as one taken over would): nothing is sealed to it.
    _, csr2 = openssl_key(str(tmp_path), "ec", "pin2")
    server.ok("POST", "/api/v1/pools/pinned/reset", {"csr": open(csr2).read()})
    p = server.cli(*submit, env=env, check=False)
    assert p.returncode == 9, p.stderr
    assert p.stderr.count(b"\n") == 1 and b"is not the pinned key" in p.stderr
    # --pool-key with the new key is the way to pin it again
    server.cli(*submit, "--pool-key", csr2, env=env)
    server.cli(*submit, env=env)
    p = server.cli(*submit, env={**env, "DAVIT_POOL_KEY_ID": "0" * 64}, check=False)
    assert p.returncode == 9 and b"DAVIT_POOL_KEY_ID" in p.stderr
    # A pinned pool id that the server does not name (a redirect to another pool) is refused.
    with open(pins) as f:
        text = f.read()
    with open(pins, "w") as f:
        f.write(text.replace(pool["id"], "pool-0000000000000000"))
    p = server.cli(*submit, env=env, check=False)
    assert p.returncode == 9 and b"pool id" in p.stderr
    # No pin: trust on first use, said in one line, and recorded.
    os.unlink(pins)
    p = server.cli(*submit, env=env)
    assert b"on first use" in p.stderr and pool["id"] in open(pins).read()


def test_an_encrypted_sign_key_is_refused_without_a_prompt(server, tmp_path):
    key = os.path.join(str(tmp_path), "enc.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-aes-256-cbc", "-pass",
                    "pass:secret", "-out", key], check=True, capture_output=True)
    p = server.cli("run", "submit", "--pool", "nopool", "--phase", "a=true", "--sign-key", key,
                   check=False)
    assert p.returncode == 2, p.stderr
    assert p.stderr.count(b"\n") == 1 and b"the key is encrypted" in p.stderr, p.stderr
