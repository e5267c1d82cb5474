import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from davit_e2e import Stack  # noqa: E402

# Every launcher identity this session started: the session's final check
# counts only their containers, never another davit's on the same Engine.
SESSION_LAUNCHERS = []


@pytest.fixture
def stack(request):
    """A server (with the options of a `server_args` marker) and its launchers;
    fails the test if a launcher left a container behind."""
    marker = request.node.get_closest_marker("server_args")
    s = Stack(*(marker.args if marker else ()),
              tls=request.node.get_closest_marker("tls") is not None)
    yield s
    SESSION_LAUNCHERS.extend(i for i in (la.identity() for la in s.launchers) if i)
    leftovers = s.close()
    assert not leftovers, f"containers left behind: {leftovers}"


def pytest_configure(config):
    config.addinivalue_line("markers", "server_args(*args): extra davit server options")
    config.addinivalue_line("markers", "tls: the server serves HTTPS with a self-signed certificate")


@pytest.fixture(scope="session", autouse=True)
def no_orphans():
    """After the suite, no run container of a launcher this session started
    is left on the Engine. Other davits may share the Engine: theirs are not
    counted."""
    yield
    import subprocess
    left = [c for ident in SESSION_LAUNCHERS
            for c in subprocess.run(["docker", "ps", "-aq", "--filter",
                                     f"label=io.davit.launcher={ident}"],
                                    capture_output=True, text=True).stdout.split()]
    assert not left, f"containers left behind: {left}"
