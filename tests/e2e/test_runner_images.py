"""davit/runner-debian (scripts/build-runner-image debian, `make runner-image`):
a real run through a real server and a real launcher in the amd64 image and
in the arm64 image, as root and as uid 1983 (Spacelift's user).

The arm64 image's container is arm64 throughout: its launcher is pointed at
the arm64 release worker (DAVIT_WORKER_BINARY, dist/ of `make release`) and
the kernel runs both the worker and the image's programs through
qemu-aarch64-static (binfmt_misc, scripts/release-qemu). The images are built
outside the test (`make runner-image`); a missing one fails the test."""
import os
import platform
import re
import subprocess

import pytest

from davit_e2e import Stack, make_pool

SOURCE = os.environ.get("DAVIT_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
DIST = os.environ.get("DAVIT_RELEASE_DIR") or os.path.join(SOURCE, "dist")
IMAGE = "davit/runner-debian"
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine())
# The spec's user (none: the default, root), the uid and the HOME expected.
USERS = {"root": (None, "0", "/root"), "1983": ("1983", "1983", "/home/spacelift")}

# One phase: each command prints one line the test looks for. git commits in
# a new repository (its --global config goes to HOME, which must be writable),
# jq parses, curl fetches a file: URL (the run has no network), and the CA
# bundle that curl and git use for https is there.
COMMANDS = [
    'echo "arch=$(uname -m)"',
    'echo "uid=$(id -u) gid=$(id -g)"',
    'echo "home=$HOME"',
    'touch "$HOME/.probe" && echo "home-writable=yes"',
    "git config --global user.email ci@example.com && git config --global user.name ci && "
    "git init -q repo && cd repo && echo x >f && git add f && git commit -q -m one && "
    'echo "git-commits=$(git rev-list --count HEAD)"',
    """echo '{"tools":["git","jq","curl"]}' | jq -r '"jq=" + (.tools | length | tostring)'""",
    'echo "curl=$(curl -fsS file:///etc/debian_version | cut -d. -f1)"',
    'test -s /etc/ssl/certs/ca-certificates.crt && echo "ca-bundle=yes"',
    'ssh -V 2>&1 | sed "s/^/ssh=/"',
    'unzip -v | head -n 1 | sed "s/^/unzip=/"',
]


def image_arch(tag):
    p = subprocess.run(["docker", "image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", tag],
                       capture_output=True, text=True)
    assert p.returncode == 0, f"{tag} is missing: run `make runner-image` ({p.stderr.strip()})"
    return p.stdout.strip()


@pytest.fixture(scope="module")
def runs():
    """One server, a pool and a launcher per architecture; the four runs
    (two archs, two users) submitted at once and waited for. Yields
    {(arch, user): (run, log text)}."""
    assert HOST_ARCH == "amd64", f"the arm64 case emulates arm64 on amd64, not {HOST_ARCH}"
    worker_arm64 = os.path.join(DIST, "davit-worker-linux-arm64")
    assert os.path.exists(worker_arm64), f"{worker_arm64} is missing: run `make release`"
    for arch in ARCHES:
        assert image_arch(f"{IMAGE}:latest-{arch}") == f"linux/{arch}"
    stack = Stack()
    try:
        srv = stack.server
        for arch in ARCHES:
            token, key = make_pool(srv, stack.tmp, arch)
            env = {"DAVIT_WORKER_BINARY": worker_arm64} if arch == "arm64" else {}
            stack.launcher(arch, token, key, **env)
        ids = {}
        for arch in ARCHES:
            for user, (spec_user, _, _) in USERS.items():
                args = ["run", "submit", "--pool", arch, "--image", f"{IMAGE}:latest-{arch}",
                        "--phase", "main=" + COMMANDS[0]]
                if spec_user:
                    args += ["--user", spec_user]
                # A repeated --phase NAME adds the next command to the same phase.
                for c in COMMANDS[1:]:
                    args += ["--phase", "main=" + c]
                ids[arch, user] = int(srv.cli(*args).stdout.decode().strip())
        out = {}
        for key_, rid in ids.items():
            run = srv.wait_ended(rid, limit=120)
            out[key_] = (run, srv.logs(rid).decode(errors="replace"))
        yield out
    finally:
        leftovers = stack.close()
        assert not leftovers, f"containers left behind: {leftovers}"


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("arch", ARCHES)
def test_a_run_in_the_debian_image(runs, arch, user):
    run, log = runs[arch, user]
    assert run["state"] == "finished", (run, log)
    _, uid, home = USERS[user]

    def line(name):
        m = re.search(rf"^{name}=(.*)$", log, re.M)
        assert m, f"no {name}= line in the log:\n{log}"
        return m.group(1).strip()

    assert line("arch") == ARCHES[arch]
    assert line("uid") == f"{uid} gid={uid}"
    assert line("home") == home
    assert line("home-writable") == "yes"
    assert line("git-commits") == "1"
    assert line("jq") == "3"
    assert line("curl") == "12"
    assert line("ca-bundle") == "yes"
    assert line("ssh").startswith("OpenSSH_9")
    assert line("unzip").startswith("UnZip 6")


def test_the_images_record_their_recipe_and_packages():
    for arch in ARCHES:
        tag = f"{IMAGE}:latest-{arch}"
        p = subprocess.run(["docker", "image", "inspect", "-f",
                            '{{index .Config.Labels "org.davit.recipe"}}|'
                            '{{index .Config.Labels "org.davit.packages"}}', tag],
                           capture_output=True, text=True, check=True)
        recipe, packages = p.stdout.strip().split("|")
        assert re.fullmatch(r"[0-9a-f]{16}", recipe), p.stdout
        names = {pv.split("=")[0] for pv in packages.split()}
        assert names == {"ca-certificates", "curl", "git", "jq", "openssh-client", "unzip"}
