"""davit end to end: server, launchers, CLI and dockerd together (issue 5).

The literal docs walkthrough, credential errors, cancel, launcher crash,
tampering, drain/cycle and token reset are in tests/launcher/test_daemon.py;
this file covers what needs several launchers or a server crash.
"""
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from davit_e2e import IMAGE, ENDED, wait_for, make_pool

# A deterministic output whose checksum the test knows: 300 numbered lines
# over about 6 seconds.
COUNT = ("i=1; while [ $i -le 300 ]; do echo line-$i; i=$((i+1));"
         " if [ $((i % 50)) = 0 ]; then sleep 1; fi; done")
EXPECTED = "".join(f"line-{i}\n" for i in range(1, 301)).encode()


def stdout_of(raw):
    """The stdout bytes of a stored spool (docs/run-directory.md)."""
    out, pos = [], 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        t, _seq, _ms, _phase, length, _mac = raw[pos + 1:nl].split(b" ")
        start = nl + 1
        if t == b"o":
            out.append(raw[start:start + int(length)])
        pos = start + int(length) + 1
    return b"".join(out)


def test_two_launchers_ten_runs_each_finishes_once(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    a = stack.launcher("a", token, key)
    b = stack.launcher("b", token, key)
    wait_for(lambda: len(srv.workers("web")) == 2, what="two launchers")
    ids = [srv.submit("web", f"work=echo run-marker-{n}; sleep 1") for n in range(10)]
    runs = [srv.wait_ended(i, limit=180) for i in ids]
    assert [r["state"] for r in runs] == ["finished"] * 10
    for n, i in enumerate(ids):
        out = stdout_of(srv.raw_log(i))
        assert out.count(f"run-marker-{n}\n".encode()) == 1, out
    # Both launchers took part, and no run was handed out twice.
    assert len({r["worker"] for r in runs}) == 2, runs
    assert all(r["attempts"] == 1 for r in runs), runs
    assert a.proc.poll() is None and b.proc.poll() is None


def test_server_crash_mid_run_loses_nothing(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    stack.launcher("a", token, key)
    wait_for(lambda: srv.workers("web"), what="the launcher")
    rid = srv.submit("web", f"count={COUNT}")
    wait_for(lambda: b"line-60\n" in stdout_of(srv.raw_log(rid)), what="output to arrive")
    srv.stop(signal.SIGKILL)
    time.sleep(2)  # the launcher keeps running its run and buffers the spool
    srv.start()
    run = srv.wait_ended(rid, limit=120)
    assert run["state"] == "finished", (run["reason"], stack.launchers[0].log()[-3000:])
    out = stdout_of(srv.raw_log(rid))
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(EXPECTED).hexdigest()


@pytest.mark.server_args("--lease", "2s", "--lost-grace", "4s")
def test_launcher_gone_for_good(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    a = stack.launcher("a", token, key)
    wait_for(lambda: srv.workers("web"), what="launcher a")
    started = srv.submit("web", "long=echo started; sleep 120")
    wait_for(lambda: srv.run(started)["state"] == "running", what="the run to start on a")
    # Launcher a has a capacity of one, so the next run waits for it; then it
    # freezes, the way a machine that vanished stops answering.
    a.signal(signal.SIGSTOP)
    waiting = srv.submit("web", "short=echo ran elsewhere")
    b = stack.launcher("b", token, key)
    run = srv.wait_ended(waiting, limit=60)
    assert run["state"] == "finished"
    assert b"ran elsewhere" in srv.logs(waiting)
    lost = srv.wait_ended(started, limit=60)
    assert lost["state"] == "lost", lost
    # The frozen machine's container is its own business: clear it here.
    a.stop()
    a.remove_containers()
    assert b.proc.poll() is None


def test_new_worker_release_is_used_by_the_next_run(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    la = stack.launcher("a", token, key)
    wait_for(lambda: srv.workers("web"), what="the launcher")
    first = srv.submit("web", "p=echo first")
    assert srv.wait_ended(first)["state"] == "finished"

    # A new build of the worker: the same program with a trailing byte, so a
    # new digest. Publish it; the next run must use it.
    src = os.path.join(os.environ.get("DAVIT_BUILD_DIR", ""), "davit-worker")
    new = os.path.join(stack.tmp, "davit-worker-next")
    shutil.copy(src, new)
    with open(new, "ab") as f:
        f.write(b"\0")
    with open(new, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    srv.cli("release", "publish", new, "--arch", "amd64", "--version", "99.0.0")
    second = srv.submit("web", "p=echo second")
    assert srv.wait_ended(second)["state"] == "finished"
    cached = os.listdir(os.path.join(la.state, "workers"))
    assert digest in cached, cached


def test_back_to_back_runs_on_one_launcher(stack):
    """A run offered the moment the previous one reported its result must be
    taken, even before the launcher has reaped the previous run's thread."""
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    stack.launcher("a", token, key)
    wait_for(lambda: srv.workers("web"), what="the launcher")
    ids = [srv.submit("web", f"p=echo quick-{n}") for n in range(6)]
    assert [srv.wait_ended(i, limit=120)["state"] for i in ids] == ["finished"] * 6


def test_draining_launcher_gets_no_new_runs(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    a = stack.launcher("a", token, key, DAVIT_LAUNCHER_CONCURRENCY=2)
    wait_for(lambda: srv.workers("web"), what="launcher a")
    first = srv.submit("web", "long=echo started; sleep 8")
    wait_for(lambda: srv.run(first)["state"] == "running", what="the first run to start")
    a.signal(signal.SIGTERM)  # drain: finish the run in hand, take nothing new
    wait_for(lambda: "draining" in a.log(), what="launcher a to drain")
    second = srv.submit("web", "p=echo second")
    b = stack.launcher("b", token, key)
    run = srv.wait_ended(second, limit=60)
    assert run["state"] == "finished"
    # A draining launcher may be offered a run by a poll already in flight,
    # but it never starts one: it gives it back, and b runs it.
    assert run["worker"] == b.server_id(), (run, a.log())
    assert f"run=r{second}-" not in a.log(), a.log()
    assert srv.run(first)["state"] in ("running", "finished")
    assert a.wait(timeout=60) == 0
    assert srv.wait_ended(first)["state"] == "finished"
    assert b.proc.poll() is None


@pytest.mark.tls
def test_https_with_a_private_ca_and_the_pinned_key(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    doc = json.loads(base64.b64decode(token))
    assert doc["endpoint"].startswith("https://") and doc["tls_pin"].startswith("sha256//")
    stack.launcher("a", token, key, DAVIT_CA_FILE=srv.ca)
    rid = srv.submit("web", "p=echo over tls")
    assert srv.wait_ended(rid)["state"] == "finished"
    assert b"over tls" in srv.logs(rid)


@pytest.mark.tls
def test_https_refuses_an_unknown_ca_and_a_wrong_pin(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    # No DAVIT_CA_FILE: the self-signed certificate is not trusted.
    la = stack.launcher("untrusted", token, key)
    assert la.wait(timeout=60) == 2
    assert srv.url in la.log() and "certificate" in la.log().lower()
    # Trusted, but the token pins another key: some other server answers.
    doc = json.loads(base64.b64decode(token))
    doc["tls_pin"] = "sha256//" + base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    forged = base64.b64encode(json.dumps(doc).encode()).decode()
    lb = stack.launcher("pinned", forged, key, DAVIT_CA_FILE=srv.ca)
    assert lb.wait(timeout=60) == 2
    assert srv.url in lb.log()
    assert not srv.workers("web")
