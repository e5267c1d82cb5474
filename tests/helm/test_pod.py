"""The chart's pod run for real with Docker, as a kubelet would run it: the
pod spec that helm renders from tests/helm/values/pod.yaml is started
container by container, with the same commands, environment (secretKeyRef
read from the rendered Secret, the downward API's fields filled in), volumes
(each emptyDir a Docker volume) and security context, in one network and one
process namespace (a "pause" container's, as shareProcessNamespace asks):

- the launcher on the static launcher image (scripts/build-launcher-image from
  the release binaries of dist/, which `make test` builds first);
- the DinD container, whose Engine answers on the unix socket of the shared
  emptyDir: the chart's own image, davit/dind (scripts/build-dind-image, which
  `make dind-image` runs first; here it finds the image present), started by
  the rendered command and gated by the rendered `docker info` startup
  probe. "privileged" is all capabilities but CAP_SYS_RESOURCE,
  which this machine's own bounding set lacks (so --privileged itself fails
  here), with seccomp, AppArmor and the /proc and /sys masks off and the
  cgroup tree writable.

A run goes through; then the pod is deleted mid-run the kubelet's way (the
DinD container's preStop and the launcher's SIGTERM at once; the DinD
container's SIGTERM when its hook returns), and the run still finishes and
is reported before the launcher exits, while the Engine waits for it. KEDA's
metrics-api read (the rendered ScaledObject's URL and valueLocation, with a
bearer token) follows the queue as runs queue and drain.

Every container, volume and image tag it makes has its own name and is
removed, also when a test fails: the Engine is shared."""
import base64
import datetime
import glob
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid

import pytest

import chart
from chart import containers, env, kind, pod_spec

sys.path.insert(0, os.path.join(chart.SOURCE, "tests", "e2e"))
from davit_e2e import IMAGE, Server, make_pool, wait_for  # noqa: E402

DIST = os.environ.get("DAVIT_RELEASE_DIR") or os.path.join(chart.SOURCE, "dist")
POOL = "web"
DIND_IMAGE = os.environ.get("DIND_IMAGE", "davit/dind")
PRIVILEGED = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
              "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
              "--security-opt", "systempaths=unconfined", "-v", "/sys/fs/cgroup:/sys/fs/cgroup"]


def docker(*args, check=True, **kw):
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])}…: exit {p.returncode}: {p.stderr}")
    return p


class Pod:
    """The containers, volumes and names of one pod on the shared Engine."""

    def __init__(self, docs, prefix, launcher_image):
        self.docs = docs
        self.spec = pod_spec(docs)
        self.prefix = prefix
        self.name = f"{chart.RELEASE}-davit-launcher-{prefix[-8:]}"
        self.launcher_image = launcher_image
        self.made = []  # container names, in start order
        self.volumes = []

    def cname(self, c):
        return f"{self.prefix}-{c}"

    def start_pause(self):
        # The network and process namespaces of the pod. Host network: the
        # launcher reaches the test's server on loopback.
        self.made.append(self.cname("pause"))
        docker("run", "-d", "--name", self.cname("pause"), "--network", "host",
               "--entrypoint", "/bin/sleep", IMAGE, "3600")
        for v in self.spec["volumes"]:
            assert set(v) == {"name", "emptyDir"}, f"volume {v['name']} is not an emptyDir"
            vol = f"{self.prefix}-{v['name']}"
            docker("volume", "create", vol)
            self.volumes.append(vol)

    def env_args(self, c):
        secrets = {s["metadata"]["name"]: s["data"] for s in kind(self.docs, "Secret")}
        fields = {"metadata.name": self.name, "metadata.namespace": chart.NAMESPACE,
                  "spec.nodeName": socket.gethostname()}
        args = []
        for name, e in env(c).items():
            if "value" in e:
                value = e["value"]
            elif "secretKeyRef" in e["valueFrom"]:
                ref = e["valueFrom"]["secretKeyRef"]
                value = base64.b64decode(secrets[ref["name"]][ref["key"]]).decode()
            else:
                value = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
            args += ["-e", f"{name}={value}"]
        return args

    def start(self, cname):
        c = containers(self.spec)[cname]
        args = ["run", "-d", "--name", self.cname(cname),
                "--network", f"container:{self.cname('pause')}",
                "--pid", f"container:{self.cname('pause')}"]
        for m in c["volumeMounts"]:
            args += ["-v", f"{self.prefix}-{m['name']}:{m['mountPath']}" +
                     (":ro" if m.get("readOnly") else "")]
        args += self.env_args(c)
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            args += PRIVILEGED
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        for cap in sc.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", cap]
        if cname == "dind":
            assert c["image"] == f"{DIND_IMAGE}:latest"
        else:
            assert c["image"] == self.launcher_image
        if "command" in c:
            args += ["--entrypoint", c["command"][0], c["image"], *c["command"][1:]]
        else:
            args += [c["image"]]
        self.made.append(self.cname(cname))
        docker(*args)

    def exec(self, cname, cmd, **kw):
        return docker("exec", self.cname(cname), *cmd, check=False, **kw)

    def startup_probe(self, cname):
        """Runs the startup probe until it passes, within its own limit."""
        probe = containers(self.spec)[cname]["startupProbe"]
        limit = probe["periodSeconds"] * probe["failureThreshold"]
        wait_for(lambda: self.exec(cname, probe["exec"]["command"]).returncode == 0,
                 limit=limit, what=f"{cname}'s startup probe", step=probe["periodSeconds"] / 4)

    def state(self, cname):
        return json.loads(docker("inspect", "-f", "{{json .State}}", self.cname(cname)).stdout)

    def remove(self):
        for c in reversed(self.made):
            docker("rm", "-f", "-v", c, check=False)
        for v in self.volumes:
            docker("volume", "rm", "-f", v, check=False)
        # The inner Engine's cgroup parent (--cgroup-parent=/PREFIX), in each
        # hierarchy of cgroup v1 or in v2's one tree: empty once its Engine stopped.
        for top in glob.glob("/sys/fs/cgroup/*/" + self.prefix) + glob.glob(
                "/sys/fs/cgroup/" + self.prefix):
            for d, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


@pytest.fixture(scope="module")
def dind_image():
    """The chart's DinD image, built (or found present) by scripts/build-dind-image."""
    p = subprocess.run([os.path.join(chart.SOURCE, "scripts", "build-dind-image")],
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout + p.stderr
    return f"{DIND_IMAGE}:latest"


@pytest.fixture(scope="module")
def launcher_image():
    """The launcher image built from dist/ by scripts/build-launcher-image,
    under a name of its own, amd64 only."""
    launcher = os.path.join(DIST, "davit-launcher-linux-amd64")
    assert platform.machine() == "x86_64", "the pod test runs amd64 images"
    assert os.path.exists(launcher), f"no {launcher}: run `make release`"
    version = subprocess.run([launcher, "--version"], check=True, capture_output=True,
                             text=True).stdout.split()[-1]
    image = "davit/test-helm-launcher-" + uuid.uuid4().hex[:8]
    tags = [f"{image}:{version}-amd64", f"{image}:{version}", f"{image}:latest"]
    try:
        p = subprocess.run([os.path.join(chart.SOURCE, "scripts", "build-launcher-image"), DIST],
                           capture_output=True, text=True,
                           env={**os.environ, "LAUNCHER_IMAGE": image,
                                "LAUNCHER_IMAGE_ARCHES": "amd64"})
        assert p.returncode == 0, p.stderr
        yield image, version
    finally:
        docker("image", "rm", "-f", *tags, check=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    chart.need_tools()
    tmp = str(tmp_path_factory.mktemp("helm-pod"))
    srv = Server(tmp)
    try:
        yield srv, tmp
    finally:
        srv.stop()


def iso(s):
    """A timestamp of the API or of docker inspect (nanoseconds cut to micro)."""
    date, _, frac = s.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(f"{date}.{(frac + '000000')[:6]}").replace(
        tzinfo=datetime.timezone.utc)


def keda_read(srv, scaled_object):
    """What KEDA's metrics-api scaler reads: GET the trigger's url with the
    bearer token, and the number at valueLocation (a GJSON path; here plain
    dotted keys) of the JSON answer."""
    (trigger,) = scaled_object["spec"]["triggers"]
    meta = trigger["metadata"]
    assert (trigger["type"], meta["format"], meta["authMode"]) == ("metrics-api", "json", "bearer")
    req = urllib.request.Request(meta["url"], headers={"Authorization": f"Bearer {srv.token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        v = json.load(resp)
    for part in meta["valueLocation"].split("."):
        v = v[part]
    assert isinstance(v, int)
    return v


def test_pod_runs_a_run_and_drains_on_delete(server, launcher_image, dind_image):
    srv, tmp = server
    image, version = launcher_image
    token, key = make_pool(srv, tmp, POOL)
    with open(key, "rb") as f:
        key_b64 = base64.b64encode(f.read()).decode()
    prefix = "davit-helmpod-" + uuid.uuid4().hex[:8]
    docs = chart.render(["pod.yaml"], [
        f"server={srv.url}", f"pool={POOL}", f"image.repository={image}", f"image.tag={version}",
        f"dind.image.repository={DIND_IMAGE}", "dind.image.tag=latest",
        f"credentials.token={token}", f"credentials.poolPrivateKey={key_b64}",
        # The inner Engine's containers in a cgroup of their own, not beside the host's.
        f"dind.extraArgs={{--bridge=none,--iptables=false,--ip6tables=false,--cgroup-parent=/{prefix}}}",
    ])
    (scaled,) = kind(docs, "ScaledObject")
    assert scaled["spec"]["triggers"][0]["metadata"]["valueLocation"] == "demand"
    pod = Pod(docs, prefix, f"{image}:{version}")
    try:
        # Queued before any launcher: KEDA sees them.
        first = [srv.submit(POOL, f"p=echo run {i} in the pod") for i in (1, 2)]
        assert keda_read(srv, scaled) == 2

        pod.start_pause()
        pod.start("dind")
        pod.startup_probe("dind")
        # The run image, into the pod's own Engine (a pod would pull it).
        tar = os.path.join(tmp, "runner-image.tar")
        docker("save", "-o", tar, IMAGE)
        with open(tar, "rb") as f:
            load = subprocess.run(["docker", "exec", "-i", pod.cname("dind"), "docker", "load", "-q"],
                                  stdin=f, capture_output=True, timeout=120)
        assert load.returncode == 0, load.stderr
        pod.start("launcher")

        # Runs go through, and the demand KEDA reads (queued plus going runs) falls to 0.
        seen = []
        wait_for(lambda: seen.append(keda_read(srv, scaled)) or seen[-1] == 0, limit=120,
                 what="the queue to drain", step=0.2)
        assert seen == sorted(seen, reverse=True), seen
        for rid in first:
            assert srv.wait_ended(rid)["state"] == "finished"
            assert b"in the pod" in srv.logs(rid)
        (worker,) = srv.workers(POOL)
        meta = worker["metadata"]
        assert (meta["POD_NAME"], meta["POD_NAMESPACE"]) == (pod.name, chart.NAMESPACE)
        assert meta["NODE_NAME"] == socket.gethostname()

        # A slow run, and one queued behind it (concurrency 1).
        slow = srv.submit(POOL, "p=echo slow started; sleep 6; echo slow finished")
        wait_for(lambda: b"slow started" in srv.logs(slow), limit=60, what="the slow run to start")
        queued = srv.submit(POOL, "p=echo never here")
        # The demand counts both: the pod's slot is still needed while the slow run goes on.
        assert keda_read(srv, scaled) == 2

        # The pod is deleted: the kubelet runs the DinD container's preStop
        # and sends the launcher (which has no hook) its SIGTERM at once.
        grace = pod.spec["terminationGracePeriodSeconds"]
        prestop = containers(pod.spec)["dind"]["lifecycle"]["preStop"]["exec"]["command"]
        hook = {}
        t = threading.Thread(target=lambda: hook.update(
            p=pod.exec("dind", prestop), launcher=pod.state("launcher")))
        t.start()
        docker("kill", "-s", "TERM", pod.cname("launcher"))
        # Mid-run: the slow run had not ended when the SIGTERM was sent.
        assert srv.run(slow)["state"] == "running"
        t.join(timeout=grace)
        assert not t.is_alive(), "the preStop hook outlived the grace period"
        assert hook["p"].returncode == 0, hook["p"].stderr
        # The hook returned only once the launcher had exited, drained: exit 0.
        st = hook["launcher"]
        assert not st["Running"] and st["ExitCode"] == 0, st
        # The slow run finished (its container ran on to the end in the Engine
        # the hook kept up) and was reported before the launcher exited.
        run = srv.run(slow)
        assert run["state"] == "finished", run
        assert iso(run["ended_at"]) < iso(st["FinishedAt"]), (run["ended_at"], st["FinishedAt"])
        assert b"slow finished" in srv.logs(slow)
        # Then the kubelet stops the Engine.
        docker("kill", "-s", "TERM", pod.cname("dind"))
        wait_for(lambda: not pod.state("dind")["Running"], limit=60, what="dockerd to stop")
        # A draining launcher took no new run: KEDA still sees it queued (and the slow run,
        # ended, no longer counts).
        assert srv.run(queued)["state"] == "queued"
        assert keda_read(srv, scaled) == 1
    finally:
        logs = docker("logs", "--tail", "30", pod.cname("launcher"), check=False)
        print(logs.stdout, logs.stderr)
        pod.remove()
