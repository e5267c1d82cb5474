"""Run admission on the launcher (issue 15): DAVIT_ALLOWED_IMAGES,
DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK and DAVIT_DEFAULT_RUNNER_IMAGE.

One server and one launcher for the module (test_daemon's fixtures and
rules: real server, real dockerd, loopback only). A refused run ends
`failed` with the reason and no container is ever created for it: counted
with `docker events` filtered by this launcher's io.davit.launcher label,
which sees a container that was created and removed in between.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_daemon import IMAGE, LAUNCHER, daemon, engine, submit, wait_for  # noqa: E402,F401
from launcher_box import ENDED, box, clean_env, created, cli_pool  # noqa: E402,F401

# The hook decides on the spec it reads: it keeps a copy, refuses a spec
# that says "refuse-me" and never answers one that says "hang-me".
HOOK = """#!/bin/sh
input=$(cat)
printf '%s' "$input" > "{dir}/hook-input-$DAVIT_RUN_ID.json"
ls -l /proc/$$/fd > "{dir}/hook-fds-$DAVIT_RUN_ID.txt"
case "$input" in
*refuse-me*) echo "no deploys on Fridays" >&2; echo "second line" >&2; exit 3 ;;
*hang-me*) echo $$ > "{dir}/hang.pid"; exec sleep 300 ;;
*leave-me*) sleep 300 >/dev/null 2>&1 & echo $! > "{dir}/left.pid" ;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def launcher(box):
    token, key_b64 = cli_pool(box, "adm", kind="ec")  # ec: sealed secrets
    hook = os.path.join(box["tmp"], "hook")
    with open(hook, "w") as f:
        f.write(HOOK.replace("{dir}", box["tmp"]))
    os.chmod(hook, 0o755)
    d = daemon(box, token, key_b64, env={
        "DAVIT_ALLOWED_IMAGES": "docker.io/davit/runner-*, ghcr.io/acme/*",
        "DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK": hook,
        # room for a loaded machine: every run's hook has it, not only the one that hangs
        "DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK_TIMEOUT": "5s",
        "DAVIT_DEFAULT_RUNNER_IMAGE": IMAGE,
    }).start()
    yield d
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def submit_spec(server, spec):
    body = {"pool": "adm"}
    body.update(spec)
    return server.ok("POST", "/api/v1/runs", body, status=201)["id"]


def test_an_allowed_run_with_the_default_image_runs_and_the_hook_sees_no_secret(box, launcher):
    server = box["server"]
    since = time.time()
    # the CLI seals the secret to the pool's key; the spec names no image
    p = server.cli("run", "submit", "--pool", "adm", "--phase", "plan=echo admitted",
                   "--secret", "TOKEN=s3cr3t-value-0451")
    rid = int(p.stdout.decode().strip())
    r = server.wait_state(rid, ENDED)
    assert r["state"] == "finished", r
    assert len(created(launcher, since)) == 1
    with open(os.path.join(box["tmp"], "hook-input-%d.json" % rid)) as f:
        text = f.read()
    assert "s3cr3t-value-0451" not in text
    seen = json.loads(text)
    assert seen["run_id"] == rid and seen["pool"] == "adm", seen
    assert seen["spec"]["image"] == IMAGE and seen["spec"]["secrets"] == {"TOKEN": "***"}, seen
    # The hook inherits no socket: no connection to the server or dockerd.
    with open(os.path.join(box["tmp"], "hook-fds-%d.txt" % rid)) as f:
        fds = f.read()
    assert "socket:" not in fds, fds


def test_an_image_outside_the_list_is_refused(box, launcher):
    server = box["server"]
    since = time.time()
    rid = submit(server, "plan=echo never", pool="adm")  # davit/runner-busybox: allowed
    assert server.wait_state(rid, ENDED)["state"] == "finished"
    rid = submit_spec(server, {"image": "busybox",
                               "phases": [{"name": "plan", "commands": ["echo never"]}]})
    r = server.wait_state(rid, ENDED)
    assert r["state"] == "failed", r
    assert r["reason"] == ("refused by DAVIT_ALLOWED_IMAGES: image "
                           "docker.io/library/busybox:latest matches no allowed pattern"), r
    assert len(created(launcher, since)) == 1  # the allowed run's only


def test_a_refused_run_is_refused_before_its_secrets_are_opened(box, launcher):
    """Admission runs before the sealed secrets are opened (docs/secrets.md): a run whose image is
    refused and whose secrets cannot be opened ends with admission's reason, not unsealing's."""
    server = box["server"]
    since = time.time()
    pool = server.ok("GET", "/api/v1/pools/adm")
    # A box no key opens: the sender's point is not on the curve, the ciphertext is noise.
    sealed = {"alg": "ecdh-es-p256-hkdf-sha256/a256gcm", "key_id": pool["key_id"],
              "key": base64.b64encode(b"\x04" + os.urandom(64)).decode(),
              "secrets": {"TOKEN": base64.b64encode(os.urandom(44)).decode()}}
    rid = submit_spec(server, {"image": "busybox", "run_nonce": os.urandom(16).hex(),
                               "sealed": sealed,
                               "phases": [{"name": "plan", "commands": ["echo never"]}]})
    r = server.wait_state(rid, ENDED)
    assert r["state"] == "failed", r
    assert r["reason"] == ("refused by DAVIT_ALLOWED_IMAGES: image "
                           "docker.io/library/busybox:latest matches no allowed pattern"), r
    assert created(launcher, since) == []


def test_the_hook_refuses_with_its_first_stderr_line(box, launcher):
    server = box["server"]
    since = time.time()
    rid = submit(server, "plan=echo refuse-me", pool="adm")
    r = server.wait_state(rid, ENDED)
    assert r["state"] == "failed", r
    assert r["reason"] == "refused by the run initialization hook: no deploys on Fridays", r
    assert created(launcher, since) == []


def test_a_hook_that_does_not_answer_is_killed_and_refuses(box, launcher):
    server = box["server"]
    since = time.time()
    rid = submit(server, "plan=echo hang-me", pool="adm")
    r = server.wait_state(rid, ENDED)
    assert r["state"] == "failed", r
    assert "the run initialization hook did not finish within 5s" in r["reason"], r
    assert created(launcher, since) == []
    # killed with its process group, and reaped: no `sleep 300` left behind
    with open(os.path.join(box["tmp"], "hang.pid")) as f:
        pid = int(f.read())
    assert not os.path.exists("/proc/%d" % pid)


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # killed, not reaped yet
    except FileNotFoundError:
        return True


def test_what_an_admitting_hook_leaves_behind_is_killed(box, launcher):
    server = box["server"]
    rid = submit(server, "plan=echo leave-me", pool="adm")
    assert server.wait_state(rid, ENDED)["state"] == "finished"
    with open(os.path.join(box["tmp"], "left.pid")) as f:
        pid = int(f.read())
    try:
        wait_for(lambda: gone(pid), "the hook's leftover process to be killed", limit=10)
    finally:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_admission_options_are_checked_at_start(box):
    base = clean_env()
    tmp = box["tmp"]
    cases = [
        ({"DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK": tmp + "/no-hook"},
         "DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK " + tmp + "/no-hook: No such file"),
        ({"SPACELIFT_LAUNCHER_RUN_INITIALIZATION_POLICY": tmp + "/policy.rego"},
         "Rego policies are not supported"),
        ({"DAVIT_ALLOWED_IMAGES": " , "}, "DAVIT_ALLOWED_IMAGES: no pattern given"),
    ]
    for extra, needle in cases:
        e = dict(base, DAVIT_STATE_DIR=os.path.join(tmp, "opt-state"), **extra)
        p = subprocess.run([LAUNCHER], env=e, capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, (extra, p.stderr)
        assert needle in p.stderr, (extra, p.stderr)
