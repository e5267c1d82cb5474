"""A poll never outlives the lease it is meant to keep alive.

The server caps its long-poll at two thirds of the launcher lease, whatever
--poll-timeout says and whatever wait_s a launcher asks for, so that a
launcher that polls in a loop is never reaped between two polls.
"""

import time

from davit_harness import Launcher

LEASE_S = 6


def test_poll_is_answered_within_two_thirds_of_the_lease(make_server):
    server = make_server("--lease", "%ds" % LEASE_S, "--poll-timeout", "60s")
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    reg = la.register()
    assert reg["lease_s"] == LEASE_S
    assert reg["poll_timeout_s"] == LEASE_S * 2 // 3
    t0 = time.monotonic()
    assert la.poll(wait_s=3600) == []
    waited = time.monotonic() - t0
    # It waited (nothing to send), and answered before the lease could end.
    assert LEASE_S * 2 / 3 - 0.5 <= waited < LEASE_S, waited
