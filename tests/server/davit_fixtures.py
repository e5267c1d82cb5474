"""pytest fixtures: servers that are stopped, and checked, when a test ends."""
import pathlib
import shutil
import tempfile

import pytest

from davit_harness import Server


@pytest.fixture
def tmp_path():
    """A temporary directory removed when the test ends, passed or failed
    (pytest's own tmp_path keeps the last runs' directories)."""
    d = tempfile.mkdtemp(prefix="davit-test-")
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path)
    yield s
    check_stopped(s)


@pytest.fixture(scope="module")
def module_server():
    """One server that a whole test module's tests share (each module's cost in time)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="davit-module-"))
    s = Server(d)
    try:
        yield s
    finally:
        check_stopped(s)
        shutil.rmtree(d, ignore_errors=True)


def check_stopped(s):
    """Stops the server cleanly; the sanitizers must have found nothing."""
    code = s.stop()
    log = s.log()
    print("---- server log (tail) ----\n" + log[-3000:])  # shown by pytest when a test fails
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-4000:]
    assert code in (0, None, -9), (code, log[-4000:])


@pytest.fixture
def make_server(tmp_path):
    """Starts servers with extra options; all are stopped at the end."""
    started = []

    def make(*extra, sub="srv", **kw):
        d = tmp_path / ("%s%d" % (sub, len(started)))
        d.mkdir()
        s = Server(d, *extra, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        check_stopped(s)
