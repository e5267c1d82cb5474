"""The boot script's Azure and GCP sides (deploy/boot/davit-boot-azure,
davit-boot-gcp) against tests/aws/fake_azure.py and fake_gcp.py, MOCKS of
the instance metadata services, Key Vault and Secret Manager (and the
management APIs the autoscaler calls) (neither cloud
can be reached here), and the Azure Scheduled Events drain watcher
(deploy/boot/davit-azure-drain) against a real launcher.

test_first_boot_in_a_container is a worker's first boot in the container
test_boot_aws.py uses (conftest.first_boot: the image step, then the module's
custom data or startup script under fake-systemd): the token and key are read
with the machine's identity, the launcher is downloaded from a real davit
server and verified, and it registers with the instance_id the autoscaler
matches (the scale set instance id; the GCE instance name): a `davit autoscale
--dry-run` tick against the same mocks' management API holding that instance
counts the registered worker.

The others run on the host: no secret on any command line or in a message,
each failure one line, exit 2 for a configuration error and 1 (systemd
restarts it) for what may pass (a metadata service or the cloud unreachable,
a 5xx, throttling: the mocks' outage map); the watcher drains on a Terminate event and
acknowledges it only after the launcher's run has ended."""
import base64
import json
import os
import re
import subprocess

import pytest

import davit_e2e
import fake_azure
import fake_gcp
from conftest import (SOURCE, container_logs, docker, first_boot, render_template,
                      wait_registered)
from davit_e2e import make_pool, wait_for
from fake_azure import FakeAzure
from fake_gcp import FakeGCP

BOOT_DIR = os.path.join(SOURCE, "deploy", "boot")
BOOT = os.path.join(BOOT_DIR, "davit-launcher-boot")
DRAIN = os.path.join(BOOT_DIR, "davit-azure-drain")
TF = os.path.join(SOURCE, "deploy", "terraform")


@pytest.fixture(scope="module")
def pool(stack):
    token, keyfile = make_pool(stack.server, stack.tmp, "cloud")
    with open(keyfile, "rb") as f:
        return token, base64.b64encode(f.read()).decode(), keyfile


@pytest.fixture
def azure(pool):
    with FakeAzure() as az:
        az.secrets["davit-token"], az.secrets["davit-key"] = pool[0], pool[1]
        yield az


@pytest.fixture
def gcp(pool):
    with FakeGCP() as g:
        g.secrets["davit-token"], g.secrets["davit-key"] = pool[0], pool[1]
        yield g


def azure_env(az, **extra):
    return {"DAVIT_TOKEN_FROM": "azure-keyvault:davit-vault/davit-token",
            "DAVIT_POOL_PRIVATE_KEY_FROM": "azure-keyvault:davit-vault/davit-key",
            "DAVIT_AZURE_CLIENT_ID": fake_azure.CLIENT_ID,
            "DAVIT_AZURE_IMDS_ENDPOINT": az.metadata_url, "DAVIT_AZURE_KEYVAULT_ENDPOINT": az.url,
            "DAVIT_AZURE_CA_FILE": az.ca_file, **extra}


def gcp_env(g, **extra):
    return {"DAVIT_TOKEN_FROM": "gcp-secretmanager:davit-token",
            "DAVIT_POOL_PRIVATE_KEY_FROM": f"gcp-secretmanager:projects/{fake_gcp.PROJECT}/secrets/davit-key",
            "DAVIT_GCP_METADATA_ENDPOINT": g.metadata_url, "DAVIT_GCP_SECRETMANAGER_ENDPOINT": g.url,
            "DAVIT_GCP_CA_FILE": g.ca_file, **extra}


# ---- on the host ----

def source_boot(cloud, env, path=None):
    """Sources davit-boot-CLOUD as davit-launcher-boot does and prints the
    environment it hands the launcher."""
    script = ('set -eu\ndie() { echo "davit-launcher-boot: $*" >&2; exit 2; }\n'
              'retry() { echo "davit-launcher-boot: $* (retrying later)" >&2; exit 1; }\n'
              f'. {BOOT_DIR}/davit-boot-{cloud}\n{cloud}_boot_env\nenv\n')
    e = {"PATH": path or os.environ["PATH"], **env}
    return subprocess.run(["sh", "-c", script], env=e, capture_output=True, text=True, timeout=60)


def curl_shim(tmp_path):
    """A curl that writes down its arguments, then runs the real one."""
    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "argv"
    (shim / "curl").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>{log}\nexec /usr/bin/curl "$@"\n')
    (shim / "curl").chmod(0o755)
    return f"{shim}:{os.environ['PATH']}", log


@pytest.mark.parametrize("cloud", ["azure", "gcp"])
def test_secrets_read_with_the_identity_never_on_a_command_line(cloud, azure, gcp, pool, tmp_path):
    token, key, _ = pool
    mock = azure if cloud == "azure" else gcp
    env = azure_env(azure) if cloud == "azure" else gcp_env(gcp)
    path, argv_log = curl_shim(tmp_path)
    # The metadata service is reached directly, whatever proxy is set.
    p = source_boot(cloud, {**env, "http_proxy": "http://127.0.0.1:9"}, path=path)
    assert p.returncode == 0, p.stderr
    out = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    assert out["DAVIT_TOKEN"] == token
    assert out["DAVIT_POOL_PRIVATE_KEY"] == key
    argv = argv_log.read_text()
    access = fake_azure.ACCESS_TOKEN if cloud == "azure" else fake_gcp.ACCESS_TOKEN
    for secret in (token, key, access):
        assert secret not in argv and secret not in p.stderr
    # The identity's token is not left for the launcher.
    assert access not in p.stdout
    if cloud == "azure":
        assert out["DAVIT_METADATA_instance_id"] == fake_azure.INSTANCE_ID
        assert mock.boot_calls == [("identity", fake_azure.CLIENT_ID), ("keyvault", "davit-token"),
                              ("keyvault", "davit-key")]
        assert p.stderr == (f"davit-launcher-boot: scale set {fake_azure.SCALE_SET} instance "
                            f"{fake_azure.INSTANCE_ID}: read the pool's secrets with the managed identity\n")
    else:
        assert out["DAVIT_METADATA_instance_id"] == fake_gcp.INSTANCE_NAME
        assert mock.boot_calls == [
            ("token", ""),
            ("secretmanager", f"/v1/projects/{fake_gcp.PROJECT}/secrets/davit-token/versions/latest:access"),
            ("secretmanager", f"/v1/projects/{fake_gcp.PROJECT}/secrets/davit-key/versions/latest:access")]
        assert p.stderr == (f"davit-launcher-boot: instance {fake_gcp.INSTANCE_NAME} "
                            f"({fake_gcp.PROJECT}): read the pool's secrets with the service account\n")


def boot_fails(env, rc=2, path=None):
    """davit-launcher-boot with only the cloud's variables: it must stop
    before anything is downloaded, with exit rc (2: a configuration error,
    1: tried again). Returns its one line of error."""
    p = subprocess.run([BOOT], env={"PATH": path or os.environ["PATH"], **env}, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == rc, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_azure_errors_are_one_line_naming_the_secret(azure):
    assert boot_fails(azure_env(azure, DAVIT_TOKEN_FROM="azure-keyvault:davit-vault/nope")) == (
        "davit-launcher-boot: DAVIT_TOKEN_FROM: azure-keyvault:davit-vault/nope: Key Vault: "
        "HTTP 404 SecretNotFound")
    azure.denied.add("davit-key")
    assert boot_fails(azure_env(azure)) == (
        "davit-launcher-boot: DAVIT_POOL_PRIVATE_KEY_FROM: azure-keyvault:davit-vault/davit-key: "
        "Key Vault: HTTP 403 Forbidden")
    err = boot_fails(azure_env(azure, DAVIT_AZURE_CLIENT_ID="99999999-0000-0000-0000-000000000000"))
    assert err.startswith("davit-launcher-boot: the instance metadata service gave no token for "
                          "Key Vault: has the scale set a managed identity with client id 9999")
    err = boot_fails(azure_env(azure, DAVIT_TOKEN_FROM="azure-keyvault:v/a?b=c"))
    assert err == 'davit-launcher-boot: DAVIT_TOKEN_FROM: "a?b=c" is not a valid name'
    # The cloud is the first source's; the other must be of the same cloud.
    assert boot_fails(azure_env(azure, DAVIT_POOL_PRIVATE_KEY_FROM="ssm:/davit/key")) == (
        'davit-launcher-boot: DAVIT_POOL_PRIVATE_KEY_FROM: "ssm:/davit/key" is not '
        'azure-keyvault:VAULT/NAME')
    azure.resource_id = "/subscriptions/x/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1"
    assert "is not a scale set instance" in boot_fails(azure_env(azure))


def test_gcp_errors_are_one_line_naming_the_secret(gcp):
    assert boot_fails(gcp_env(gcp, DAVIT_TOKEN_FROM="gcp-secretmanager:nope")) == (
        "davit-launcher-boot: DAVIT_TOKEN_FROM: gcp-secretmanager:nope: Secret Manager: "
        "HTTP 404 NOT_FOUND")
    gcp.denied.add("davit-key")
    assert boot_fails(gcp_env(gcp)).endswith("Secret Manager: HTTP 403 PERMISSION_DENIED")
    assert boot_fails(gcp_env(gcp, DAVIT_TOKEN_FROM="gcp-secretmanager:a/b")) == (
        'davit-launcher-boot: DAVIT_TOKEN_FROM: "gcp-secretmanager:a/b" is neither '
        'gcp-secretmanager:NAME nor gcp-secretmanager:projects/P/secrets/NAME')
    assert boot_fails(gcp_env(gcp, DAVIT_TOKEN_FROM="gcp-secretmanager:projects/p/secrets/../../x")) == (
        'davit-launcher-boot: DAVIT_TOKEN_FROM: "gcp-secretmanager:projects/p/secrets/../../x" '
        'is not a valid name')
    gcp.denied.clear()
    gcp.secrets["davit-key"] = "-----BEGIN PRIVATE KEY----- s3cr3t"
    err = boot_fails(gcp_env(gcp))
    assert "s3cr3t" not in err and "is not one line of base64" in err
    # Without Metadata-Flavor the mock refuses, as GCE does; the script always sends it.
    assert ("metadata", 403) not in gcp.refused


def test_azure_metadata_or_key_vault_unreachable_is_tried_again(azure):
    """Not a configuration error: exit 1, so that systemd starts it again (RestartSec) instead of
    RestartPreventExitStatus=2 keeping the machine without a launcher for good."""
    assert boot_fails(azure_env(azure, DAVIT_AZURE_IMDS_ENDPOINT="http://127.0.0.1:9"), rc=1) == (
        "davit-launcher-boot: the instance metadata service at http://127.0.0.1:9 gave no resourceId "
        "(retrying later)")
    assert boot_fails(azure_env(azure, DAVIT_AZURE_KEYVAULT_ENDPOINT="https://127.0.0.1:9"), rc=1) == (
        "davit-launcher-boot: DAVIT_TOKEN_FROM: azure-keyvault:davit-vault/davit-token: Key Vault at "
        "https://127.0.0.1:9: no answer (curl exit 7) (retrying later)")
    # IMDS's identity endpoint throttling or failing: tried again; an unknown identity is not.
    azure.outage["identity"] = (429, "too_many_requests")
    assert boot_fails(azure_env(azure), rc=1) == (
        f"davit-launcher-boot: the instance metadata service at {azure.metadata_url} gave no token "
        "for Key Vault (retrying later)")
    assert ("identity", 429) in azure.refused
    assert azure.boot_calls == [("identity", fake_azure.CLIENT_ID)]  # Key Vault's unreachable one


@pytest.mark.parametrize("status,code", [(503, "ServiceUnavailable"), (429, "Throttled")])
def test_key_vault_unavailable_or_throttling_is_tried_again(azure, status, code, tmp_path):
    azure.outage["keyvault"] = (status, code)
    path, argv_log = curl_shim(tmp_path)
    err = boot_fails(azure_env(azure), rc=1, path=path)
    assert err == ("davit-launcher-boot: DAVIT_TOKEN_FROM: azure-keyvault:davit-vault/davit-token: "
                   f"Key Vault: HTTP {status} {code} (retrying later)")
    assert fake_azure.ACCESS_TOKEN not in argv_log.read_text()
    # Over, the same boot reads both; a 403 or a 404 stays a configuration error (exit 2).
    del azure.outage["keyvault"]
    azure.denied.add("davit-key")
    assert boot_fails(azure_env(azure)) == (
        "davit-launcher-boot: DAVIT_POOL_PRIVATE_KEY_FROM: azure-keyvault:davit-vault/davit-key: "
        "Key Vault: HTTP 403 Forbidden")
    assert ("keyvault", "davit-token") in azure.boot_calls


def test_gcp_metadata_or_secret_manager_unreachable_is_tried_again(gcp):
    assert boot_fails(gcp_env(gcp, DAVIT_GCP_METADATA_ENDPOINT="http://127.0.0.1:9"), rc=1) == (
        "davit-launcher-boot: the metadata server at http://127.0.0.1:9 gave no instance name "
        "(retrying later)")
    assert boot_fails(gcp_env(gcp, DAVIT_GCP_SECRETMANAGER_ENDPOINT="https://127.0.0.1:9"), rc=1) == (
        "davit-launcher-boot: DAVIT_TOKEN_FROM: gcp-secretmanager:davit-token: Secret Manager at "
        "https://127.0.0.1:9: no answer (curl exit 7) (retrying later)")
    # The metadata server's token endpoint failing: tried again; no service account (404) is not.
    gcp.outage["token"] = (503, "Service Unavailable")
    assert boot_fails(gcp_env(gcp), rc=1) == (
        f"davit-launcher-boot: the metadata server at {gcp.metadata_url} gave no access token "
        "(retrying later)")
    gcp.outage["token"] = (404, "Not Found")
    assert boot_fails(gcp_env(gcp)) == (
        "davit-launcher-boot: the metadata server gave no access token: has the instance a service account?")
    assert gcp.boot_calls == [("token", "")]  # Secret Manager's unreachable one


@pytest.mark.parametrize("status,code", [(503, "UNAVAILABLE"), (429, "RESOURCE_EXHAUSTED")])
def test_secret_manager_unavailable_or_throttling_is_tried_again(gcp, status, code, tmp_path):
    gcp.outage["secretmanager"] = (status, code)
    path, argv_log = curl_shim(tmp_path)
    err = boot_fails(gcp_env(gcp), rc=1, path=path)
    assert err == ("davit-launcher-boot: DAVIT_TOKEN_FROM: gcp-secretmanager:davit-token: "
                   f"Secret Manager: HTTP {status} {code} (retrying later)")
    assert fake_gcp.ACCESS_TOKEN not in argv_log.read_text()
    del gcp.outage["secretmanager"]
    gcp.denied.add("davit-key")
    assert boot_fails(gcp_env(gcp)) == (
        f"davit-launcher-boot: DAVIT_POOL_PRIVATE_KEY_FROM: gcp-secretmanager:projects/{fake_gcp.PROJECT}/"
        "secrets/davit-key: Secret Manager: HTTP 403 PERMISSION_DENIED")
    assert ("secretmanager", f"/v1/projects/{fake_gcp.PROJECT}/secrets/davit-token/versions/latest:access") \
        in gcp.boot_calls


def test_ca_file_with_a_space_is_one_argument(azure, gcp, tmp_path):
    """The CA bundle's path reaches curl as one argument (no word splitting)."""
    spaced = tmp_path / "a dir"
    spaced.mkdir()
    for cloud, mock, env in (("azure", azure, azure_env), ("gcp", gcp, gcp_env)):
        ca = spaced / f"{cloud} ca.pem"
        ca.write_bytes(open(mock.ca_file, "rb").read())
        var = "DAVIT_AZURE_CA_FILE" if cloud == "azure" else "DAVIT_GCP_CA_FILE"
        p = source_boot(cloud, env(mock, **{var: str(ca)}))
        assert p.returncode == 0, p.stderr


def test_azure_drain_acknowledges_only_after_the_runs_end(stack, pool, azure, tmp_path):
    """Terminate for this instance: the watcher stops the launcher (a real
    one, with a run in hand), which drains; the event is acknowledged only
    once the launcher has exited, its run finished, not cancelled."""
    token, _, keyfile = pool
    srv = stack.server
    la = stack.launcher("azure-drain", token, keyfile)
    wait_for(lambda: srv.workers("cloud"), what="the launcher to register")
    run = srv.submit("cloud", "work=sleep 3")
    wait_for(lambda: srv.run(run)["state"] == "running", what=f"run {run} to start")

    # systemctl stop, as systemd does it: SIGTERM, and return once it has exited.
    shim = tmp_path / "bin"
    shim.mkdir()
    stopped = tmp_path / "stopped"
    at_drain = tmp_path / "run-at-drain"
    (shim / "systemctl").write_text(
        f'#!/bin/sh\n[ "$*" = "stop davit-launcher.service" ] || exit 1\n'
        f'env -u http_proxy {davit_e2e.DAVIT} run show {run} --json >{at_drain}\n'
        f'kill -TERM {la.proc.pid}\n'
        f'while [ -e /proc/{la.proc.pid} ] && [ "$(cut -d" " -f3 /proc/{la.proc.pid}/stat)" != Z ]; do sleep 0.1; done\n'
        f'date +%s.%N >{stopped}\n')
    (shim / "systemctl").chmod(0o755)
    acked = []
    azure.on_ack = lambda eid: acked.append((eid, srv.run(run)["state"]))
    azure.add_event("Freeze")  # not a deletion: left alone
    azure.add_event("Terminate", resources=["davit-web_9"])  # another instance's
    watcher = subprocess.Popen(
        [DRAIN], env={**srv.env(), "PATH": f"{shim}:{os.environ['PATH']}",
                      "DAVIT_AZURE_IMDS_ENDPOINT": azure.metadata_url,
                      "DAVIT_AZURE_EVENTS_EVERY": "0.2", "http_proxy": "http://127.0.0.1:9"},
        stderr=subprocess.PIPE, text=True)
    try:
        eid = azure.add_event("Terminate")
        assert watcher.wait(timeout=60) == 0, watcher.stderr.read()
        err = watcher.stderr.read()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert la.wait(timeout=5) == 0  # drained: exit 0
    assert json.loads(at_drain.read_text())["state"] == "running"  # the drain had a run to wait for
    assert [a[0] for a in azure.acks] == [eid]
    assert acked == [(eid, "finished")]
    assert float(stopped.read_text()) <= azure.acks[0][1]
    assert srv.run(run)["state"] == "finished"
    assert f"Terminate event {eid}" in err and "draining the launcher" in err
    assert f"acknowledged {eid}" in err
    assert "Freeze event" in err and "left to run its course" in err


# ---- a first boot in a container ----

def autoscaler_decisions(cloud, mock, srv, pool_name):
    """One `davit autoscale --dry-run` tick over a group of one instance in mock, the instance its
    metadata service describes (fake_azure.INSTANCE_ID, fake_gcp.INSTANCE_NAME), min and max 1:
    its decisions."""
    if cloud == "azure":
        mock.add_scale_set(fake_azure.SCALE_SET, 0).adopt(fake_azure.INSTANCE_ID, fake_azure.INSTANCE_NAME)
        where = ["--scale-set", fake_azure.SCALE_SET, "--subscription", fake_azure.SUBSCRIPTION,
                 "--resource-group", fake_azure.RESOURCE_GROUP, "--azure-endpoint", mock.url]
        token = {"AZURE_ACCESS_TOKEN": fake_azure.TOKEN}
    else:
        mock.add_group("davit-web", 0).adopt(fake_gcp.INSTANCE_NAME, fake_gcp.INSTANCE_NAME)
        where = ["--group", "davit-web", "--project", fake_gcp.PROJECT, "--region", fake_gcp.REGION,
                 "--gcp-endpoint", mock.url]
        token = {"GOOGLE_OAUTH_ACCESS_TOKEN": fake_gcp.TOKEN}
    p = subprocess.run([davit_e2e.DAVIT, "autoscale", "--provider", cloud, "--pool", pool_name, "--dry-run",
                        "--ca-file", mock.ca_file, "--min", "1", "--max", "1", *where],
                       env={**srv.env(), **token}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return re.findall(r" autoscale decision decision=(\w+) .*reason=\"([^\"]*)\"", p.stderr)


def render(cloud, mock, tmp):
    env = (["DAVIT_AZURE_IMDS_ENDPOINT=" + mock.metadata_url, "DAVIT_AZURE_KEYVAULT_ENDPOINT=" + mock.url,
            "DAVIT_AZURE_CA_FILE=" + mock.ca_file] if cloud == "azure" else
           ["DAVIT_GCP_METADATA_ENDPOINT=" + mock.metadata_url,
            "DAVIT_GCP_SECRETMANAGER_ENDPOINT=" + mock.url, "DAVIT_GCP_CA_FILE=" + mock.ca_file])
    env += ["DAVIT_WORKER_NETWORK=none", f"DAVIT_METADATA_cloud={cloud}"]
    if cloud == "azure":
        tpl, values = "azure/templates/custom-data.sh.tftpl", {
            "token_from": "azure-keyvault:davit-vault/davit-token",
            "private_key_from": "azure-keyvault:davit-vault/davit-key",
            "client_id": fake_azure.CLIENT_ID}
    else:
        tpl, values = "gcp/templates/startup-script.sh.tftpl", {
            "token_from": "gcp-secretmanager:davit-token",
            "private_key_from": f"gcp-secretmanager:projects/{fake_gcp.PROJECT}/secrets/davit-key"}
    with open(os.path.join(TF, tpl)) as f:
        out = render_template(f.read(), {**values, "server_ca_pem": "", "extra_env": "\n".join(env)})
    path = os.path.join(tmp, f"{cloud}-boot.txt")
    with open(path, "w") as f:
        f.write(out)
    return path


@pytest.mark.parametrize("cloud", ["azure", "gcp"])
def test_first_boot_in_a_container(cloud, stack, pool, azure, gcp, image):
    token, key, _ = pool
    srv = stack.server
    mock = azure if cloud == "azure" else gcp
    for la in stack.launchers:  # the drain test's, if it ran: gone, and not counted
        la.stop()
    before = {w["id"] for w in srv.workers("cloud")}
    name = first_boot(image, render(cloud, mock, stack.tmp), mock.ca_file)
    try:
        workers = wait_for(lambda: [w for w in wait_registered(srv, "cloud", name)
                                    if w["id"] not in before], limit=60, step=0.3,
                           what=f"the {cloud} launcher to register")
        assert len(workers) == 1
        expect = fake_azure.INSTANCE_ID if cloud == "azure" else fake_gcp.INSTANCE_NAME
        assert workers[0]["metadata"]["instance_id"] == expect
        assert workers[0]["metadata"]["cloud"] == cloud
        # The autoscaler's side: the group's one instance has this worker (else: hold, 0 registered).
        ds = autoscaler_decisions(cloud, mock, srv, "cloud")
        assert [d for d, _ in ds] == ["steady"] and "capacity 1 meets target 1" in ds[0][1], ds

        def sh(cmd):
            return docker("exec", name, "sh", "-c", cmd).stdout
        env_file = sh("cat /etc/davit/launcher.env")
        assert token not in env_file and key not in env_file
        assert sh("stat -c %a /etc/davit/launcher.env") == "600\n"
        requests = sh("cat /run/fake-systemd/requests").splitlines()
        assert requests[-1] == "enable --now davit-launcher.service"
        assert ("enable --now davit-azure-drain.service" in requests) == (cloud == "azure")
        # The image step installed the watcher and its unit (one image for every cloud).
        assert sh("stat -c %a /usr/local/lib/davit/davit-azure-drain") == "755\n"
        assert "ExecStart=/usr/local/lib/davit/davit-azure-drain" in sh(
            "cat /etc/systemd/system/davit-azure-drain.service")
        cmdlines = sh("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
        assert "davit-launcher" in cmdlines
        for secret in (token, key, fake_azure.ACCESS_TOKEN, fake_gcp.ACCESS_TOKEN):
            assert secret not in cmdlines
        # Stopping the machine stops the service: the launcher drains and exits 0.
        docker("stop", "-t", "60", name, timeout=90)
        out = container_logs(name)
        assert "fake-systemd: davit-launcher.service exited 0" in out, out
        assert re.search(r"davit-launcher-boot: running launcher \S+ \(amd64, sha256 [0-9a-f]{64}\)", out)
        for secret in (token, key, fake_azure.ACCESS_TOKEN, fake_gcp.ACCESS_TOKEN):
            assert secret not in out
    finally:
        docker("rm", "-f", name, check=False)
