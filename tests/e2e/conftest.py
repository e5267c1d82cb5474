import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from davit_e2e import Stack  # noqa: E402


@pytest.fixture
def stack(request):
    """A server (with the options of a `server_args` marker) and its launchers;
    fails the test if a launcher left a container behind."""
    marker = request.node.get_closest_marker("server_args")
    s = Stack(*(marker.args if marker else ()),
              tls=request.node.get_closest_marker("tls") is not None)
    yield s
    leftovers = s.close()
    assert not leftovers, f"containers left behind: {leftovers}"


def pytest_configure(config):
    config.addinivalue_line("markers", "server_args(*args): extra davit server options")
    config.addinivalue_line("markers", "tls: the server serves HTTPS with a self-signed certificate")


@pytest.fixture(scope="session", autouse=True)
def no_orphans():
    """Issue 5's last check, literally: after the suite no davit run
    container is left on the Engine (CI runs the suites one at a time)."""
    yield
    import subprocess
    out = subprocess.run(["docker", "ps", "-a", "-q", "--filter", "label=io.davit.run"],
                         capture_output=True, text=True).stdout.split()
    assert not out, f"containers left behind: {out}"
