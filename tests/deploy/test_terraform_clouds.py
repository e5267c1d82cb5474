"""deploy/terraform/azure and deploy/terraform/gcp, checked as
test_terraform.py checks the AWS module: every .tf file parses as HCL2
(@cdktf/hcl2json); every variable used is declared, every declared one is
used and in the module's doc, each has a description, a type and, where its
values can be wrong, a validation; outputs are described; the examples give
the module only variables it declares; no secret has a default or reaches
the custom data, startup script or metadata (only where to read them does);
the instances' identity may read the two secrets and nothing else; the
architecture follows the machine size."""
import json
import os
import re
import subprocess

import pytest

from conftest import (SOURCE, blocks, check_variable_blocks, example_dirs, parse_hcl,
                      render_template, template_placeholders, templatefile_keys, tf_files, used_vars)

TF = os.path.join(SOURCE, "deploy", "terraform")
CLOUDS = {
    "azure": {"template": "custom-data.sh.tftpl", "doc": "deploy-azure.md",
              "outputs": {"scale_set_id", "scale_set_name", "identity_client_id", "resource_group_name",
                          "subscription_id", "autoscaler_role_definition_id", "autoscaler_environment"},
              "role": ("azurerm_role_definition", r'"(Microsoft\.Compute/[A-Za-z/]+)"', "## Minimum Azure role"),
              "autoscaler_env": {"PROVIDER", "POOL", "SCALE_SET", "SUBSCRIPTION", "RESOURCE_GROUP", "MAX"},
              "provider": ("azurerm", "hashicorp/azurerm")},
    "gcp": {"template": "startup-script.sh.tftpl", "doc": "deploy-gcp.md",
            "outputs": {"instance_group_manager", "service_account_email", "project_id", "region",
                        "autoscaler_role_id", "autoscaler_environment"},
            "role": ("google_project_iam_custom_role", r'"?`?(compute\.[A-Za-z]+\.[A-Za-z]+)`?"?', "## Minimum GCP permissions"),
            "autoscaler_env": {"PROVIDER", "POOL", "GROUP", "PROJECT", "REGION", "MAX"},
            "provider": ("google", "hashicorp/google")},
}
NO_VALIDATION = {"tags", "labels"}
SECRETISH = re.compile(r"token|private_key|secret|password", re.I)


def module(cloud):
    return os.path.join(TF, cloud)


@pytest.fixture(scope="module")
def parsed():
    files = [f for c in CLOUDS for d in [module(c), *example_dirs(module(c))] for f in tf_files(d)]
    return parse_hcl(files)


def read(*path):
    with open(os.path.join(*path)) as f:
        return f.read()


@pytest.mark.parametrize("cloud", CLOUDS)
def test_every_tf_file_parses(cloud, parsed):
    names = {os.path.relpath(f, module(cloud)) for f in parsed if f.startswith(module(cloud) + "/")}
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "examples/basic/main.tf"} <= names


@pytest.mark.parametrize("cloud", CLOUDS)
def test_variables_declared_used_described_validated(cloud, parsed):
    declared = blocks(parsed, module(cloud), "variable")
    used = used_vars(parsed, module(cloud))
    assert used - set(declared) == set(), "used but not declared"
    assert set(declared) - used == set(), "declared but not used"
    doc = read(SOURCE, "docs", CLOUDS[cloud]["doc"])
    check_variable_blocks(declared, NO_VALIDATION)
    for name in declared:
        assert f"`{name}`" in doc, f"variable {name} missing from docs/{CLOUDS[cloud]['doc']}"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_no_secret_has_a_default(cloud, parsed):
    for d in [module(cloud), *example_dirs(module(cloud))]:
        for name, body in blocks(parsed, d, "variable").items():
            if SECRETISH.search(name):
                assert "default" not in body, f"{d}: variable {name} has a default"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_outputs_described(cloud, parsed):
    outputs = blocks(parsed, module(cloud), "output")
    assert CLOUDS[cloud]["outputs"] <= set(outputs)
    for name, body in outputs.items():
        assert body.get("description"), f"output {name} has no description"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_provider_pinned(cloud, parsed):
    tf = parsed[os.path.join(module(cloud), "versions.tf")]["terraform"][0]
    name, source = CLOUDS[cloud]["provider"]
    p = tf["required_providers"][0][name]
    assert p["source"] == source and p["version"].startswith(">=")


@pytest.mark.parametrize("cloud", CLOUDS)
def test_examples_give_only_declared_variables(cloud, parsed):
    declared = blocks(parsed, module(cloud), "variable")
    required = {n for n, b in declared.items() if "default" not in b}
    for d in example_dirs(module(cloud)):
        own = blocks(parsed, d, "variable")
        assert used_vars(parsed, d) - set(own) == set(), f"{d}: used but not declared"
        mods = blocks(parsed, d, "module")
        assert mods, f"{d} uses no module"
        for name, body in mods.items():
            assert os.path.normpath(os.path.join(d, body["source"])) == module(cloud)
            args = set(body) - {"source", "providers", "depends_on", "count", "for_each"}
            assert args - set(declared) == set(), f"{d}: module {name} gets undeclared inputs"
            assert required - args == set(), f"{d}: module {name} lacks required inputs"


SAMPLES = {
    "azure": {"token_from": "azure-keyvault:davit-vault/davit-web-token",
              "private_key_from": "azure-keyvault:davit-vault/davit-web-key",
              "client_id": "11111111-2222-3333-4444-555555555555"},
    "gcp": {"token_from": "gcp-secretmanager:projects/p-123456/secrets/davit-web-token",
            "private_key_from": "gcp-secretmanager:projects/p-123456/secrets/davit-web-key"},
}


@pytest.mark.parametrize("cloud", CLOUDS)
def test_boot_template_renders_without_a_secret(cloud, tmp_path):
    tpl = CLOUDS[cloud]["template"]
    text = read(module(cloud), "templates", tpl)
    keys = templatefile_keys(read(module(cloud), "main.tf"), tpl)
    sample = {**SAMPLES[cloud], "server_ca_pem": "", "extra_env": "DAVIT_METADATA_team=web"}
    assert template_placeholders(text) == keys == set(sample)
    out = render_template(text, sample)
    env = out[out.index("<<'DAVIT_ENV'\n") + 14:out.index("\nDAVIT_ENV\n")].splitlines()
    assert env[:2] == ["DAVIT_TOKEN_FROM=" + sample["token_from"],
                       "DAVIT_POOL_PRIVATE_KEY_FROM=" + sample["private_key_from"]]
    assert "DAVIT_TOKEN=" not in out and "DAVIT_POOL_PRIVATE_KEY=" not in out
    # Azure's custom data is at most 64 KB; GCP's metadata values 256 KB.
    assert len(out.encode()) < 16384
    script = tmp_path / "boot.sh"
    script.write_text(out)
    p = subprocess.run(["shellcheck", "-S", "warning", str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


def test_no_secret_reaches_custom_data_or_metadata(parsed):
    """What the instances are given holds only where to read the secrets:
    the templates get names, the GCP metadata nothing else but the scripts."""
    az = read(module("azure"), "main.tf")
    given = az[az.index("custom_data = templatefile("):az.index("})", az.index("custom_data = templatefile("))]
    assert re.findall(r"=\s*(\S.*)", given) == [
        'templatefile("${path.module}/templates/custom-data.sh.tftpl", {',
        '"azure-keyvault:${local.vault_name}/${var.token_secret_name}"',
        '"azure-keyvault:${local.vault_name}/${var.private_key_secret_name}"',
        "azurerm_user_assigned_identity.workers.client_id",
        "var.server_ca_pem", 'join("\\n", local.env_lines)']
    tpl = resources(parsed, module("gcp"))["google_compute_instance_template"]["workers"]
    assert set(tpl["metadata"]) == {"startup-script", "shutdown-script", "enable-oslogin"}
    for cloud in CLOUDS:
        for name, body in blocks(parsed, module(cloud), "variable").items():
            if name == "launcher_env":
                assert "DAVIT_POOL_PRIVATE_KEY" in body["validation"][0]["condition"]
    assert "data_source" not in read(module("gcp"), "main.tf")  # no secret version read by Terraform
    for cloud in CLOUDS:
        assert not re.search(r'resource "(azurerm_key_vault_secret|google_secret_manager_secret_version)"',
                             read(module(cloud), "main.tf")), "the secrets must not pass through state"


def test_least_permissions(parsed):
    az = resources(parsed, module("azure"))
    ra = az["azurerm_role_assignment"]["secrets"]
    assert ra["role_definition_name"] == "Key Vault Secrets User"
    assert ra["scope"] == "${var.key_vault_id}/secrets/${each.value}"
    assert ra["for_each"] == "${local.secret_names}"
    assert ra["principal_id"] == "${azurerm_user_assigned_identity.workers.principal_id}"
    # The autoscaler's role: on the scale set only, to the autoscaler's identity only.
    auto = az["azurerm_role_assignment"]["autoscaler"]
    assert auto["scope"] == "${azurerm_linux_virtual_machine_scale_set.workers.id}"
    assert auto["principal_id"] == "${var.autoscaler_principal_id}"
    assert set(az["azurerm_role_assignment"]) == {"secrets", "autoscaler"}
    assert set(az) == {"azurerm_user_assigned_identity", "azurerm_role_assignment",
                       "azurerm_linux_virtual_machine_scale_set", "azurerm_role_definition"}
    vmss = az["azurerm_linux_virtual_machine_scale_set"]["workers"]
    assert vmss["identity"][0]["type"] == "UserAssigned"
    assert vmss["overprovision"] is False
    assert vmss["termination_notification"][0]["enabled"] is True

    g = resources(parsed, module("gcp"))
    (member,) = g["google_secret_manager_secret_iam_member"].values()
    assert member["role"] == "roles/secretmanager.secretAccessor"
    assert member["for_each"] == "${local.secrets}"
    # The only project-wide grant is the autoscaler's custom role, to the autoscaler's account:
    # the workers' service account gets none.
    (pm,) = g["google_project_iam_member"].values()
    assert pm["member"] == "serviceAccount:${var.autoscaler_service_account}"
    assert pm["role"] == "${google_project_iam_custom_role.autoscaler.id}"
    mig = g["google_compute_region_instance_group_manager"]["workers"]
    assert mig["update_policy"][0]["instance_redistribution_type"] == "NONE"
    assert set(g) == {"google_service_account", "google_secret_manager_secret_iam_member",
                      "google_compute_instance_template", "google_compute_region_instance_group_manager",
                      "google_project_iam_custom_role", "google_project_iam_member"}


def resources(parsed, directory):
    """{type: {name: body}} over a directory's .tf files."""
    out = {}
    for f in tf_files(directory):
        for kind, named in parsed[f].get("resource", {}).items():
            for name, bodies in named.items():
                out.setdefault(kind, {})[name] = bodies[0]
    return out


def derive(cloud, size):
    m = re.search(r'derived_arch\s*=\s*can\(regex\("([^"]+)", var\.(\w+)\)\) \? "arm64" : "amd64"',
                  read(module(cloud), "main.tf"))
    assert m, f"{cloud}/main.tf: derived_arch not found"
    return "arm64" if re.search(m.group(1).replace("\\\\", "\\"), size) else "amd64"


@pytest.mark.parametrize("size,arch", [
    ("Standard_D2ps_v5", "arm64"), ("Standard_D4pds_v5", "arm64"), ("Standard_E2ps_v5", "arm64"),
    ("Standard_B2pts_v2", "arm64"), ("Standard_D2pls_v5", "arm64"), ("Standard_D4ps_v6", "arm64"),
    ("Standard_E4pds_v6", "arm64"), ("Standard_B2pls_v2", "arm64"),
    ("Standard_D2s_v5", "amd64"), ("Standard_D2as_v5", "amd64"), ("Standard_B2s", "amd64"),
    ("Standard_F4s_v2", "amd64"), ("Standard_NP10s", "amd64"), ("Standard_E4-2s_v5", "amd64"),
    ("Standard_DS2_v2", "amd64"), ("Standard_NC24ads_A100_v4", "amd64"), ("Standard_HB120rs_v3", "amd64"),
    ("Standard_M416ms_v2", "amd64"), ("Standard_D2ads_v5", "amd64"),
])
def test_azure_architecture_from_the_vm_size(size, arch):
    assert derive("azure", size) == arch


@pytest.mark.parametrize("machine_type,arch", [
    ("t2a-standard-1", "arm64"), ("t2a-standard-48", "arm64"), ("c4a-standard-4", "arm64"),
    ("c4a-highmem-8", "arm64"), ("e2-standard-2", "amd64"), ("n2-standard-4", "amd64"),
    ("t2d-standard-2", "amd64"), ("c3-standard-4", "amd64"), ("n2d-highcpu-8", "amd64"),
])
def test_gcp_architecture_from_the_machine_type(machine_type, arch):
    assert derive("gcp", machine_type) == arch


def test_gcp_shutdown_script_drains():
    text = read(module("gcp"), "templates", "shutdown-script.sh")
    assert "systemctl stop davit-launcher.service" in text
    p = subprocess.run(["shellcheck", "-S", "warning", os.path.join(module("gcp"), "templates",
                                                                     "shutdown-script.sh")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


def test_azure_arm64_needs_a_gallery_image(parsed):
    """Arm64 VMs boot only from gallery images, which the managed-image
    lookup cannot find: the module refuses an arm64 size without image_id."""
    res = resources(parsed, module("azure"))
    (pre,) = res["azurerm_linux_virtual_machine_scale_set"]["workers"]["lifecycle"][0]["precondition"]
    assert pre["condition"] == '${local.image_id != ""}'
    main = read(module("azure"), "main.tf")
    assert 'count               = var.image_id == "" && local.arch == "amd64" ? 1 : 0' in main
    ex = blocks(parsed, os.path.join(module("azure"), "examples", "basic"), "module")["davit_pool"]
    assert derive("azure", ex["vm_size"]) == "arm64" and ex["image_id"] == "${var.image_id}"


def _section(text, heading):
    rest = text[text.index(heading) + len(heading):]
    return rest[:rest.index("\n## ")]


@pytest.mark.parametrize("cloud", CLOUDS)
def test_autoscaler_role_is_the_documented_minimum(cloud, parsed):
    """The module's autoscaler role holds exactly what docs/autoscale.md lists as the minimum."""
    kind, pattern, heading = CLOUDS[cloud]["role"]
    (role,) = [r for f in tf_files(module(cloud)) for r in parsed[f].get("resource", {}).get(kind, {}).values()]
    granted = set(re.findall(pattern, json.dumps(role)))
    section = _section(read(SOURCE, "docs", "autoscale.md"), heading)
    if cloud == "gcp":  # the table's rows, not the prose's "needs no compute.instances.create"
        section = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    documented = set(re.findall(pattern, section))
    assert granted and granted == documented


@pytest.mark.parametrize("cloud", CLOUDS)
def test_autoscaler_environment_names_the_group(cloud, parsed):
    """The environment file's lines are `davit autoscale` variables, with all it requires."""
    (out,) = [b for n, b in blocks(parsed, module(cloud), "output").items() if n == "autoscaler_environment"]
    keys = set(re.findall(r"DAVIT_AUTOSCALE_([A-Z_]+)=", json.dumps(out)))
    assert CLOUDS[cloud]["autoscaler_env"] <= keys
    options = read(SOURCE, "docs", "autoscale.md")
    for k in keys:
        assert "`DAVIT_AUTOSCALE_%s`" % k in options, k
