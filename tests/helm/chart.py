"""The Kubernetes chart of deploy/helm/davit-launcher as the tests see it:
helm and the offline schema validators from scripts/install-k8s-tools'
cache, rendering a value set to its manifests, and finding the pod inside."""
import json
import os
import re
import subprocess

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.environ.get("DAVIT_SOURCE_DIR") or os.path.join(HERE, "..", "..")
CHART = os.path.join(SOURCE, "deploy", "helm", "davit-launcher")
SERVER_CHART = os.path.join(SOURCE, "deploy", "helm", "davit-server")
VALUES = os.path.join(HERE, "values")
CACHE = os.environ.get("DAVIT_HELM_CACHE") or os.path.expanduser("~/.cache/davit-helm")
HELM = os.path.join(CACHE, "bin", "helm")
MODULES = os.path.join(CACHE, "node", "node_modules")
RELEASE = "ci"
NAMESPACE = "davit"


def need_tools():
    # A failure, not a skip: make test installs them (make k8s-tools), and a skip
    # would hide the chart going untested.
    assert os.access(HELM, os.X_OK) and os.path.isdir(MODULES), \
        f"no helm or validators in {CACHE}: run scripts/install-k8s-tools (make k8s-tools)"


def helm(*args):
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HELM_CACHE_HOME": os.path.join(CACHE, "helm-cache"),
                               "HELM_CONFIG_HOME": os.path.join(CACHE, "helm-config"),
                               "HELM_DATA_HOME": os.path.join(CACHE, "helm-data")})


def value_args(values=(), sets=()):
    args = []
    for v in values:
        args += ["-f", v if os.path.isabs(v) else os.path.join(VALUES, v)]
    for s in sets:
        args += ["--set", s]
    return args


def template(values=(), sets=(), chart=CHART):
    """helm template's result: (returncode, stdout, stderr)."""
    p = helm("template", RELEASE, chart, "--namespace", NAMESPACE, *value_args(values, sets))
    return p.returncode, p.stdout, p.stderr


def render(values=(), sets=(), chart=CHART):
    """The manifests of a value set, as a list of dicts (helm must succeed)."""
    rc, out, err = template(values, sets, chart)
    assert rc == 0, err
    return [d for d in yaml.safe_load_all(out) if d]


def validate(docs):
    """Runs validate.mjs over the manifests: (ok, its report)."""
    p = subprocess.run(["node", os.path.join(HERE, "validate.mjs")], input=json.dumps(docs),
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "DAVIT_K8S_MODULES": MODULES})
    return p.returncode == 0, p.stdout + p.stderr


def kind(docs, k):
    return [d for d in docs if d["kind"] == k]


def workload(docs):
    (w,) = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    return w


def pod_spec(docs):
    return workload(docs)["spec"]["template"]["spec"]


def containers(spec):
    """{name: container} over containers and native sidecars (init containers
    with restartPolicy Always)."""
    out = {c["name"]: c for c in spec["containers"]}
    for c in spec.get("initContainers", []):
        out[c["name"]] = c
    return out


def env(container):
    return {e["name"]: e for e in container.get("env", [])}


def seconds(duration):
    """A launcher duration as rendered by the chart ("4200s") in seconds."""
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, f"{duration!r} is not a number of seconds"
    return int(m.group(1))
