"""deploy/helm/davit-launcher, rendered offline: helm lint --strict and helm
template for the default values and the value sets of tests/helm/values, each
manifest checked against the Kubernetes (or KEDA, prometheus-operator) schema
of its kind, and what the manifests must hold: DinD privileged and sharing
only its socket directory (and the state directory the Engine bind-mounts
from), a grace period covering the run timeout, the preStop that holds the
Engine until the launcher has drained, no plaintext secret with an existing
Secret, every launcher option reachable, and values.schema.json refusing bad
values. helm and the validators come from scripts/install-k8s-tools."""
import base64
import copy
import json
import os
import re

import pytest

import chart
from chart import containers, env, kind, pod_spec, render, workload

VALUE_SETS = ["default.yaml", "existing-secret.yaml", "keda.yaml", "statefulset-pvc.yaml",
              "full.yaml"]


@pytest.fixture(scope="module", autouse=True)
def tools():
    chart.need_tools()


@pytest.fixture(scope="module")
def rendered():
    return {v: render([v]) for v in VALUE_SETS}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_lint_strict(values):
    p = chart.helm("lint", "--strict", chart.CHART, *chart.value_args([values]))
    assert p.returncode == 0, p.stdout + p.stderr


# Manifests made invalid on purpose, each with what the validator must say.
BREAKAGES = [
    (lambda d: pod_spec(d)["containers"][0].update(ports=[{"containerPort": "x"}]),
     "containerPort must be integer"),
    (lambda d: workload(d)["spec"].pop("selector"), "must have required property selector"),
    (lambda d: pod_spec(d)["containers"][0].update(livenessProbes={}), "'\"livenessProbes\"'"),
    (lambda d: kind(d, "ServiceMonitor")[0]["spec"].update(endpoint=[]), "'\"endpoint\"'"),
]


@pytest.fixture(scope="module")
def validation(rendered):
    """One run of the validator (its TypeScript pass takes seconds) over every
    rendered manifest, then the broken copies of full.yaml's: (the valid
    ones, the broken ones as (index, what), the report)."""
    docs = [d for v in VALUE_SETS for d in rendered[v]]
    valid = len(docs)
    broken = []
    for break_it, what in BREAKAGES:
        copies = copy.deepcopy(rendered["full.yaml"])
        before = [json.dumps(d, sort_keys=True) for d in copies]
        break_it(copies)
        for i, d in enumerate(copies):
            if json.dumps(d, sort_keys=True) != before[i]:
                broken.append((len(docs) + i, what))
        docs += copies
    ok, report = chart.validate(docs)
    return docs[:valid], broken, report


def invalid_lines(report, index):
    return [line for line in report.splitlines() if line.startswith(f"invalid #{index} ")]


def test_every_manifest_validates_against_its_kinds_schema(validation):
    docs, _, report = validation
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "Secret", "Service", "ServiceAccount",
            "PodDisruptionBudget", "ScaledObject", "TriggerAuthentication",
            "ServiceMonitor"} <= kinds
    bad = [line for i in range(len(docs)) for line in invalid_lines(report, i)]
    assert bad == [], report


def test_the_validator_catches_bad_manifests(validation):
    """The schema check is not vacuous: a wrong type, a missing required field
    and fields the schemas do not know (Kubernetes' and a CRD's) are each
    caught, and only in the manifest that has them."""
    _, broken, report = validation
    assert len(broken) == len(BREAKAGES)
    for index, what in broken:
        assert any(what in line for line in invalid_lines(report, index)), report
    assert f"{len(broken)} of " in report.splitlines()[-1], report


@pytest.mark.parametrize("values", VALUE_SETS)
def test_dind_is_privileged_and_shares_only_its_socket_directory(rendered, values):
    docs = rendered[values]
    spec = pod_spec(docs)
    c = containers(spec)
    assert set(c) == {"launcher", "dind"}
    dind, launcher = c["dind"], c["launcher"]
    assert dind["securityContext"] == {"privileged": True}
    assert not launcher.get("securityContext", {}).get("privileged")
    # The Engine answers on a unix socket in an emptyDir, never on TCP.
    assert "ports" not in dind
    assert not any(a.startswith(("--host=tcp", "-H", "--tls")) for a in dind["command"])
    socket_dir = [m for m in dind["volumeMounts"] if m["name"] == "dind-socket"][0]["mountPath"]
    assert f"--host=unix://{socket_dir}/docker.sock" in dind["command"]
    assert env(launcher)["DOCKER_HOST"]["value"] == f"unix://{socket_dir}/docker.sock"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dind-socket"] == {"name": "dind-socket", "emptyDir": {}}
    assert not any("hostPath" in v for v in volumes.values())
    # Shared: the socket's directory, and the state directory at the same path
    # (the Engine bind-mounts run directories by their path). Nothing else:
    # not the Engine's storage, not a secret, not an extra mount.
    lm = {m["name"]: m["mountPath"] for m in launcher["volumeMounts"]}
    dm = {m["name"]: m["mountPath"] for m in dind["volumeMounts"]}
    assert set(lm) & set(dm) == {"dind-socket", "launcher-state"}
    assert lm["dind-socket"] == dm["dind-socket"] == socket_dir
    assert lm["launcher-state"] == dm["launcher-state"] == env(launcher)["DAVIT_STATE_DIR"]["value"]
    assert volumes["launcher-state"] == {"name": "launcher-state", "emptyDir": {}}
    assert dm["docker-storage"] == "/var/lib/docker"
    # The startup probe is `docker info` against the same socket.
    assert dind["startupProbe"]["exec"]["command"] == ["docker", "info"]
    assert env(dind)["DOCKER_HOST"]["value"] == f"unix://{socket_dir}/docker.sock"


@pytest.mark.parametrize("values", VALUE_SETS)
def test_grace_period_covers_the_pull_and_the_run_timeout(rendered, values):
    spec = pod_spec(rendered[values])
    e = env(containers(spec)["launcher"])
    run_timeout = chart.seconds(e["DAVIT_LAUNCHER_RUN_TIMEOUT"]["value"])
    pull_timeout = chart.seconds(e["DAVIT_DOCKER_PULL_TIMEOUT"]["value"])
    assert run_timeout > 0 and pull_timeout > 0
    # The pull is outside the run timeout, which counts from the run container's start.
    assert spec["terminationGracePeriodSeconds"] >= run_timeout + pull_timeout + 60


def test_grace_period_default_is_run_timeout_plus_pull_timeout_plus_margin():
    spec = pod_spec(render(["default.yaml"]))
    assert spec["terminationGracePeriodSeconds"] == 4200 + 900 + 120
    spec = pod_spec(render(["default.yaml"], ["launcher.runTimeoutSeconds=600",
                                              "launcher.dockerPullTimeoutSeconds=300",
                                              "drainMarginSeconds=90"]))
    assert spec["terminationGracePeriodSeconds"] == 990
    rc, _, err = chart.template(["default.yaml"], ["launcher.runTimeoutSeconds=0"])
    assert rc != 0 and "set terminationGracePeriodSeconds" in err


def test_an_explicit_grace_period_below_the_run_timeout_is_refused():
    rc, _, err = chart.template(["default.yaml"], ["launcher.runTimeoutSeconds=600",
                                                   "terminationGracePeriodSeconds=599"])
    assert rc != 0 and "terminationGracePeriodSeconds 599 is below launcher.runTimeoutSeconds 600" \
        in err, err
    spec = pod_spec(render(["default.yaml"], ["launcher.runTimeoutSeconds=600",
                                              "terminationGracePeriodSeconds=600"]))
    assert spec["terminationGracePeriodSeconds"] == 600
    # Without a run timeout any explicit grace period goes.
    spec = pod_spec(render(["default.yaml"], ["launcher.runTimeoutSeconds=0",
                                              "terminationGracePeriodSeconds=30"]))
    assert spec["terminationGracePeriodSeconds"] == 30


@pytest.mark.parametrize("values", VALUE_SETS)
def test_prestop_holds_the_engine_until_the_launcher_has_drained(rendered, values):
    spec = pod_spec(rendered[values])
    c = containers(spec)
    # The kubelet's SIGTERM to the launcher is its drain: one signal only, so
    # the launcher has no hook (a second SIGTERM would cancel its runs).
    assert "lifecycle" not in c["launcher"]
    assert spec["shareProcessNamespace"] is True
    cmd = c["dind"]["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[:2] == ["/bin/sh", "-c"]
    assert "/proc/[0-9]*/comm" in cmd[2] and "davit-launcher" in cmd[2]
    native = any(x["name"] == "dind" for x in spec.get("initContainers", []))
    assert native == (values not in ("statefulset-pvc.yaml", "full.yaml"))
    if native:
        assert spec["initContainers"][0]["restartPolicy"] == "Always"


def test_existing_secret_renders_no_plaintext_secret():
    token = "davit-test-token-must-not-leak"
    key = base64.b64encode(b"-----BEGIN PRIVATE KEY-----\nmust-not-leak\n").decode()
    for values in ["existing-secret.yaml", "keda.yaml"]:
        rc, out, err = chart.template([values])
        assert rc == 0, err
        docs = render([values])
        assert kind(docs, "Secret") == []
        assert not any("data" in d or "stringData" in d for d in docs)
        e = env(containers(pod_spec(docs))["launcher"])
        for var, k in [("DAVIT_TOKEN", "token"), ("DAVIT_POOL_PRIVATE_KEY", "key")]:
            assert "value" not in e[var]
            ref = e[var]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "davit-pool-web"
            if values == "existing-secret.yaml":
                assert ref["key"] == k
    # Values for a chart-made Secret next to an existing one: refused, so no
    # value can end up rendered anywhere.
    rc, out, err = chart.template(["existing-secret.yaml"], [f"credentials.token={token}",
                                                             f"credentials.poolPrivateKey={key}"])
    assert rc != 0 and "not both" in err
    assert token not in out + err and key not in out + err


def test_values_made_secret_holds_the_credentials():
    docs = render(["default.yaml"])
    (secret,) = kind(docs, "Secret")
    assert base64.b64decode(secret["data"]["DAVIT_TOKEN"]) == b"dGVzdC10b2tlbi1ub3QtcmVhbA"
    # A new credential rolls the pods.
    w = workload(docs)
    assert "checksum/credentials" in w["spec"]["template"]["metadata"]["annotations"]


def test_pod_identity_through_the_downward_api(rendered):
    e = env(containers(pod_spec(rendered["default.yaml"]))["launcher"])
    assert e["DAVIT_METADATA_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert e["DAVIT_METADATA_POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.namespace"
    assert e["DAVIT_METADATA_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_every_launcher_option_is_a_value(rendered):
    """Each daemon option of docs/configuration.md's table is set by full.yaml
    (a new option fails here until the chart exposes it)."""
    with open(os.path.join(chart.SOURCE, "docs", "configuration.md")) as f:
        text = f.read()
    table = text[text.index("## Options"):text.index("\nNotes:")]
    options = set(re.findall(r"^\| `(DAVIT_[A-Z_]+?)(?:_?<key>)?`", table, re.M))
    # Not for a pod: the worker binary (the daemon takes the release the
    # server names) and exec's pool label.
    options -= {"DAVIT_WORKER_BINARY", "DAVIT_POOL_ID"}
    assert "DAVIT_LAUNCHER_CONCURRENCY" in options and "DAVIT_MASK_ENVS" in options
    e = env(containers(pod_spec(rendered["full.yaml"]))["launcher"])
    # ephemeral needs concurrency 1: on, in a render of its own.
    e1 = env(containers(pod_spec(render(["default.yaml"], ["launcher.ephemeral=true"])))["launcher"])
    assert e1["DAVIT_EPHEMERAL"]["value"] == "1"
    names = {n if not n.startswith("DAVIT_METADATA_") else "DAVIT_METADATA" for n in [*e, *e1]}
    assert options - names == set()
    v = {n: x.get("value") for n, x in e.items()}
    assert v["DAVIT_LAUNCHER_CONCURRENCY"] == "4"
    assert v["DAVIT_WORKER_NETWORK"] == "bridge" and v["DAVIT_WORKER_RUNTIME"] == "runsc"
    assert v["DAVIT_WHITELIST_ENVS"] == "HTTP_PROXY,NO_PROXY" and v["DAVIT_MASK_ENVS"] == "NPM_TOKEN"
    assert v["DAVIT_WORKER_EXTRA_MOUNTS"] == "/mnt/cache:/cache,/mnt/tools:/opt/tools:ro"
    assert v["DAVIT_WORKER_CAP_DROP"] == "NET_RAW,MKNOD"
    assert v["DAVIT_WORKER_NO_NEW_PRIVILEGES"] == "0" and v["DAVIT_WORKER_READ_ONLY_ROOTFS"] == "1"
    assert v["DAVIT_CA_FILE"] == "/etc/davit/ca/ca.pem"
    assert v["DAVIT_METADATA_team"] == "platform"
    assert v["DAVIT_ALLOWED_IMAGES"] == "registry.example.com/*,docker.io/library/busybox:*"
    assert v["DAVIT_DEFAULT_RUNNER_IMAGE"] == "registry.example.com/runner:1"
    assert v["DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK"] == "/etc/davit/hook/admit"
    assert v["DAVIT_LAUNCHER_RUN_INITIALIZATION_HOOK_TIMEOUT"] == "20s"
    assert v["DAVIT_SUBMITTER_KEYS"] == "/etc/davit/submitters/submitters.pem"
    assert v["DAVIT_METRICS_LISTEN_ANY"] == "1"
    assert v["NO_PROXY"] == ".cluster.local" and "valueFrom" in e["NPM_TOKEN"]
    # Extra mounts reach the Engine (their paths are the Engine's), not the launcher.
    c = containers(pod_spec(rendered["full.yaml"]))
    dm = {m["mountPath"]: m for m in c["dind"]["volumeMounts"]}
    assert dm["/mnt/tools"]["readOnly"] is True and "/mnt/cache" in dm
    assert not any(m["mountPath"].startswith("/mnt/") for m in c["launcher"]["volumeMounts"])


def test_do_not_disrupt_example_puts_its_annotations_on_the_pod():
    example = os.path.join(chart.CHART, "examples", "do-not-disrupt.yaml")
    p = chart.helm("lint", "--strict", chart.CHART, *chart.value_args(["default.yaml", example]))
    assert p.returncode == 0, p.stdout + p.stderr
    docs = render(["default.yaml", example])
    (workload,) = kind(docs, "Deployment")
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert annotations["karpenter.sh/do-not-disrupt"] == "true"
    # Beside the chart's own: the credentials' checksum still rolls the pods.
    assert "checksum/credentials" in annotations


def test_metrics_probes_and_service_monitor(rendered):
    docs = rendered["full.yaml"]
    launcher = containers(pod_spec(docs))["launcher"]
    assert env(launcher)["DAVIT_METRICS_LISTEN"]["value"] == "0.0.0.0:9464"
    # /healthz ("registered and polling") is false through a server outage: readiness only. A
    # liveness probe on it would restart every launcher (draining ones too) and kill their runs.
    assert launcher["livenessProbe"]["httpGet"]["path"] == "/metrics"
    assert launcher["readinessProbe"]["httpGet"]["path"] == "/healthz"
    (sm,) = kind(docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    (svc,) = kind(docs, "Service")
    assert svc["spec"]["ports"][0]["name"] == "metrics"
    # Off by default: no probe a launcher without /healthz would fail.
    default = containers(pod_spec(rendered["default.yaml"]))["launcher"]
    assert "livenessProbe" not in default and "readinessProbe" not in default


def test_keda_scaled_object_reads_the_demand(rendered):
    docs = rendered["keda.yaml"]
    (so,) = kind(docs, "ScaledObject")
    (ta,) = kind(docs, "TriggerAuthentication")
    w = workload(docs)
    assert "replicas" not in w["spec"]
    assert so["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": w["metadata"]["name"]}
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (1, 20)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "metrics-api"
    assert trigger["metadata"] == {
        "url": "https://davit.example.com:8400/api/v1/pools/web/scaling",
        "format": "json", "valueLocation": "demand", "targetValue": "2", "authMode": "bearer"}
    assert trigger["authenticationRef"]["name"] == ta["metadata"]["name"]
    refs = {r["parameter"]: r for r in ta["spec"]["secretTargetRef"]}
    assert refs["token"]["name"] == "davit-viewer-token" and refs["ca"]["name"] == "davit-ca"
    assert so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]


def test_statefulset_keeps_docker_storage_on_a_pvc(rendered):
    docs = rendered["statefulset-pvc.yaml"]
    w = workload(docs)
    assert w["kind"] == "StatefulSet"
    (claim,) = w["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "docker-storage"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert "docker-storage" not in {v["name"] for v in pod_spec(docs)["volumes"]}
    (svc,) = kind(docs, "Service")
    assert w["spec"]["serviceName"] == svc["metadata"]["name"]
    assert w["spec"]["podManagementPolicy"] == "Parallel"


def test_notes_tell_how_to_watch_the_pool():
    p = chart.helm("install", "--dry-run=client", chart.RELEASE, chart.CHART,
                   *chart.value_args(["keda.yaml"]))
    assert p.returncode == 0, p.stderr
    notes = p.stdout[p.stdout.index("NOTES:"):]
    assert "davit worker list --pool web" in notes
    assert "https://davit.example.com:8400/api/v1/pools/web/scaling" in notes


@pytest.mark.parametrize("sets,error", [
    (["launcher.concurrency=0"], "/launcher/concurrency"),
    (["launcher.concurrency=65"], "/launcher/concurrency"),
    (["kind=DaemonSet"], "/kind"),
    (["dockerStorage.type=hostPath"], "/dockerStorage/type"),
    (["launcher.concurency=2"], "'concurency' not allowed"),
    (["dind.mode=sidecar"], "/dind/mode"),
    (["launcher.logFormat=xml"], "/launcher/logFormat"),
    (["launcher.worker.extraMounts[0].name=x", "launcher.worker.extraMounts[0].path=/a\\,b",
      "launcher.worker.extraMounts[0].containerPath=/b", "launcher.worker.extraMounts[0].volume.emptyDir=null"],
     "/launcher/worker/extraMounts/0/path"),
    (["credentials.poolPrivateKey=not base64!"], "/credentials/poolPrivateKey"),
    (["terminationGracePeriodSeconds=-1"], "/terminationGracePeriodSeconds"),
    (["keda.maxReplicaCount=0"], "/keda/maxReplicaCount"),
    (["launcher.runTimeoutSeconds=1h"], "/launcher/runTimeoutSeconds"),
    (["dockerStorage.size=lots"], "/dockerStorage/size"),
    (["server=davit.example.com"], "/server"),
])
def test_schema_refuses_bad_values(sets, error):
    rc, _, err = chart.template(["default.yaml"], sets)
    assert rc != 0
    assert "values don't meet the specifications of the schema" in err and error in err, err


@pytest.mark.parametrize("values,sets,error", [
    ([], [], "credentials: set existingSecret, or both token and poolPrivateKey"),
    (["default.yaml"], ["dockerStorage.type=pvc"], "needs kind: StatefulSet"),
    (["existing-secret.yaml"], ["keda.enabled=true"], "keda.enabled needs server and pool"),
    (["keda.yaml"], ["keda.apiTokenSecret.name="], "keda.apiTokenSecret.name"),
    (["default.yaml"], ["serviceMonitor.enabled=true"], "needs launcher.metrics.enabled"),
    (["default.yaml"], ["launcher.ephemeral=true", "launcher.concurrency=2"],
     "launcher.ephemeral needs launcher.concurrency 1"),
])
def test_inconsistent_values_fail_with_a_clear_message(values, sets, error):
    rc, _, err = chart.template(values, sets)
    assert rc != 0 and error in err, err
