"""Each release binary runs in a FROM scratch container that holds only that
file and a CA bundle. The arm64 ones run through qemu's binfmt_misc entry
(scripts/release-qemu registers it with the F flag, so no qemu is needed in
the image)."""
import io
import os
import subprocess
import tarfile
import uuid

import pytest

from conftest import BINARIES, dist

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def scratch_image(binary):
    """An image made of the binary (as /bin/prog) and the CA bundle only."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for src, dst, mode in ((binary, "bin/prog", 0o755), (CA_BUNDLE, CA_BUNDLE[1:], 0o644)):
            info = tar.gettarinfo(src, dst)
            info.mode, info.uid, info.gid, info.uname, info.gname = mode, 0, 0, "", ""
            with open(src, "rb") as f:
                tar.addfile(info, f)
    name = "davit-test/release-scratch:" + uuid.uuid4().hex[:12]
    subprocess.run(["docker", "import", "-c", 'ENTRYPOINT ["/bin/prog"]', "-", name],
                   input=buf.getvalue(), check=True, capture_output=True)
    return name


@pytest.mark.parametrize("name", BINARIES)
def test_binary_runs_in_a_scratch_container(name):
    image = scratch_image(dist(name))
    try:
        out = subprocess.run(["docker", "image", "inspect", "-f", "{{.RootFS.Layers}}", image],
                             check=True, capture_output=True, text=True)
        assert out.stdout.count("sha256:") == 1  # one layer: nothing but the two files
        p = subprocess.run(["docker", "run", "--rm", "--network", "none", image, "--help"],
                           capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr
        prog = name.rsplit("-linux-", 1)[0]
        assert f"usage: {prog}".encode() in p.stdout + p.stderr
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
