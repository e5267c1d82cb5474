"""The boot script's AWS side (deploy/boot/davit-boot-aws) against
tests/aws/fake_aws.py, a MOCK of IMDSv2, SSM and Secrets Manager that checks
every request's SigV4 signature (AWS cannot be reached here).

test_first_boot_in_a_container is a worker's first boot, as near as a
container gets: a Debian 12 userland (the host's /usr, read-only: the image
is Debian 12 too), the image step (deploy/packer/scripts/install-davit-boot
with the files the Packer template uploads), then the Terraform module's user
data rendered from its template, run as cloud-init would. systemd cannot run
in a container here, so tests/deploy/fake-systemd plays PID 1 and systemctl:
it starts davit-launcher.service from the installed unit and its drop-in
exactly as written (EnvironmentFile, Environment, ExecStart,
ExecStopPost). What it proves: the user data writes the environment file
without a secret and asks for the unit; the unit's boot script reads the
token (SSM) and the key (Secrets Manager) with the instance role's
credentials from IMDSv2, downloads and verifies the launcher from a real
davit server, and the launcher registers with instance_id metadata; on a
pool cycle the launcher exits 75 and the drop-in powers the machine off.
What it does not: systemd's own ordering (After=docker.service) and a real
poweroff.

The other tests run the boot script on the host: no secret on any
command line, and each failure is one line, nothing echoed, exit 2 for a
configuration error and 1 (systemd restarts it) for what may pass."""
import base64
import hashlib
import os
import re
import subprocess

import pytest

import davit_e2e
from conftest import (SOURCE, TEMPLATE, container_logs, docker, first_boot, render_template,
                      wait_registered)
from davit_e2e import make_pool
import fake_aws
from fake_aws import FakeAWS

BOOT_DIR = os.path.join(SOURCE, "deploy", "boot")
BOOT = os.path.join(BOOT_DIR, "davit-launcher-boot")
TOKEN_PARAM = "/davit/web/token"
KEY_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:davit-web-key-AbCdEf"


@pytest.fixture(scope="module")
def pool(stack):
    token, keyfile = make_pool(stack.server, stack.tmp, "web")
    with open(keyfile, "rb") as f:
        return token, base64.b64encode(f.read()).decode()


@pytest.fixture
def aws(pool):
    token, key = pool
    with FakeAWS() as a:
        a.parameters[TOKEN_PARAM] = ("SecureString", token)
        a.secrets[KEY_SECRET] = key
        yield a


def aws_env(aws, **extra):
    return {"DAVIT_TOKEN_FROM": "ssm:" + TOKEN_PARAM,
            "DAVIT_POOL_PRIVATE_KEY_FROM": "secretsmanager:" + KEY_SECRET,
            "DAVIT_AWS_IMDS_ENDPOINT": aws.imds_url, "DAVIT_AWS_ENDPOINT": aws.url,
            "DAVIT_AWS_CA_FILE": aws.ca_file, **extra}


# ---- on the host ----

def source_boot_aws(env, path=None):
    """Sources davit-boot-aws as davit-launcher-boot does and prints the
    environment it hands the launcher."""
    script = ('set -eu\ndie() { echo "davit-launcher-boot: $*" >&2; exit 2; }\n'
              'retry() { echo "davit-launcher-boot: $* (retrying later)" >&2; exit 1; }\n'
              f'. {BOOT_DIR}/davit-boot-aws\naws_boot_env\nenv\n')
    e = {"PATH": path or os.environ["PATH"], **env}
    return subprocess.run(["sh", "-c", script], env=e, capture_output=True, text=True, timeout=60)


def test_secrets_read_with_the_role_and_never_on_a_command_line(aws, pool, tmp_path):
    token, key = pool
    # A curl that writes down its arguments, then runs the real one.
    shim = tmp_path / "bin"
    shim.mkdir()
    argv_log = tmp_path / "argv"
    (shim / "curl").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>{argv_log}\nexec /usr/bin/curl "$@"\n')
    (shim / "curl").chmod(0o755)
    p = source_boot_aws(aws_env(aws), path=f"{shim}:{os.environ['PATH']}")
    assert p.returncode == 0, p.stderr
    env = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    assert env["DAVIT_TOKEN"] == token
    assert env["DAVIT_POOL_PRIVATE_KEY"] == key
    assert env["DAVIT_METADATA_instance_id"] == aws.imds_instance_id
    # The role's keys are not left for the launcher.
    assert fake_aws.TEST_SECRET_KEY not in p.stdout
    argv = argv_log.read_text()
    assert len(argv.splitlines()) == 7  # IMDS: token, id, region, role, creds; SSM; Secrets Manager
    for secret in (token, key, fake_aws.TEST_SECRET_KEY, fake_aws.TEST_SESSION_TOKEN,
                   fake_aws.TEST_ACCESS_KEY):
        assert secret not in argv and secret not in p.stderr
    assert [c[:2] for c in aws.calls] == [("ssm", "AmazonSSM.GetParameter"),
                                         ("secretsmanager", "secretsmanager.GetSecretValue")]
    assert aws.calls[0][2] == {"Name": TOKEN_PARAM, "WithDecryption": True}
    assert re.fullmatch(r"davit-launcher-boot: instance i-\w+ \(eu-west-1\): read the pool's "
                        r"secrets with role davit-worker\n", p.stderr)


def boot_fails(env, rc=2):
    """davit-launcher-boot with only the AWS variables: it must stop before
    anything is downloaded, with rc (2: configuration, 1: try again). Returns
    its one line of error."""
    p = subprocess.run([BOOT], env={"PATH": os.environ["PATH"], **env}, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == rc, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_a_missing_parameter_is_named_with_aws_error(aws):
    err = boot_fails(aws_env(aws, DAVIT_TOKEN_FROM="ssm:/davit/web/nope"))
    assert err == ("davit-launcher-boot: DAVIT_TOKEN_FROM: ssm:/davit/web/nope: "
                   "AmazonSSM.GetParameter: HTTP 400 ParameterNotFound")


def test_expired_credentials_are_refused(aws):
    aws.credentials[fake_aws.TEST_ACCESS_KEY]["expired"] = True
    err = boot_fails(aws_env(aws))
    assert re.fullmatch(r"davit-launcher-boot: DAVIT_TOKEN_FROM: ssm:/davit/web/token: "
                        r"AmazonSSM.GetParameter: HTTP 4\d\d ExpiredToken\w*", err), err
    assert len(aws.refused) == 1 and aws.refused[0][1].startswith("ExpiredToken")
    assert aws.calls == []


def test_a_value_that_is_not_base64_is_refused_without_echoing_it(aws):
    aws.secrets[KEY_SECRET] = "-----BEGIN PRIVATE KEY----- s3cr3t"
    err = boot_fails(aws_env(aws))
    assert "s3cr3t" not in err
    assert err.startswith("davit-launcher-boot: DAVIT_POOL_PRIVATE_KEY_FROM: the value of "
                          "secretsmanager:arn:aws:secretsmanager:")
    assert "not one line of base64" in err


def test_no_metadata_service_no_boot_until_it_answers(aws):
    err = boot_fails(aws_env(aws, DAVIT_AWS_IMDS_ENDPOINT="http://127.0.0.1:9"), rc=1)
    assert err == ("davit-launcher-boot: the instance metadata service at http://127.0.0.1:9 "
                   "gave no session token (IMDSv2) (retrying later)")


@pytest.mark.parametrize("status,code", [(503, "ServiceUnavailable"), (500, "InternalServerError"),
                                         (400, "ThrottlingException")])
def test_aws_unavailable_or_throttling_is_tried_again(aws, status, code):
    """Not a configuration error: exit 1, so that systemd starts it again (RestartSec) instead of
    RestartPreventExitStatus=2 keeping the machine without a launcher for good."""
    aws.outage["secretsmanager.GetSecretValue"] = (status, code)
    err = boot_fails(aws_env(aws), rc=1)
    assert err == ("davit-launcher-boot: DAVIT_POOL_PRIVATE_KEY_FROM: secretsmanager:%s: "
                   "secretsmanager.GetSecretValue: HTTP %d %s (retrying later)" % (KEY_SECRET, status, code))


def test_aws_unreachable_is_tried_again(aws):
    err = boot_fails(aws_env(aws, DAVIT_AWS_ENDPOINT="https://127.0.0.1:9"), rc=1)
    assert err.startswith("davit-launcher-boot: DAVIT_TOKEN_FROM: ssm:/davit/web/token: "
                          "AmazonSSM.GetParameter at https://127.0.0.1:9: no answer (curl exit 7)")


def test_instance_id_without_secret_sources(aws):
    """The token given as is (no DAVIT_TOKEN_FROM): the instance id still becomes instance_id
    metadata when the metadata service answers, and nothing when there is none."""
    script = (f'set -eu\n. {BOOT_DIR}/davit-boot-aws\naws_instance_id_env\n'
              'echo "id=${DAVIT_METADATA_instance_id:-}"\n')
    for endpoint, want in ((aws.imds_url, aws.imds_instance_id), ("http://127.0.0.1:9", "")):
        p = subprocess.run(["sh", "-c", script], env={"PATH": os.environ["PATH"],
                                                      "DAVIT_AWS_IMDS_ENDPOINT": endpoint},
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and p.stdout == "id=%s\n" % want, p
    with open(BOOT) as f:  # davit-launcher-boot calls it when no secret source is set
        assert re.search(r"\nelif .*\n(.*\n){0,4}\s+aws_instance_id_env\n", f.read())


def test_a_malformed_source_is_refused(aws):
    err = boot_fails(aws_env(aws, DAVIT_TOKEN_FROM="s3://bucket/token"))
    assert err == ('davit-launcher-boot: DAVIT_TOKEN_FROM: "s3://bucket/token" is neither '
                   'ssm:NAME nor secretsmanager:ID')
    err = boot_fails(aws_env(aws, DAVIT_TOKEN_FROM='ssm:/a","WithDecryption":false,"x":"'))
    assert "is not a valid name" in err


# ---- a first boot in a container ----

def render_user_data(aws, tmp):
    with open(TEMPLATE) as f:
        text = f.read()
    extra = [f"DAVIT_AWS_IMDS_ENDPOINT={aws.imds_url}", f"DAVIT_AWS_ENDPOINT={aws.url}",
             f"DAVIT_AWS_CA_FILE={aws.ca_file}", "DAVIT_WORKER_NETWORK=none",
             "DAVIT_METADATA_team=web"]
    out = render_template(text, {
        "token_from": "ssm:" + TOKEN_PARAM, "private_key_from": "secretsmanager:" + KEY_SECRET,
        "region": fake_aws.TEST_REGION, "server_ca_pem": "", "extra_env": "\n".join(extra),
        "poweroff_on_cycle": True})
    path = os.path.join(tmp, "user-data.txt")
    with open(path, "w") as f:
        f.write(out)
    return path


def test_first_boot_in_a_container(stack, pool, aws, image):
    token, key = pool
    srv = stack.server
    user_data = render_user_data(aws, stack.tmp)
    name = first_boot(image, user_data, aws.ca_file)
    try:
        workers = wait_registered(srv, "web", name)
        assert len(workers) == 1
        assert workers[0]["metadata"]["instance_id"] == aws.imds_instance_id
        assert workers[0]["metadata"]["team"] == "web"

        # The image step and the user data left what the unit needs, and no secret on disk.
        def sh(cmd):
            return docker("exec", name, "sh", "-c", cmd).stdout
        assert sh("stat -c %a /etc/davit/launcher.env") == "600\n"
        env_file = sh("cat /etc/davit/launcher.env")
        assert f"DAVIT_TOKEN_FROM=ssm:{TOKEN_PARAM}\n" in env_file
        assert token not in env_file and key not in env_file
        assert sh("stat -c %a /usr/local/lib/davit/davit-launcher-boot") == "755\n"
        assert sh("ls /etc/systemd/system/davit-launcher.service.d") == "poweroff-on-cycle.conf\n"
        # The launcher it runs is the one the server published, verified.
        with open(davit_e2e.LAUNCHER, "rb") as f:
            assert sh("sha256sum </var/lib/davit-launcher/bin/davit-launcher | cut -c1-64") == \
                hashlib.sha256(f.read()).hexdigest() + "\n"
        # No process shows a secret on its command line.
        cmdlines = sh("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
        assert "davit-launcher" in cmdlines
        assert token not in cmdlines and key not in cmdlines

        # A pool cycle: the launcher exits 75 and the drop-in powers the machine off.
        srv.cli("pool", "cycle", "web")
        code = int(docker("wait", name, timeout=90).stdout.strip())
        out = container_logs(name)
        assert code == 75, out
        assert "fake-systemd: davit-launcher.service exited 75" in out
        assert "systemd would leave it stopped" in out
        assert "fake-systemd: systemctl poweroff" in out
        assert "davit-launcher-boot: running launcher" in out
        for secret in (token, key, fake_aws.TEST_SECRET_KEY, fake_aws.TEST_SESSION_TOKEN):
            assert secret not in out
        assert [c[1] for c in aws.calls] == ["AmazonSSM.GetParameter",
                                            "secretsmanager.GetSecretValue"]
    finally:
        docker("rm", "-f", name, check=False)
