"""deploy/helm/davit-server: helm lint --strict and helm template for its
value sets, each manifest against its kind's schema, what the manifests must
hold (one pod on a PVC for SQLite, probes on /healthz, HTTPS or an Ingress
with TLS, secrets only by reference), values.schema.json refusing bad values,
and the rendered container run for real on the image of
scripts/build-server-image, answering its own probe."""
import json
import os
import platform
import socket
import subprocess
import sys
import urllib.request
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
    # No secret is rendered: the TLS key and the metrics token are Secrets by reference.
    assert kind(docs, "Secret") == []
    (svc,) = kind(docs, "Service")
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]


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
    the readiness probe reads it."""
    assert platform.machine() == "x86_64", "the server image test runs amd64 images"
    assert os.path.exists(os.path.join(DIST, "davit-linux-amd64")), \
        f"no {DIST}/davit-linux-amd64: run `make release`"
    image = "davit/test-helm-server-" + uuid.uuid4().hex[:8]
    name = image.replace("/", "-")
    version = subprocess.run([os.path.join(DIST, "davit-linux-amd64"), "--version"], check=True,
                             capture_output=True, text=True).stdout.split()[-1]
    volume = f"{name}-data"
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
                                                  f"publicURL=http://127.0.0.1:{port}"])
            server = containers(pod_spec(docs))["server"]
            mounts = []
            for m in server["volumeMounts"]:
                mounts += ["-v", f"{volume}:{m['mountPath']}"] if m["name"] == "data" else \
                    ["--tmpfs", m["mountPath"]]
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
        assert "admin API token (shown once, keep it): dva_" in logs.stdout
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
        subprocess.run(["docker", "image", "rm", "-f", f"{image}:latest", f"{image}:{version}",
                        f"{image}:{version}-amd64"], capture_output=True)

