"""deploy/packer: Debian's packer (1.6.6) validates the image template, with
and without gVisor, offline, on each of its three sources (amazon-ebs,
azure-arm, googlecompute); the provisioning scripts pass shellcheck; the
template has no required_plugins block (1.6.6 rejects it), builds both
architectures on each cloud, and every source runs the same provisioning."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import PACKER, SOURCE, parse_hcl

CLOUDS = ("amazon-ebs", "azure-arm", "googlecompute")


def validate(*args, cwd=SOURCE, directory=PACKER):
    return subprocess.run(["packer", "validate", *args, directory], cwd=cwd, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "CHECKPOINT_DISABLE": "1", "PACKER_LOG": ""})


@pytest.mark.parametrize("gvisor", ["false", "true"])
def test_packer_validate(gvisor):
    p = validate("-var", f"install_gvisor={gvisor}")
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("cloud", CLOUDS)
def test_packer_validate_each_source(cloud):
    p = validate(f"-only={cloud}.amd64,{cloud}.arm64")
    assert p.returncode == 0, p.stdout + p.stderr


def test_packer_validate_catches_a_bad_cloud_setting(tmp_path):
    """Validation reaches the Azure and GCP builders' own checks."""
    copy = tmp_path / "deploy"
    shutil.copytree(os.path.join(SOURCE, "deploy"), copy)
    tpl = copy / "packer" / "davit-launcher.pkr.hcl"
    text = tpl.read_text()
    tpl.write_text(text.replace('os_type                           = "Linux"', 'os_type = "Plan9"', 1)
                   .replace('source_image_family     = "debian-12"', 'source_image_family = ""', 1))
    p = validate(directory=str(copy / "packer"))
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert 'os_type "Plan9" is invalid' in out, out
    assert "a source_image or source_image_family must be specified" in out, out


def test_every_source_runs_the_same_provisioning():
    tpl = os.path.join(PACKER, "davit-launcher.pkr.hcl")
    parsed = parse_hcl([tpl])[tpl]
    sources = {f"source.{kind}.{name}" for kind, named in parsed["source"].items() for name in named}
    assert sources == {f"source.{c}.{a}" for c in CLOUDS for a in ("amd64", "arm64")}
    (build,) = parsed["build"]
    assert set(build["sources"]) == sources
    # The shell and file provisioners have no only/except but the Azure
    # generalization step, which runs after the shared ones.
    shells = build["provisioner"]["shell"]
    assert [s.get("only") for s in shells] == [None, None, ["azure-arm.amd64", "azure-arm.arm64"]]
    assert "except" not in json.dumps(build)


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
    assert '"debian-12-amd64-*"' in text and '"debian-12-arm64-*"' in text
    assert 'image_sku                         = "12-arm64"' in text
    assert 'source_image_family     = "debian-12-arm64"' in text


def test_scripts_pass_shellcheck():
    scripts = [os.path.join(PACKER, "scripts", f) for f in os.listdir(os.path.join(PACKER, "scripts"))]
    p = subprocess.run(["shellcheck", "-S", "warning", *scripts], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


PROVISION = os.path.join(PACKER, "scripts", "provision")


@pytest.mark.parametrize("runsc", ["", "/usr/bin/runsc"])
def test_provision_merges_daemon_json(tmp_path, runsc):
    """The provision script's daemon.json step, on the host: live-restore on (a restarted dockerd
    keeps the runs' containers), the gVisor runtime merged in when asked, the file's own settings
    kept (not overwritten)."""
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"log-driver": "journald", "runtimes": {"kata": {"path": "/k"}}}))
    p = subprocess.run(["sh", PROVISION, "daemon-json", str(path)] + ([runsc] if runsc else []),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    conf = json.loads(path.read_text())
    want = {"log-driver": "journald", "live-restore": True, "runtimes": {"kata": {"path": "/k"}}}
    if runsc:
        want["runtimes"]["runsc"] = {"path": runsc}
    assert conf == want
    fresh = tmp_path / "new.json"  # no file yet: created
    subprocess.run(["sh", PROVISION, "daemon-json", str(fresh)], check=True, timeout=60)
    assert json.loads(fresh.read_text()) == {"live-restore": True}


def test_provision_holds_docker():
    with open(PROVISION) as f:
        assert re.search(r"^apt-mark hold docker\.io containerd runc", f.read(), re.M)
