"""The launcher daemon's life around its runs (issue 9): a run is reported
only once its container and run directory are gone, a cycled launcher that
its supervisor restarts takes runs again, a launcher that exits is no longer
listed, a container the Engine stops is not a user's cancel, and run
containers carry their pool's id and name.

Same rules as test_daemon.py, whose fixtures these tests use: a real server,
the real dockerd and openssl, loopback only, and each test removes what it
started.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_daemon import (daemon, docker, engine, env, make_pool, submit,  # noqa: E402,F401
                         wait_for)

ENDED = ("finished", "failed", "canceled", "timed_out", "lost")


def run_dirs(d):
    runs = os.path.join(d.state, "runs")
    return [n for n in os.listdir(runs) if not n.endswith(".json")] if os.path.isdir(runs) else []


def workers(server):
    return json.loads(server.cli("worker", "list", "--json").stdout)["workers"]


def test_a_run_is_reported_only_once_its_container_and_directory_are_gone(env):
    """The flake of test_server_crash_mid_run_loses_nothing: the result was
    reported before the container was removed, so a watcher reacting to the
    result raced the removal. Checked at once, with no wait, for every run."""
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    for n in range(8):
        rid = submit(server, f"plan=echo run-{n}")
        assert server.wait_state(rid, ENDED)["state"] == "finished"
        assert d.containers() == [], f"run {n}: its container outlived its report"
        assert run_dirs(d) == [], f"run {n}: its run directory outlived its report"
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_a_result_kept_before_a_restart_is_still_reported(env):
    """The launcher keeps the result in the run's state before it removes the
    container: killed between the two, its next start reports it."""
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    rid = submit(server, "plan=echo started; sleep 300")
    server.wait_state(rid, ("running",))
    d.kill9()
    # What a launcher killed right after it kept the result leaves behind:
    # the state file with the result, no container, no run directory.
    runs = os.path.join(d.state, "runs")
    [name] = [n for n in os.listdir(runs) if n.endswith(".json")]
    with open(os.path.join(runs, name)) as f:
        st = json.load(f)
    docker("rm", "-f", "-v", st["container"])
    st["container"] = ""
    st["result"] = {"outcome": "failed", "exit_code": 7, "reason": "kept across a restart"}
    with open(os.path.join(runs, name), "w") as f:
        json.dump(st, f)
    run_dir = os.path.join(runs, name[:-5])
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    d.start()
    r = server.wait_state(rid, ENDED)
    assert (r["state"], r["reason"], r.get("exit_code")) == ("failed", "kept across a restart", 7), r
    wait_for(lambda: not os.listdir(runs), "the run's state to go")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_a_cycled_launcher_restarted_with_its_state_directory_takes_runs(env):
    """Issue 9, defect 1: after `davit pool cycle` the launcher exits 75 and
    systemd starts it again with the same state directory."""
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    server.cli("pool", "cycle", "web", "--deadline", "30s")
    assert d.wait() == 75, d.log()
    assert workers(server) == []  # it said goodbye: not listed as exiting
    d.start()
    rid = submit(server, "plan=echo after-cycle")
    assert server.wait_state(rid, ENDED)["state"] == "finished"
    assert [w["state"] for w in workers(server)] == ["idle"]
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_a_launcher_killed_while_cycling_comes_back_healthy(env):
    """Killed before it could exit (no goodbye): it registers again with its
    launcher_id, adopts its run, and takes new runs after it."""
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    first = submit(server, "plan=echo started; sleep 300")
    server.wait_state(first, ("running",))
    server.cli("pool", "cycle", "web", "--deadline", "10m")
    wait_for(lambda: "cycling" in d.log(), "the launcher to get the cycle")
    wid = d.server_id()
    d.kill9()
    d.start()
    wait_for(lambda: "adopting a run" in d.log(), "the run to be adopted")
    assert d.server_id() == wid
    server.cli("run", "cancel", str(first))
    assert server.wait_state(first, ENDED)["state"] == "canceled"
    second = submit(server, "plan=echo after-cycle")
    assert server.wait_state(second, ENDED)["state"] == "finished"
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_an_exited_launcher_is_not_listed(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    assert [w["id"] for w in workers(server)] == [d.server_id()]
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert workers(server) == []


def test_a_container_stopped_by_the_engine_fails_the_run(env):
    """Issue 9: a Docker Engine restart sends the container SIGTERM; that is
    not a user's cancel. `docker stop` is exactly what the Engine does."""
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    d = daemon(env, token, key_b64).start()
    rid = submit(server, "plan=echo started; sleep 300")
    server.wait_state(rid, ("running",))
    [cid] = d.containers()
    docker("stop", "-t", "20", cid)
    r = server.wait_state(rid, ENDED)
    assert r["state"] == "failed", r
    assert "Docker Engine stopped" in r["reason"], r
    # A user's cancel is still "canceled".
    rid = submit(server, "plan=echo started; sleep 300")
    server.wait_state(rid, ("running",))
    server.cli("run", "cancel", str(rid))
    r = server.wait_state(rid, ENDED)
    assert r["state"] == "canceled" and "the user" in r["reason"], r
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_run_containers_carry_the_pool_id_and_name(env):
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    pool_id = json.loads(base64.b64decode(token))["pool_id"]
    d = daemon(env, token, key_b64).start()
    rid = submit(server, "plan=echo started; sleep 300")
    server.wait_state(rid, ("running",))
    [cid] = d.containers()
    labels = json.loads(docker("inspect", cid).stdout)[0]["Config"]["Labels"]
    assert labels["io.davit.pool"] == pool_id and labels["io.davit.pool.name"] == "web", labels
    server.cli("run", "cancel", str(rid))
    server.wait_state(rid, ENDED)
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_a_full_state_directory_is_named_and_warned_of(env):
    """Issue 9, defect 8: a run failed with "the worker exited with code 70
    without recording a result" when the launcher's state directory filled
    up. The launcher warns when space runs low, and names the cause."""
    server = env["server"]
    token, key_b64, _ = make_pool(env)
    state = os.path.join(env["tmp"], "small-state")
    os.makedirs(state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", state],
                   check=True)
    d = None
    try:
        d = daemon(env, token, key_b64, env={"DAVIT_STATE_DIR": state}).start()
        d.state = state
        assert "running out of space" not in d.log()
        st = os.statvfs(state)
        with open(os.path.join(state, "filler"), "wb") as f:
            f.write(b"\0" * (st.f_bavail * st.f_frsize - 256 * 1024))
        # The warning comes with the next turn of the launcher's loop (a
        # submitted run wakes it), before the run fails.
        rid = submit(server, "plan=i=0; while [ $i -lt 200 ]; do head -c 10000 /dev/zero"
                             " | tr '\\0' x; echo; i=$((i+1)); done")
        r = server.wait_state(rid, ENDED)
        assert r["state"] == "failed", r
        assert "no space left on the launcher's state directory" in r["reason"], r
        log = d.log()
        assert "running out of space" in log, log
        assert log.index("running out of space") < log.index("run ended"), log
        os.unlink(os.path.join(state, "filler"))
        rid = submit(server, "plan=echo room-again")
        assert server.wait_state(rid, ENDED)["state"] == "finished"
        wait_for(lambda: "room again" in d.log(), "the launcher to see room again")
        d.signal(signal.SIGTERM)
        assert d.wait() == 0
    finally:
        if d:
            left = d.close()
            env["daemons"].remove(d)
            assert not left, f"containers left behind: {left}"
        subprocess.run(["umount", "-l", state], check=False)
