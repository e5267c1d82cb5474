"""deploy/packer: Debian's packer (1.6.6) validates the image template, with
and without gVisor, offline; the provisioning scripts pass shellcheck; the
template has no required_plugins block (1.6.6 rejects it) and builds both
architectures."""
import os
import shutil
import subprocess

import pytest

from conftest import SOURCE

PACKER = os.path.join(SOURCE, "deploy", "packer")


def validate(*args, cwd=SOURCE, directory=PACKER):
    return subprocess.run(["packer", "validate", *args, directory], cwd=cwd, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "CHECKPOINT_DISABLE": "1", "PACKER_LOG": ""})


@pytest.mark.parametrize("gvisor", ["false", "true"])
def test_packer_validate(gvisor):
    p = validate("-var", f"install_gvisor={gvisor}")
    assert p.returncode == 0, p.stdout + p.stderr


def test_packer_validate_from_its_own_directory():
    p = validate(cwd=PACKER, directory=".")
    assert p.returncode == 0, p.stdout + p.stderr


def test_packer_validate_catches_a_missing_file(tmp_path):
    """The check has teeth: a provisioner's missing file fails validation."""
    copy = tmp_path / "deploy"
    shutil.copytree(os.path.join(SOURCE, "deploy"), copy)
    os.unlink(copy / "packer" / "scripts" / "provision")
    p = validate(directory=str(copy / "packer"))
    assert p.returncode != 0
    assert "scripts/provision" in p.stdout + p.stderr


def test_template_builds_both_architectures_without_required_plugins():
    with open(os.path.join(PACKER, "davit-launcher.pkr.hcl")) as f:
        text = f.read()
    assert "required_plugins" not in text.replace("no required_plugins block", "")
    assert 'sources = ["source.amazon-ebs.amd64", "source.amazon-ebs.arm64"]' in text
    assert '"debian-12-amd64-*"' in text and '"debian-12-arm64-*"' in text


def test_scripts_pass_shellcheck():
    scripts = [os.path.join(PACKER, "scripts", f) for f in os.listdir(os.path.join(PACKER, "scripts"))]
    p = subprocess.run(["shellcheck", "-S", "warning", *scripts], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout
