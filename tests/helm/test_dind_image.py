"""The chart's DinD image itself (scripts/build-dind-image: Debian's docker.io
FROM scratch on a debootstrap rootfs), run as the chart's `dind` container:
the rendered command, environment, startup probe and socket directory, with
the privileges test_pod gives ("privileged" but CAP_SYS_RESOURCE, which this
machine's bounding set lacks). The Engine inside must answer `docker info` on
the socket of the shared directory to another container that mounts only that
directory, as the launcher does, and run a container.

`make dind-image` (a step of `make test`) builds the image first; here the
script finds it already present (it is cached by recipe). Every container,
volume and cgroup has its own name and is removed, also when a test fails."""
import json
import subprocess
import uuid

import chart
from chart import containers, pod_spec
from test_pod import DIND_IMAGE as IMAGE, IMAGE as RUNNER_IMAGE, PRIVILEGED, Pod, docker, wait_for
from test_pod import dind_image  # noqa: F401 (the fixture: the image built, or found present)


def inspect(image):
    (info,) = json.loads(docker("image", "inspect", image).stdout)
    return info


def test_image_contents(dind_image):
    image = dind_image
    info = inspect(image)
    cfg = info["Config"]
    assert info["Architecture"] == "amd64"
    # FROM scratch: one layer, the debootstrap rootfs; the chart gives the command.
    assert len(info["RootFS"]["Layers"]) == 1
    assert not cfg.get("Entrypoint")
    assert "/var/lib/docker" in cfg["Volumes"]
    labels = cfg["Labels"]
    assert labels["org.davit.recipe"] and labels["org.davit.rootfs"]
    assert labels["org.opencontainers.image.title"] == "davit-dind"
    packages = docker("run", "--rm", "--entrypoint", "cat", image,
                      "/usr/share/davit/packages.txt").stdout.split()
    names = {p.split("=")[0] for p in packages}
    assert {"docker.io", "containerd", "runc", "iptables", "ca-certificates"} <= names
    docker_io = next(p.split("=")[1] for p in packages if p.startswith("docker.io="))
    assert docker_io.split("+")[0] in labels["org.opencontainers.image.description"]
    out = docker("run", "--rm", "--entrypoint", "/bin/sh", image, "-c",
                 "dockerd --version && docker --version && containerd --version && runc --version"
                 " && iptables --version && command -v xargs").stdout
    assert docker_io.split("+")[0] in out, out


def test_engine_answers_on_the_shared_socket(dind_image):
    image = dind_image
    prefix = "davit-dindimg-" + uuid.uuid4().hex[:8]
    docs = chart.render(["pod.yaml"], [
        "server=https://davit.invalid:8400", "pool=web", "credentials.token=t",
        "credentials.poolPrivateKey=aw==", f"dind.image.repository={IMAGE}", "dind.image.tag=latest",
        # As test_pod: no bridge (this machine's Engine has none), and the
        # inner Engine's containers in a cgroup of their own.
        f"dind.extraArgs={{--bridge=none,--iptables=false,--ip6tables=false,--cgroup-parent=/{prefix}}}",
    ])
    c = containers(pod_spec(docs))["dind"]
    assert c["image"] == image and c["securityContext"]["privileged"] is True
    pod = Pod(docs, prefix, None)  # its names and clean-up
    try:
        args = ["run", "-d", "--name", f"{prefix}-dind"]
        for m in c["volumeMounts"]:
            vol = f"{prefix}-{m['name']}"
            docker("volume", "create", vol)
            pod.volumes.append(vol)
            args += ["-v", f"{vol}:{m['mountPath']}"]
        for e in c["env"]:
            args += ["-e", f"{e['name']}={e['value']}"]
        pod.made.append(f"{prefix}-dind")
        docker(*args, *PRIVILEGED, "--entrypoint", c["command"][0], image, *c["command"][1:])

        probe = c["startupProbe"]
        limit = probe["periodSeconds"] * probe["failureThreshold"]
        wait_for(lambda: docker("exec", f"{prefix}-dind", *probe["exec"]["command"],
                                check=False).returncode == 0,
                 limit=limit, what="the dind startup probe", step=0.5)

        # Another container with only the socket's directory, as the launcher.
        env = {e["name"]: e["value"] for e in c["env"]}
        (sock,) = [m for m in c["volumeMounts"] if m["name"] == "dind-socket"]
        client = ["run", "--rm", "-v", f"{prefix}-dind-socket:{sock['mountPath']}",
                  "-e", f"DOCKER_HOST={env['DOCKER_HOST']}", "--entrypoint", "docker", image]
        server = json.loads(docker(*client, "info", "--format", "{{json .}}").stdout)
        assert server["ServerVersion"] in docker("run", "--rm", "--entrypoint", "dockerd", image,
                                                 "--version").stdout
        assert server["DockerRootDir"] == "/var/lib/docker"
        # The Engine runs a container: the runner image, loaded into it.
        save = subprocess.Popen(["docker", "save", RUNNER_IMAGE], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "exec", "-i", f"{prefix}-dind", "docker", "load", "-q"],
                              stdin=save.stdout, capture_output=True, timeout=300)
        save.stdout.close()
        assert save.wait(timeout=60) == 0 and load.returncode == 0, load.stderr
        out = docker(*client, "run", "--rm", "--network", "none", RUNNER_IMAGE,
                     "echo", "ran inside").stdout
        assert out.strip() == "ran inside"
    finally:
        pod.remove()
