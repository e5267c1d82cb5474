"""scripts/build-launcher-image: the launcher as a container image, FROM
scratch, built from the static release binaries of dist/ (`make release`,
which `make test` runs first), for amd64 and arm64, talking to the host's
Docker Engine through its socket.

The images get a name of their own (LAUNCHER_IMAGE) and every tag and
container this file makes is removed, also when a test fails: the Engine is
shared."""
import base64
import io
import os
import platform
import subprocess
import sys
import tarfile
import uuid

import pytest

from davit_e2e import make_pool, wait_for

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "release"))
import elfcheck  # noqa: E402

SOURCE = os.environ.get("DAVIT_SOURCE_DIR") or ROOT
DIST = os.environ.get("DAVIT_RELEASE_DIR") or os.path.join(SOURCE, "dist")
ARCHES = ("amd64", "arm64")
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine())
# What the image holds: nothing but these (no shell, no library, no worker).
IMAGE_FILES = {
    "etc/", "etc/group", "etc/passwd", "etc/ssl/", "etc/ssl/certs/",
    "etc/ssl/certs/ca-certificates.crt", "tmp/", "usr/", "usr/local/", "usr/local/bin/",
    "usr/local/bin/davit-launcher",
}
# What the Engine adds to every container's file system (docker export shows it).
ENGINE_FILES = {
    ".dockerenv", "dev/", "dev/console", "dev/pts/", "dev/shm/", "etc/hostname", "etc/hosts",
    "etc/mtab", "etc/resolv.conf", "proc/", "sys/",
}


def docker(*args, **kw):
    return subprocess.run(["docker", *args], capture_output=True, **kw)


@pytest.fixture(scope="module")
def images():
    """Builds IMAGE:VERSION-amd64, -arm64, :VERSION and :latest from DIST;
    yields (IMAGE, VERSION) and removes all four tags afterwards."""
    missing = [a for a in ARCHES if not os.path.exists(
        os.path.join(DIST, f"davit-launcher-linux-{a}"))]
    assert not missing, f"{DIST} lacks the launcher for {missing}: run `make release`"
    assert HOST_ARCH, f"host architecture {platform.machine()} is neither amd64 nor arm64"
    version = subprocess.run([os.path.join(DIST, f"davit-launcher-linux-{HOST_ARCH}"),
                              "--version"], check=True, capture_output=True,
                             text=True).stdout.split()[-1]
    image = "davit/test-launcher-" + uuid.uuid4().hex[:8]
    tags = [f"{image}:{version}-{a}" for a in ARCHES] + [f"{image}:{version}", f"{image}:latest"]
    try:
        p = subprocess.run([os.path.join(ROOT, "scripts", "build-launcher-image"), DIST],
                           capture_output=True, text=True,
                           env={**os.environ, "LAUNCHER_IMAGE": image})
        assert p.returncode == 0, p.stderr
        yield image, version
    finally:
        docker("image", "rm", "-f", *tags)


@pytest.mark.parametrize("arch", ARCHES)
def test_image_holds_only_the_static_launcher_and_ca_bundle(images, arch, tmp_path):
    image, version = images
    tag = f"{image}:{version}-{arch}"
    platform_ = docker("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", tag,
                       check=True, text=True).stdout.strip()
    assert platform_ == f"linux/{arch}"
    # docker create starts nothing, so an arm64 image needs no emulator here.
    cid = docker("create", tag, check=True, text=True).stdout.strip()
    try:
        tar_bytes = docker("export", cid, check=True).stdout
    finally:
        docker("rm", "-f", cid)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = {m.name.rstrip("/") + ("/" if m.isdir() else ""): m for m in tar.getmembers()}
        assert set(members) - ENGINE_FILES == IMAGE_FILES
        for name, m in members.items():
            if name in IMAGE_FILES:
                assert (m.uid, m.gid) == (0, 0), name
        assert members["tmp/"].mode & 0o7777 == 0o1777
        assert members["usr/local/bin/davit-launcher"].mode & 0o777 == 0o755
        launcher = tmp_path / "davit-launcher"
        launcher.write_bytes(tar.extractfile(members["usr/local/bin/davit-launcher"]).read())
        passwd = tar.extractfile(members["etc/passwd"]).read()
    # The launcher in the image is the static release binary of its architecture.
    assert elfcheck.check_static(str(launcher)) == arch
    with open(os.path.join(DIST, f"davit-launcher-linux-{arch}"), "rb") as f:
        assert launcher.read_bytes() == f.read()
    assert passwd == b"root:x:0:0:root:/root:/sbin/nologin\n"
    cfg = docker("image", "inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Env}}",
                 tag, check=True, text=True).stdout
    assert '["/usr/local/bin/davit-launcher"]' in cfg
    assert "DAVIT_STATE_DIR=/var/lib/davit-launcher" in cfg


@pytest.mark.parametrize("arch", ARCHES)
def test_image_launcher_starts(images, arch):
    """The image's launcher runs with nothing else in the image. A foreign
    architecture runs through qemu's binfmt_misc entry (scripts/release-qemu,
    which `make test` runs; its F flag needs no qemu in the image)."""
    image, version = images
    qemu = "/proc/sys/fs/binfmt_misc/qemu-aarch64"
    # A failure, not a skip: make test sets the entry up, and a skip would hide it breaking.
    assert arch == HOST_ARCH or os.path.exists(qemu), \
        f"no {qemu}: run scripts/release-qemu to run {arch} images here"
    p = docker("run", "--rm", "--network", "none", "--platform", f"linux/{arch}",
               f"{image}:{version}-{arch}", "--version", text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"davit-launcher {version}"


def test_host_tags_name_the_host_architecture(images):
    image, version = images
    ids = {t: docker("image", "inspect", "-f", "{{.Id}}", f"{image}:{t}", check=True,
                     text=True).stdout.strip()
           for t in (f"{version}-{HOST_ARCH}", version, "latest")}
    assert len(set(ids.values())) == 1, ids


def test_launcher_image_runs_a_run(stack, images):
    image, _ = images
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    name = "davit-test-launcher-" + uuid.uuid4().hex[:8]
    state = os.path.join(stack.tmp, "image-state")
    os.makedirs(state)
    with open(key, "rb") as f:
        key_b64 = base64.b64encode(f.read()).decode()
    try:
        docker("run", "-d", "--name", name, "--network", "host",
               "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{state}:{state}",
               "-e", f"DAVIT_STATE_DIR={state}", "-e", f"SPACELIFT_TOKEN={token}",
               "-e", f"SPACELIFT_POOL_PRIVATE_KEY={key_b64}", "-e", "DAVIT_WORKER_NETWORK=none",
               f"{image}:latest", check=True)
        wait_for(lambda: srv.workers("web"), what="the containerised launcher to register")
        rid = srv.submit("web", "p=echo from the image")
        assert srv.wait_ended(rid)["state"] == "finished"
        assert b"from the image" in srv.logs(rid)
        # docker stop sends SIGTERM: the launcher drains and exits 0.
        docker("stop", "-t", "30", name, check=True)
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name, text=True).stdout.strip()
        assert code == "0"
    finally:
        docker("rm", "-f", name)
