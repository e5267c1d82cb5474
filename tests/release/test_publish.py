"""The server publishes, at its first start, the workers and launchers of
every architecture found next to its executable (docs/operations.md); a file
named for one architecture but built for another is refused."""
import os
import shutil

from conftest import dist
from davit_e2e import BUILD, Stack
import davit_e2e


def test_server_publishes_both_architectures_and_refuses_a_mislabelled_file(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    shutil.copy2(os.path.join(BUILD, "davit"), d / "davit")  # the sanitizer build
    shutil.copy2(os.path.join(BUILD, "davit-worker"), d / "davit-worker")  # this machine's
    shutil.copy2(dist("davit-worker-linux-arm64"), d / "davit-worker-linux-arm64")
    # An amd64 program under an arm64 name.
    shutil.copy2(dist("davit-launcher-linux-amd64"), d / "davit-launcher-linux-arm64")
    saved = davit_e2e.DAVIT
    davit_e2e.DAVIT = str(d / "davit")
    try:
        stack = Stack()
    finally:
        davit_e2e.DAVIT = saved
    try:
        rel = stack.server.json("release", "list")["releases"]
        assert sorted((r["kind"], r["arch"]) for r in rel) == [("worker", "amd64"),
                                                               ("worker", "arm64")]
        log = stack.server.log()
        assert "built-in release not published kind=launcher arch=arm64" in log
        assert "not an ELF executable for this architecture" in log
    finally:
        assert not stack.close()
