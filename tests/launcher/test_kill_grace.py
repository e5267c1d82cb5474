"""The launcher stops a run gracefully: SIGTERM first, SIGKILL only after the
run's kill_grace plus the launcher's slack.

The phase traps TERM, prints that it got it, and keeps running, so only a
SIGKILL ends it. The launcher's SIGTERM reaches the worker (PID 1), which
passes TERM to the phase and SIGKILLs it kill_grace later, and writes its
result; a launcher that killed the container at once would leave neither the
worker's note nor its result. Cancel (a signal to davit-launcher) and the
launcher's run timeout both take this path.
"""

import signal
import time

import pytest

from test_exec import L, engine, read_until, result_line  # noqa: F401 (fixtures)

GRACE_S = 2
STUBBORN = [{"name": "stubborn", "commands": [
    "trap 'echo got TERM' TERM; echo started; while :; do sleep 0.1; done"]}]
WORKER_KILL = "did not stop within the grace period: sending SIGKILL"


def check_graceful(out, elapsed):
    # The phase saw TERM and had the time to say so, then the worker killed it.
    assert "| got TERM" in out, out
    assert WORKER_KILL in out, out
    assert out.index("| got TERM") < out.index(WORKER_KILL), out
    assert "the container is still running: sending SIGKILL" not in out, out
    # Not at once: the grace ran in full (measured from before the stop began).
    assert elapsed >= GRACE_S, elapsed


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cancel_waits_for_the_grace_before_sigkill(L, sig):
    spec = L.spec(STUBBORN, timeouts={"kill_grace": f"{GRACE_S}s"})
    p = L.popen(spec)
    first = "".join(read_until(p, r"\| started"))
    t0 = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    out = first + out
    assert p.returncode == 4, out + err
    assert f"canceled: canceled by {sig.name} to davit-launcher" in result_line(out)
    check_graceful(out, elapsed)


def test_run_timeout_waits_for_the_grace_before_sigkill(L):
    spec = L.spec(STUBBORN, timeouts={"kill_grace": f"{GRACE_S}s"})
    p = L.popen(spec, env={"DAVIT_LAUNCHER_RUN_TIMEOUT": "2s"})
    first = "".join(read_until(p, r"DAVIT_LAUNCHER_RUN_TIMEOUT"))
    t0 = time.monotonic()
    out, err = p.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    assert p.returncode == 3, first + out + err
    last = result_line(out)
    assert "timed_out: launcher: run timeout (2s) expired" in last
    # The result carries the exit status the worker recorded for the phase it
    # killed (SIGKILL: 137), not "unknown".
    assert "(phase stubborn, exit 137," in last, last
    check_graceful(out, elapsed)
