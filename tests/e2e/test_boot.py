"""deploy/boot/davit-launcher-boot: what a machine runs at boot. It downloads
the launcher the server publishes, verifies it with the token's release key,
and runs it."""
import base64
import json
import os
import signal
import subprocess

import davit_e2e
from davit_e2e import make_pool, wait_for

BOOT = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "boot", "davit-launcher-boot")


def boot(stack, token, key, **env):
    with open(key, "rb") as f:
        key_b64 = base64.b64encode(f.read()).decode()
    e = {**os.environ, "DAVIT_TOKEN": token, "DAVIT_POOL_PRIVATE_KEY": key_b64,
         "DAVIT_STATE_DIR": os.path.join(stack.tmp, "boot-state"),
         "DAVIT_LAUNCHER_BIN_DIR": os.path.join(stack.tmp, "bin"),
         "DAVIT_WORKER_NETWORK": "none", **env}
    return subprocess.Popen([BOOT], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_boot_downloads_verifies_and_runs_the_launcher(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    p = boot(stack, token, key)
    try:
        workers = wait_for(lambda: srv.workers("web"), what="the booted launcher to register")
        assert workers[0]["state"] == "idle"
        bin_ = os.path.join(stack.tmp, "bin", "davit-launcher")
        with open(bin_, "rb") as a, open(davit_e2e.LAUNCHER, "rb") as b:
            assert a.read() == b.read()
        p.send_signal(signal.SIGTERM)  # exec'd: the launcher itself gets it, and drains
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert b"davit-launcher-boot: running launcher" in p.stderr.read()


def test_boot_refuses_a_launcher_signed_by_another_key(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    other = os.path.join(stack.tmp, "other.pem")
    subprocess.run(f"openssl genpkey -algorithm ed25519 | openssl pkey -pubout -out {other}",
                   shell=True, check=True, capture_output=True)
    doc = json.loads(base64.b64decode(token))
    with open(other) as f:
        doc["release_key"] = f.read()
    forged = base64.b64encode(json.dumps(doc).encode()).decode()
    p = boot(stack, forged, key)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2
    assert b"the signature does not verify with the release key in the pool token" in err
    assert not os.path.exists(os.path.join(stack.tmp, "bin", "davit-launcher"))


def test_boot_rejects_a_cut_token(stack):
    p = boot(stack, "eyJ2IjoxLCJlbmRwb2ludCI6", os.devnull)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 2
    assert err.decode().strip().startswith("davit-launcher-boot: DAVIT_TOKEN: ")
