"""A launcher's lease ends when the lease says, not some multiple of it.

A run assigned to a launcher that then falls silent (no request, no poll
waiting) goes back to the queue once the launcher has not been seen for the
lease (docs/protocol.md), and another launcher's waiting poll receives it.
The server checks leases twice a second, so the requeue comes between the
lease and the lease plus that check; the upper bound leaves seconds for a
loaded machine and still fails when the lease counts double.
"""

import time

from davit_harness import Launcher

LEASE_S = 6
SLACK_S = 3  # the reaper's half-second tick and a loaded machine; a doubled lease is 6 s over


def test_run_of_a_silent_launcher_is_requeued_when_its_lease_ends(make_server):
    server = make_server("--lease", "%ds" % LEASE_S, "--lost-grace", "600s")
    token, key = server.create_pool("p")
    a = Launcher(server, token, key, hostname="a")
    b = Launcher(server, token, key, hostname="b")
    a.register()
    rid = server.submit("p")
    # a's last request: the run is handed over, then a says nothing more.
    assert [m["run"]["id"] for m in a.poll(wait_s=0) if m["type"] == "run"] == [rid]
    silent_since = time.monotonic()
    b.register()
    m = b.poll_until(lambda m: m["type"] == "run", limit=LEASE_S * 4)
    waited = time.monotonic() - silent_since
    assert m["run"]["id"] == rid and m["run"]["attempt"] == 2
    assert LEASE_S - 1 <= waited < LEASE_S + SLACK_S, waited
