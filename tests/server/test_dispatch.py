"""Issue 11: a queued run wakes exactly one waiting poll of its pool.

Counted, not timed: davit_dispatch_wakeups_total counts the poll waiters a
notify resumed, davit_dispatch_waiters those asleep now.
"""
import re
import threading

from davit_harness import Launcher, wait_for

WAITERS = 20


def metric(server, name):
    text = server.request("GET", "/metrics", token=None)[1].decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, name + " missing from /metrics"
    return int(m.group(1))


def poll_in_thread(la, got):
    """One long-poll in a thread; got[launcher id] is its answer. A poll
    still waiting when the test stops the server gets 503, and no answer."""
    def run():
        st, data, _ = la.call("POST", "/api/v1/launcher/poll", {"ack": la.ack, "wait_s": 60})
        if st == 200:
            got[la.id] = data["messages"]
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def sleep_in_order(server, launchers, got):
    """Starts their polls one after the other, each asleep before the next
    starts, so that their order in the queue is known."""
    threads = []
    for i, la in enumerate(launchers):
        threads.append(poll_in_thread(la, got))
        wait_for("poll %d asleep" % i, lambda: metric(server, "davit_dispatch_waiters") == i + 1)
    return threads


def test_one_run_wakes_one_poll(make_server):
    server = make_server("--poll-timeout", "60s")
    token, key = server.create_pool("p")
    other_token, other_key = server.create_pool("q")
    launchers = [Launcher(server, token, key, hostname="h%d" % i) for i in range(WAITERS)]
    others = [Launcher(server, other_token, other_key, hostname="o%d" % i) for i in range(5)]
    for la in launchers + others:
        la.register()
    got = {}
    threads = sleep_in_order(server, launchers + others, got)
    before = metric(server, "davit_dispatch_wakeups_total")

    run_id = server.submit("p")
    wait_for("a poll answered", lambda: len(got) == 1)
    [(winner, msgs)] = got.items()
    assert [m["run"]["id"] for m in msgs if m["type"] == "run"] == [run_id]
    assert winner == launchers[0].id  # the oldest waiter
    # One wake-up, and everyone else still asleep, the other pool included.
    assert metric(server, "davit_dispatch_wakeups_total") - before == 1
    assert metric(server, "davit_dispatch_waiters") == WAITERS + 5 - 1

    # Ten runs at once: ten wake-ups, ten different launchers, one run each.
    ids = [server.submit("p") for _ in range(10)]
    wait_for("ten more polls answered", lambda: len(got) == 11)
    assert metric(server, "davit_dispatch_wakeups_total") - before == 11
    claimed = sorted(m["run"]["id"] for msgs in got.values() for m in msgs if m["type"] == "run")
    assert claimed == sorted([run_id] + ids)
    server.stop()
    for t in threads:
        t.join(30)


def test_a_busy_poll_does_not_hold_back_an_idle_one(make_server):
    """The oldest waiter is full (capacity 1, a run in hand): the run goes
    to the idle launcher behind it, and the busy one sleeps on."""
    server = make_server("--poll-timeout", "60s")
    token, key = server.create_pool("p")
    busy, idle = Launcher(server, token, key, hostname="busy"), Launcher(server, token, key, hostname="idle")
    busy.register()
    idle.register()
    first = server.submit("p")
    assert [m["run"]["id"] for m in busy.poll(wait_s=5) if m["type"] == "run"] == [first]
    got = {}
    t_busy, t_idle = sleep_in_order(server, [busy, idle], got)
    before = metric(server, "davit_dispatch_wakeups_total")
    second = server.submit("p")
    wait_for("the idle poll answered", lambda: idle.id in got)
    assert [m["run"]["id"] for m in got[idle.id] if m["type"] == "run"] == [second]
    assert busy.id not in got
    assert metric(server, "davit_dispatch_wakeups_total") - before == 1
    # The busy launcher's result frees it: a notify for it, and it polls on.
    assert busy.event(first, "result", outcome="finished")[0] == 200
    wait_for("the busy poll answered", lambda: busy.id in got)
    server.stop()
    t_busy.join(30)
    t_idle.join(30)


def test_a_drained_poll_is_not_handed_runs_and_undrain_wakes_it(make_server):
    """A drained launcher's poll waits without room: a queued run does not
    wake it (nor is lost on it), and undraining wakes it to take the run."""
    server = make_server("--poll-timeout", "60s")
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    server.ok("POST", "/api/v1/workers/%d/drain" % la.id)
    la.poll(wait_s=0)  # acknowledges whatever the drain sent
    got = {}
    [t] = sleep_in_order(server, [la], got)
    before = metric(server, "davit_dispatch_wakeups_total")
    run_id = server.submit("p")
    assert metric(server, "davit_dispatch_wakeups_total") == before  # nobody with room to hand it to
    assert metric(server, "davit_dispatch_waiters") == 1
    server.ok("POST", "/api/v1/workers/%d/undrain" % la.id)
    wait_for("the undrained poll answered", lambda: la.id in got)
    assert [m["run"]["id"] for m in got[la.id] if m["type"] == "run"] == [run_id]
    # one wake-up in all, the undrain's: none came late for the run while it was drained
    assert metric(server, "davit_dispatch_wakeups_total") - before == 1
    server.stop()
    t.join(30)
