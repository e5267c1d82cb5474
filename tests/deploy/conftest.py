"""Helpers for tests/deploy: the Terraform modules (parsed with
@cdktf/hcl2json, which scripts/install-hcl2json puts in
~/.cache/davit-hcl2json), the Packer image and the boot script's cloud
sides, with the first-boot container all boot tests share (first_boot)."""
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "aws"))

SOURCE = os.path.abspath(os.environ.get("DAVIT_SOURCE_DIR") or os.path.join(HERE, "..", ".."))
MODULE = os.path.join(SOURCE, "deploy", "terraform", "aws")
PACKER = os.path.join(SOURCE, "deploy", "packer")
FAKE_SYSTEMD = os.path.join(HERE, "fake-systemd")
TEMPLATE = os.path.join(MODULE, "templates", "user-data.sh.tftpl")
HCL2JSON_DIR = os.environ.get("DAVIT_HCL2JSON_DIR") or os.path.join(
    os.path.expanduser("~"), ".cache", "davit-hcl2json")


def tf_files(directory):
    """The .tf files of one module directory (not of its subdirectories)."""
    return sorted(os.path.join(directory, f) for f in os.listdir(directory) if f.endswith(".tf"))


def parse_hcl(files):
    """{file: body as JSON} for HCL2 files; AssertionError naming the file
    that does not parse."""
    modules = os.path.join(HCL2JSON_DIR, "node_modules")
    assert os.path.isdir(os.path.join(modules, "@cdktf", "hcl2json")), \
        f"{HCL2JSON_DIR} lacks @cdktf/hcl2json: run scripts/install-hcl2json (make deps)"
    p = subprocess.run(["node", os.path.join(HERE, "hcl2json.js"), *files],
                       env={**os.environ, "NODE_PATH": modules}, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


# Terraform's template syntax, in the simple forms the user-data template
# uses: ${name} interpolations of the variables templatefile() is given.
# A directive (%{...}) or any other expression is refused, so that this
# rendering stays the same as Terraform's.
PLACEHOLDER = re.compile(r"(?<!\$)\$\{([^}]*)\}")


def render_template(text, values):
    assert "%{" not in text, "the template uses a directive (%{...}): extend render_template"
    assert "$${" not in text and "%%{" not in text, "escapes: extend render_template"

    def one(m):
        name = m.group(1)
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), f"${{{name}}}: not a simple name"
        assert name in values, f"${{{name}}} is not given to templatefile()"
        v = values[name]
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return PLACEHOLDER.sub(one, text)


def template_placeholders(text):
    return set(PLACEHOLDER.findall(text))


def templatefile_keys(main_tf_text, template="user-data.sh.tftpl"):
    """The names main.tf gives templatefile() for one of its templates."""
    m = re.search(r'templatefile\("\$\{path\.module\}/templates/' + re.escape(template) +
                  r'",\s*\{(.*?)\}\)', main_tf_text, re.S)
    assert m, f"main.tf renders no templates/{template} with templatefile()"
    return set(re.findall(r"^\s*([a-z_][a-z0-9_]*)\s*=", m.group(1), re.M))


def example_dirs(module):
    examples = os.path.join(module, "examples")
    return sorted(os.path.join(examples, d) for d in os.listdir(examples)
                  if os.path.isdir(os.path.join(examples, d)))


def blocks(parsed, directory, kind):
    """{name: body} of one block type over a directory's .tf files."""
    out = {}
    for f in tf_files(directory):
        for name, bodies in parsed[f].get(kind, {}).items():
            assert name not in out, f"{kind} {name} declared twice in {directory}"
            out[name] = bodies[0]
    return out


VAR_REF = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")


def used_vars(parsed, directory):
    return {m for f in tf_files(directory) for m in VAR_REF.findall(json.dumps(parsed[f]))}


def check_variable_blocks(declared, no_validation):
    """Every declared variable has a description and a type; every one not in
    no_validation has a validation block, each checking the variable itself
    and saying what is wrong."""
    for name, body in declared.items():
        assert body.get("description"), f"variable {name} has no description"
        assert body.get("type"), f"variable {name} has no type"
        if name not in no_validation:
            assert body.get("validation"), f"variable {name} has no validation block"
        for v in body.get("validation", []):
            assert f"var.{name}" in v["condition"], f"{name}'s validation checks another variable"
            assert v["error_message"].strip()


# ---- the first-boot container (test_boot_aws.py, test_boot_clouds.py) ----

@pytest.fixture(scope="module")
def stack():
    """A real davit server (tests/e2e's Stack) for a boot test module."""
    from davit_e2e import Stack  # noqa: E402  (tests/e2e is on the path above)
    s = Stack()
    yield s
    assert s.close() == []


def docker(*args, check=True, timeout=120):
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {args[0]}: {p.stderr.strip()}")
    return p


SKELETON_DIRS = ("etc", "tmp", "var/tmp", "var/lib", "run", "root", "opt", "src", "proc", "sys",
                 "dev", "usr")


@pytest.fixture(scope="module")
def image():
    """An image of nothing but Debian's merged-/usr skeleton: /usr and the
    host's /etc/ssl, alternatives and loader cache are mounted read-only
    into each container (no registry is reachable here)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in SKELETON_DIRS:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if "tmp" in d else 0o755
            tar.addfile(ti)
        for link in ("bin", "sbin", "lib", "lib64"):
            ti = tarfile.TarInfo(link)
            ti.type, ti.linkname = tarfile.SYMTYPE, f"usr/{link}"
            tar.addfile(ti)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                           ("etc/group", "root:x:0:\n")):
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    name = "davit-test/deploy-boot:" + uuid.uuid4().hex[:12]
    p = subprocess.run(["docker", "import", "-", name], input=buf.getvalue(), capture_output=True)
    assert p.returncode == 0, p.stderr
    yield name
    docker("rmi", "-f", name, check=False)


def packer_uploads():
    """What the Packer template's file provisioner uploads to /tmp/davit, as
    paths inside the container (/src is the source tree)."""
    tpl = os.path.join(PACKER, "davit-launcher.pkr.hcl")
    build = parse_hcl([tpl])[tpl]["build"][0]
    (files,) = build["provisioner"]["file"]
    assert files["destination"] == "/tmp/davit/"
    return [s.replace("${path.root}", "/src/deploy/packer") for s in files["sources"]]


def first_boot(image, user_data, ca_file, extra_volumes=()):
    """Starts a worker's first boot in a container: the image step
    (install-davit-boot with what the Packer template uploads), then
    fake-systemd running USER_DATA as cloud-init or the guest agent would.
    Returns the container's name; the caller removes it."""
    uploads = " ".join(packer_uploads())
    image_step = (f"mkdir -p /tmp/davit && cp {uploads} /tmp/davit/ && "
                  "sh /tmp/davit/install-davit-boot /tmp/davit && rm -rf /tmp/davit && "
                  "exec python3 /opt/fake-systemd/fake_systemd.py /var/lib/cloud/user-data.txt")
    name = "davit-test-deploy-boot-" + uuid.uuid4().hex[:8]
    ro = ["/usr", "/etc/ssl", "/etc/alternatives", "/etc/ld.so.cache"]
    args = ["run", "-d", "--name", name, "--network", "host",
            "--tmpfs", "/usr/local:exec,mode=755",
            "-v", "/var/run/docker.sock:/var/run/docker.sock",
            "-v", f"{os.path.join(SOURCE, 'deploy')}:/src/deploy:ro",
            "-v", f"{FAKE_SYSTEMD}:/opt/fake-systemd:ro",
            "-v", f"{os.path.dirname(ca_file)}:{os.path.dirname(ca_file)}:ro",
            "-v", f"{user_data}:/var/lib/cloud/user-data.txt:ro"]
    for d in ro:
        args += ["-v", f"{d}:{d}:ro"]
    for v in extra_volumes:
        args += ["-v", v]
    docker(*args, image, "sh", "-c", image_step)
    return name


def container_logs(name):
    p = docker("logs", name, check=False)
    return p.stdout + p.stderr


def wait_registered(srv, pool, name):
    """The workers of POOL once the launcher in container NAME registered."""
    from davit_e2e import wait_for

    def registered():
        running = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
        assert running == "true", "the container stopped:\n" + container_logs(name)
        return srv.workers(pool)
    return wait_for(registered, limit=60, step=0.3,
                    what="the launcher booted in the container to register")
