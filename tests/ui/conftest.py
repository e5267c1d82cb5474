"""The browser tests go on from each other (one server, launcher and browser
for the module): once one fails, the rest are skipped rather than each
waiting out its timeouts on a state that will not come."""
import pytest

FAILED = {}


def pytest_runtest_makereport(item, call):
    if call.excinfo is not None and call.when == "call" and item.module.__name__.endswith("browser"):
        FAILED[item.module.__name__] = item.name


def pytest_runtest_setup(item):
    failed = FAILED.get(item.module.__name__)
    if failed:
        pytest.skip(f"{failed} failed, and this test goes on from it")
