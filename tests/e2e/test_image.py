"""scripts/build-launcher-image: the launcher as a container image, FROM
scratch, talking to the host's Docker Engine through its socket."""
import base64
import os
import subprocess
import uuid

from davit_e2e import make_pool, wait_for

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_launcher_image_runs_a_run(stack):
    srv = stack.server
    token, key = make_pool(srv, stack.tmp, "web")
    image = "davit/test-launcher-" + uuid.uuid4().hex[:8]
    name = "davit-test-launcher-" + uuid.uuid4().hex[:8]
    state = os.path.join(stack.tmp, "image-state")
    os.makedirs(state)
    with open(key, "rb") as f:
        key_b64 = base64.b64encode(f.read()).decode()
    subprocess.run([os.path.join(ROOT, "scripts", "build-launcher-image"),
                    os.environ["DAVIT_BUILD_DIR"]], check=True, capture_output=True,
                   env={**os.environ, "LAUNCHER_IMAGE": image})
    try:
        subprocess.run(
            ["docker", "run", "-d", "--name", name, "--network", "host",
             "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{state}:{state}",
             "-e", f"DAVIT_STATE_DIR={state}", "-e", f"SPACELIFT_TOKEN={token}",
             "-e", f"SPACELIFT_POOL_PRIVATE_KEY={key_b64}", "-e", "DAVIT_WORKER_NETWORK=none",
             f"{image}:latest"], check=True, capture_output=True)
        wait_for(lambda: srv.workers("web"), what="the containerised launcher to register")
        rid = srv.submit("web", "p=echo from the image")
        assert srv.wait_ended(rid)["state"] == "finished"
        assert b"from the image" in srv.logs(rid)
        # docker stop sends SIGTERM: the launcher drains and exits 0.
        subprocess.run(["docker", "stop", "-t", "30", name], check=True, capture_output=True)
        code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name],
                              capture_output=True, text=True).stdout.strip()
        assert code == "0"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        version = subprocess.run([os.path.join(os.environ["DAVIT_BUILD_DIR"], "davit-launcher"),
                                  "--version"], capture_output=True, text=True).stdout.split()[-1]
        subprocess.run(["docker", "image", "rm", "-f", f"{image}:latest", f"{image}:{version}"],
                       capture_output=True)
