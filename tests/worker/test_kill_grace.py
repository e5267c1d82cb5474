"""The worker's kill grace, timed tightly: SIGTERM to the phase, then SIGKILL
exactly kill_grace later, not sooner and not much later.

The interval is read from the worker's own notes in the spool (both carry the
worker's clock), so the test's own scheduling under load does not widen it:
only the worker's wake-up delay does, and the bounds leave seconds for that.
A grace of 2 s must end between 2 s and 4 s; twice or three times the grace
fails, and so does half of it.

The phase traps TERM, says so, and keeps running, so only the SIGKILL ends it.
Both builds run it: the glibc worker directly (under the sanitizers) and the
static worker as PID 1 of a real container.
"""
import os
import signal
import subprocess

from conftest import BUILD
from davit_rundir import output, read_spool, result, wait_for_spool, write_rundir

GRACE_MS = 2000
SLACK_MS = 2000  # the worker's wake-up delay on a loaded machine; a tripled grace is 4 s over
STUBBORN = ["trap 'echo got TERM' TERM; echo started; while :; do sleep 0.1; done"]
# The output line, not the command record that also holds "started": the trap is set by then.
TERM_NOTE = b"sending SIGTERM to the phase, SIGKILL in "
KILL_NOTE = b"did not stop within the grace period: sending SIGKILL"


def check_grace(rundir):
    recs = read_spool(os.path.join(rundir, "spool"))
    notes = [r for r in recs if r.type == "W"]
    term = [r for r in notes if TERM_NOTE in r.data]
    kill = [r for r in notes if KILL_NOTE in r.data]
    assert len(term) == 1 and len(kill) == 1, notes
    # The trap ran: TERM reached the phase before the SIGKILL, and it kept running.
    assert b"got TERM\n" in output(recs, "stubborn")
    assert term[0].seq < kill[0].seq
    waited = kill[0].ms - term[0].ms
    assert GRACE_MS <= waited < GRACE_MS + SLACK_MS, f"SIGKILL {waited} ms after SIGTERM"
    res = result(recs)
    assert res.kv("outcome") == "canceled" and res.kv("exit") == str(128 + signal.SIGKILL)


def test_direct_worker_kills_after_exactly_the_grace(tmpdir_clean, rundir):
    write_rundir(rundir, [{"name": "stubborn", "commands": STUBBORN}],
                 settings={"kill_grace": f"{GRACE_MS}ms",
                           "workspace": os.path.join(tmpdir_clean, "ws")})
    p = subprocess.Popen([os.path.join(BUILD, "davit-worker-glibc"), "--run-dir", rundir],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_spool(rundir, b"started\n", lambda: p.poll() is None)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 4, err  # canceled
    assert b"AddressSanitizer" not in err and b"runtime error" not in err, err
    check_grace(rundir)


def test_worker_as_pid1_kills_after_exactly_the_grace(containers, rundir):
    write_rundir(rundir, [{"name": "stubborn", "commands": STUBBORN}],
                 settings={"kill_grace": f"{GRACE_MS}ms"})
    name = containers.start(rundir)

    def running():
        st = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                            capture_output=True, text=True)
        return st.stdout.strip() == "true"

    wait_for_spool(rundir, b"started\n", running)
    subprocess.run(["docker", "kill", "--signal", "TERM", name], check=True, capture_output=True)
    assert containers.wait(name) == 4  # canceled
    check_grace(rundir)

