"""deploy/terraform/aws: every .tf file parses as HCL2 (Terraform's own
parser, compiled to WebAssembly: @cdktf/hcl2json, since Terraform cannot be
installed here); every variable used is declared, every declared one is used
or documented, each has a description and, where its values can be wrong, a
validation; the example gives the module only variables it declares; the
user-data template renders to the first-boot script with its parameters
substituted and no secret in it."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import (MODULE, SOURCE, TEMPLATE, blocks, check_variable_blocks, parse_hcl,
                      render_template, template_placeholders, templatefile_keys, tf_files, used_vars)
from conftest import example_dirs as module_examples

DOC = os.path.join(SOURCE, "docs", "deploy-aws.md")
# Free-form variables where no validation can tell a wrong value.
NO_VALIDATION = {"key_name", "poweroff_on_cycle", "tags"}


def example_dirs():
    return module_examples(MODULE)


@pytest.fixture(scope="module")
def parsed():
    files = tf_files(MODULE) + [f for d in example_dirs() for f in tf_files(d)]
    return parse_hcl(files)


def test_every_tf_file_parses(parsed):
    names = {os.path.relpath(f, MODULE) for f in parsed}
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "autoscaler.tf"} <= names
    assert any(n.startswith("examples/") for n in names)


def test_a_broken_file_is_refused(tmp_path):
    bad = tmp_path / "bad.tf"
    bad.write_text('resource "aws_instance" "x" {\n  ami = "ami-1"\n')
    with pytest.raises(AssertionError, match="bad.tf.*Unclosed configuration block"):
        parse_hcl([str(bad)])


def test_variables_declared_used_described_validated(parsed):
    declared = blocks(parsed, MODULE, "variable")
    used = used_vars(parsed, MODULE)
    assert used - set(declared) == set(), "used but not declared"
    with open(DOC) as f:
        doc = f.read()
    unused = {v for v in set(declared) - used if f"`{v}`" not in doc}
    assert unused == set(), "declared, neither used nor documented in docs/deploy-aws.md"
    check_variable_blocks(declared, NO_VALIDATION)
    # The module's inputs are in the doc's table.
    missing = [v for v in declared if f"`{v}`" not in doc]
    assert missing == [], "variables missing from docs/deploy-aws.md"


def test_outputs_described(parsed):
    outputs = blocks(parsed, MODULE, "output")
    assert {"autoscaling_group_name", "autoscaler_policy_arn", "autoscaler_command"} <= set(outputs)
    for name, body in outputs.items():
        assert body.get("description"), f"output {name} has no description"


def test_providers_pinned_without_packer_plugins(parsed):
    tf = parsed[os.path.join(MODULE, "versions.tf")]["terraform"][0]
    aws = tf["required_providers"][0]["aws"]
    assert aws["source"] == "hashicorp/aws" and aws["version"] == ">= 5.0, < 7.0"


def test_a_machine_that_powers_off_is_terminated(parsed):
    """poweroff_on_cycle powers a cycled machine off: stopped, it would hold a place in the group;
    terminated, the group replaces it."""
    lt = parsed[os.path.join(MODULE, "main.tf")]["resource"]["aws_launch_template"]["workers"][0]
    assert lt["instance_initiated_shutdown_behavior"] == "terminate"


def test_examples_give_only_declared_variables(parsed):
    declared = blocks(parsed, MODULE, "variable")
    required = {n for n, b in declared.items() if "default" not in b}
    for d in example_dirs():
        own = blocks(parsed, d, "variable")
        assert used_vars(parsed, d) - set(own) == set(), f"{d}: used but not declared"
        mods = blocks(parsed, d, "module")
        assert mods, f"{d} uses no module"
        for name, body in mods.items():
            assert os.path.normpath(os.path.join(d, body["source"])) == MODULE
            args = set(body) - {"source", "providers", "depends_on", "count", "for_each"}
            assert args - set(declared) == set(), f"{d}: module {name} gets undeclared inputs"
            assert required - args == set(), f"{d}: module {name} lacks required inputs"


def test_instance_role_reads_only_the_named_secrets():
    with open(os.path.join(MODULE, "main.tf")) as f:
        main = f.read()
    role = main[main.index("instance_statements = concat("):main.index("env_lines")]
    assert re.findall(r'Action\s*=\s*\[([^\]]*)\]', role) == [
        '"ssm:GetParameter"', '"secretsmanager:GetSecretValue"', '"kms:Decrypt"']
    assert '"*"' not in role
    with open(os.path.join(MODULE, "autoscaler.tf")) as f:
        auto = f.read()
    scale = auto[auto.index('"ScaleThisGroupOnly"'):]
    assert "Resource = aws_autoscaling_group.workers.arn" in scale
    assert "autoscaling:ResourceTag/davit:pool" in scale


@pytest.mark.parametrize("instance_type,arch", [
    ("t4g.small", "arm64"), ("m7g.large", "arm64"), ("c7gn.xlarge", "arm64"), ("m7gd.large", "arm64"),
    ("g5g.xlarge", "arm64"), ("x2gd.large", "arm64"), ("im4gn.large", "arm64"),
    ("is4gen.large", "arm64"), ("a1.medium", "arm64"), ("r8g.large", "arm64"),
    ("t3.large", "amd64"), ("m5.large", "amd64"), ("c7i.large", "amd64"), ("g4dn.xlarge", "amd64"),
    ("p4d.24xlarge", "amd64"), ("inf2.xlarge", "amd64"), ("m7i-flex.large", "amd64"),
    ("t3a.nano", "amd64"), ("m6a.large", "amd64"),
])
def test_architecture_from_the_instance_type(instance_type, arch):
    """The module's rule (RE2; this pattern means the same in Python)."""
    with open(os.path.join(MODULE, "main.tf")) as f:
        m = re.search(r'derived_arch = can\(regex\("([^"]+)", local\.family\)\) \? "arm64" : "amd64"',
                      f.read())
    assert m, "main.tf: derived_arch not found"
    family = instance_type.split(".")[0]
    got = "arm64" if re.search(m.group(1).replace("\\\\", "\\"), family) else "amd64"
    assert got == arch


def test_autoscaler_policy_allows_exactly_what_the_autoscaler_calls():
    with open(os.path.join(MODULE, "autoscaler.tf")) as f:
        allowed = set(re.findall(r'"((?:autoscaling|ec2):[A-Za-z]+)"', f.read()))
    allowed -= {"autoscaling:ResourceTag"}
    aws_c = os.path.join(SOURCE, "src", "cli", "aws.c")
    if not os.path.exists(aws_c):
        pytest.skip("no src/cli/aws.c (davit autoscale) in this tree")
    with open(aws_c) as f:
        called = {f"{svc}:{action}" for svc, action in
                  re.findall(r'\bcall\(\s*a,\s*"(autoscaling|ec2)",\s*"([A-Za-z]+)"', f.read())}
    assert called, "found no AWS call in src/cli/aws.c: update this test's pattern"
    assert allowed == called


SAMPLE = {
    "token_from": "ssm:/davit/web/token",
    "private_key_from": "secretsmanager:arn:aws:secretsmanager:eu-west-1:123456789012:secret:davit-key-AbCdEf",
    "region": "eu-west-1",
    "server_ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "extra_env": "DAVIT_WORKER_RUNTIME=runsc\nDAVIT_METADATA_team=web",
    "poweroff_on_cycle": True,
}


def test_user_data_template_renders_the_first_boot_script(tmp_path):
    with open(TEMPLATE) as f:
        text = f.read()
    with open(os.path.join(MODULE, "main.tf")) as f:
        keys = templatefile_keys(f.read())
    assert template_placeholders(text) == keys == set(SAMPLE)
    out = render_template(text, SAMPLE)
    assert "${" not in out
    env = out[out.index("<<'DAVIT_ENV'\n") + 14:out.index("\nDAVIT_ENV\n")].splitlines()
    assert env == ["DAVIT_TOKEN_FROM=ssm:/davit/web/token",
                   "DAVIT_POOL_PRIVATE_KEY_FROM=" + SAMPLE["private_key_from"],
                   "DAVIT_AWS_REGION=eu-west-1", "DAVIT_WORKER_RUNTIME=runsc",
                   "DAVIT_METADATA_team=web"]
    assert "DAVIT_TOKEN=" not in out and "DAVIT_POOL_PRIVATE_KEY=" not in out
    assert "ca='-----BEGIN CERTIFICATE-----\nMIIB\n" in out
    assert "poweroff_on_cycle='true'" in out
    assert len(out.encode()) < 16384 - 1024, "user data near EC2's 16 KB limit"
    script = tmp_path / "user-data.sh"
    script.write_text(out)
    subprocess.run(["sh", "-n", str(script)], check=True)
    p = subprocess.run(["shellcheck", "-S", "warning", str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


def test_render_refuses_what_it_cannot_render():
    with pytest.raises(AssertionError, match="not given"):
        render_template("a=${b}", {})
    with pytest.raises(AssertionError, match="not a simple name"):
        render_template('a=${upper("x")}', {})
    with pytest.raises(AssertionError, match="directive"):
        render_template("%{ if x }y%{ endif }", {})


@pytest.mark.skipif(not shutil.which("terraform"), reason="no terraform on PATH")
@pytest.mark.parametrize("network,ok", [("host", False), (" HOST", False), ("bridge", True),
                                        ("none", True)])
def test_launcher_env_refuses_the_host_network(tmp_path, network, ok):
    """launcher_env's validation, evaluated by Terraform itself on the variable alone (no provider:
    offline): a run on the host's network could take the instance role through IMDS."""
    with open(os.path.join(MODULE, "variables.tf")) as f:
        block = re.search(r'^variable "launcher_env" \{.*?^\}', f.read(), re.S | re.M).group(0)
    (tmp_path / "v.tf").write_text(block + "\n")
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    subprocess.run(["terraform", "init", "-input=false"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=120)
    p = subprocess.run(["terraform", "plan", "-input=false", "-no-color", "-var",
                        'launcher_env={DAVIT_WORKER_NETWORK="%s"}' % network], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert (p.returncode == 0) == ok, p.stdout + p.stderr
    if not ok:
        assert "DAVIT_WORKER_NETWORK = \"host\" is refused" in p.stderr.replace("\n", " ") or \
            "is refused" in p.stderr, p.stderr
