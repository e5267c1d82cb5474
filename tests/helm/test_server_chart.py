"""deploy/helm/davit-server: helm lint --strict and helm template for its
value sets, each manifest against its kind's schema, what the manifests must
hold (one pod on a PVC for SQLite, probes on /healthz, HTTPS or an Ingress
with TLS, secrets only by reference), values.schema.json refusing bad values,
and the rendered container run for real on the image of
scripts/build-server-image, answering its own probe."""
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import secrets
import uuid

import pytest

import chart
from chart import containers, kind, pod_spec

sys.path.insert(0, os.path.join(chart.SOURCE, "tests", "e2e"))
from davit_e2e import wait_for  # noqa: E402

VALUE_SETS = ["server-ingress.yaml", "server-tls.yaml"]
DIST = os.environ.get("DAVIT_RELEASE_DIR") or os.path.join(chart.SOURCE, "dist")


def render(values, sets=()):
    return chart.render([values], sets, chart=chart.SERVER_CHART)


@pytest.fixture(scope="module", autouse=True)
def tools():
    chart.need_tools()


@pytest.fixture(scope="module")
def rendered():
    return {v: render(v) for v in VALUE_SETS}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_lint_strict(values):
    p = chart.helm("lint", "--strict", chart.SERVER_CHART, *chart.value_args([values]))
    assert p.returncode == 0, p.stdout + p.stderr


def test_every_manifest_validates_against_its_kinds_schema(rendered):
    docs = [d for v in VALUE_SETS for d in rendered[v]]
    assert {"StatefulSet", "Service", "Ingress"} <= {d["kind"] for d in docs}
    ok, report = chart.validate(docs)
    assert ok, report


@pytest.mark.parametrize("values", VALUE_SETS)
def test_one_server_on_a_pvc_with_health_probes(rendered, values):
    docs = rendered[values]
    (sts,) = kind(docs, "StatefulSet")
    assert sts["spec"]["replicas"] == 1
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    server = containers(pod_spec(docs))["server"]
    assert {"name": "data", "mountPath": "/var/lib/davit"} in server["volumeMounts"]
    assert claim["metadata"]["name"] == "data"
    tls = values == "server-tls.yaml"
    for probe in ("livenessProbe", "readinessProbe"):
        get = server[probe]["httpGet"]
        assert (get["path"], get["port"], get["scheme"]) == ("/healthz", "api",
                                                            "HTTPS" if tls else "HTTP")
    assert ("--tls-cert=/etc/davit/tls/tls.crt" in server["args"]) == tls
    assert ("--insecure-http" in server["args"]) == (not tls)
    # No secret is rendered: the TLS key, the metrics token and the admin token are Secrets by
    # reference.
    assert kind(docs, "Secret") == []
    admin_arg = "--admin-token-file=/etc/davit/admin/token"
    assert (admin_arg in server["args"]) == tls
    (svc,) = kind(docs, "Service")
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]


def test_admin_token_from_an_existing_secret_is_a_mounted_file(rendered):
    docs = rendered["server-tls.yaml"]
    server = containers(pod_spec(docs))["server"]
    assert "--admin-token-file=/etc/davit/admin/token" in server["args"]
    assert {"name": "admin-token", "mountPath": "/etc/davit/admin", "readOnly": True} \
        in server["volumeMounts"]
    (vol,) = [v for v in pod_spec(docs)["volumes"] if v["name"] == "admin-token"]
    # Not writable by group or others: the server refuses such a file.
    assert vol["secret"] == {"secretName": "davit-admin-token", "defaultMode": 0o444,
                             "items": [{"key": "token", "path": "token"}]}
    assert kind(docs, "Secret") == []


def test_admin_token_from_a_value_renders_its_secret():
    token = secrets.token_hex(32)
    docs = render("server-ingress.yaml", [f"adminToken.value={token}"])
    (sec,) = kind(docs, "Secret")
    assert base64.b64decode(sec["data"]["token"]).decode() == token
    (vol,) = [v for v in pod_spec(docs)["volumes"] if v["name"] == "admin-token"]
    assert vol["secret"]["secretName"] == sec["metadata"]["name"]
    # Without either, nothing is mounted: the first start prints a token (NOTES.txt says so).
    server = containers(pod_spec(render("server-ingress.yaml")))["server"]
    assert not [a for a in server["args"] if a.startswith("--admin-token-file")]


def test_ingress_terminates_tls(rendered):
    (ing,) = kind(rendered["server-ingress.yaml"], "Ingress")
    assert ing["spec"]["tls"] == [{"hosts": ["davit.example.com"], "secretName": "davit-example-com"}]
    (rule,) = ing["spec"]["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"]["port"]["name"] == "api"
    server = containers(pod_spec(rendered["server-ingress.yaml"]))["server"]
    assert "--public-url=https://davit.example.com" in server["args"]


@pytest.mark.parametrize("sets,error", [
    (["port=0"], "/port"),
    (["publicURL=davit.example.com"], "/publicURL"),
    (["persistence.size=big"], "/persistence/size"),
    (["replicas=2"], "'replicas' not allowed"),
    (["extraArgs={retention}"], "/extraArgs/0"),
    (["adminToken.value=short"], "/adminToken/value"),
    (["adminToken.value=" + "a1" * 20], "/adminToken"),  # beside existingSecret
])
def test_schema_refuses_bad_values(sets, error):
    rc, _, err = chart.template(["server-tls.yaml"], sets, chart=chart.SERVER_CHART)
    assert rc != 0 and error in err, err


def test_public_url_is_required():
    rc, _, err = chart.template([], [], chart=chart.SERVER_CHART)
    assert rc != 0 and "publicURL is required" in err


def test_rendered_server_container_answers_its_probe(tmp_path):
    """The rendered container on the image of scripts/build-server-image:
    its args, its PVC as a Docker volume, its read-only root; /healthz as
    the readiness probe reads it; the admin token from its Secret's file
    (mounted as the Secret volume would be), never printed."""
    assert platform.machine() == "x86_64", "the server image test runs amd64 images"
    assert os.path.exists(os.path.join(DIST, "davit-linux-amd64")), \
        f"no {DIST}/davit-linux-amd64: run `make release`"
    image = "davit/test-helm-server-" + uuid.uuid4().hex[:8]
    name = image.replace("/", "-")
    version = subprocess.run([os.path.join(DIST, "davit-linux-amd64"), "--version"], check=True,
                             capture_output=True, text=True).stdout.split()[-1]
    volume = f"{name}-data"
    token = "dva_" + secrets.token_urlsafe(32)
    token_dir = tmp_path / "admin"
    token_dir.mkdir()
    (token_dir / "token").write_text(token)
    (token_dir / "token").chmod(0o444)  # the Secret volume's defaultMode
    try:
        p = subprocess.run([os.path.join(chart.SOURCE, "scripts", "build-server-image"), DIST],
                           capture_output=True, text=True,
                           env={**os.environ, "SERVER_IMAGE": image, "SERVER_IMAGE_ARCHES": "amd64"})
        assert p.returncode == 0, p.stderr
        # The port is free when picked, but tests running beside this one can take it before the
        # container binds it (host network): then the server exits saying so, and we pick again.
        for attempt in range(3):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            docs = render("server-ingress.yaml", [f"port={port}", f"image.repository={image}",
                                                  "image.tag=latest",
                                                  f"publicURL=http://127.0.0.1:{port}",
                                                  "adminToken.existingSecret=davit-admin-token"])
            server = containers(pod_spec(docs))["server"]
            mounts = []
            for m in server["volumeMounts"]:
                if m["name"] == "data":
                    mounts += ["-v", f"{volume}:{m['mountPath']}"]
                elif m["name"] == "admin-token":
                    mounts += ["-v", f"{token_dir}:{m['mountPath']}:ro"]
                else:
                    mounts += ["--tmpfs", m["mountPath"]]
            sc = server["securityContext"]
            assert sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"]
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
            subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host", "--read-only",
                            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", *mounts,
                            server["image"], *server["args"]], check=True, capture_output=True)
            probe = server["readinessProbe"]["httpGet"]
            url = f"{probe['scheme'].lower()}://127.0.0.1:{port}{probe['path']}"

            def healthy_or_exited():
                try:
                    with urllib.request.urlopen(url, timeout=5) as r:
                        return json.load(r)
                except OSError:
                    running = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                                             capture_output=True, text=True).stdout.strip()
                    return "exited" if running != "true" else None
            health = wait_for(healthy_or_exited, limit=60, what="the server's /healthz", step=0.2)
            logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
            if health == "exited" and "in use" in logs.stderr + logs.stdout and attempt < 2:
                continue
            assert health != "exited", logs.stdout + logs.stderr
            break
        assert health["status"] == "ok"
        assert "admin API token" not in logs.stdout + logs.stderr
        assert token not in logs.stdout + logs.stderr
        assert "admin token set from file" in logs.stdout + logs.stderr

        def tokens(bearer):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/tokens",
                                         headers={"Authorization": "Bearer " + bearer})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code
        assert tokens(token) == 200
        assert tokens("dva_" + secrets.token_urlsafe(32)) == 401
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
        subprocess.run(["docker", "image", "rm", "-f", f"{image}:latest", f"{image}:{version}",
                        f"{image}:{version}-amd64"], capture_output=True)

