"""PID 1 of the boot test's container (tests/deploy/test_boot_aws.py): the
few things systemd and cloud-init do on a worker's first boot, since a
container cannot run systemd here. A stand-in, named as one.

1. Runs the user data (argv[1]) with sh, as cloud-init does, with
   bin/systemctl beside this file first on PATH: that records each request.
2. If the user data asked for `enable --now davit-launcher.service`, loads
   /etc/systemd/system/davit-launcher.service and its drop-ins
   (davit-launcher.service.d/*.conf, in name order; ExecStopPost= adds, the
   other keys replace) and starts it as systemd would: its StateDirectory,
   the default PATH, Environment= then EnvironmentFile= (whose settings
   win, as systemd.exec says), ExecStart= as a
   child; SIGTERM to this process is sent on to it (`docker stop` is
   `systemctl stop`).
3. When the service exits, runs each ExecStopPost= with EXIT_STATUS set, and
   says whether systemd would restart it (Restart=, SuccessExitStatus=,
   RestartPreventExitStatus=); a `systemctl poweroff` then is recorded.

Everything it does is printed as "fake-systemd: ..." lines; it exits with
the service's exit status (or 100 if the user data failed)."""
import glob
import os
import shlex
import signal
import subprocess
import sys

UNIT = "/etc/systemd/system/davit-launcher.service"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REQUESTS = "/run/fake-systemd/requests"


def say(msg):
    print(f"fake-systemd: {msg}", flush=True)


def load_unit():
    svc = {}
    for path in [UNIT] + sorted(glob.glob(UNIT + ".d/*.conf")):
        say(f"loads {path}")
        section = None
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line[0] in "#;":
                    continue
                if line.startswith("["):
                    section = line.strip("[]")
                    continue
                if section != "Service":
                    continue
                key, _, value = line.partition("=")
                if key in ("ExecStopPost", "Environment"):
                    svc.setdefault(key, []).append(value)
                else:
                    svc[key] = value
    return svc


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                env[k] = v
    return env


def main():
    os.makedirs(os.path.dirname(REQUESTS), exist_ok=True)
    path = f"{HERE}/bin:{DEFAULT_PATH}"
    say(f"runs the user data {sys.argv[1]}")
    ud = subprocess.run(["sh", sys.argv[1]], env={"PATH": path, "HOME": "/root"})
    if ud.returncode != 0:
        say(f"the user data failed: exit {ud.returncode}")
        return 100
    requests = open(REQUESTS).read().splitlines() if os.path.exists(REQUESTS) else []
    if "enable --now davit-launcher.service" not in requests:
        say(f"the user data started no davit-launcher.service: {requests}")
        return 101

    svc = load_unit()
    state = svc.get("StateDirectory")
    if state:
        os.makedirs(f"/var/lib/{state}", exist_ok=True)
        os.chmod(f"/var/lib/{state}", int(svc.get("StateDirectoryMode", "0755"), 8))
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"}
    for assignments in svc.get("Environment", []):
        for a in shlex.split(assignments):
            k, _, v = a.partition("=")
            env[k] = v
    env.update(read_env_file(svc["EnvironmentFile"]))
    say(f"starts {svc['ExecStart']}")
    child = subprocess.Popen(shlex.split(svc["ExecStart"]), env=env)

    def forward(sig, _frame):
        say(f"stop: sends signal {sig} to the service")
        child.send_signal(sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    say(f"davit-launcher.service exited {code}")

    success = {0} | {int(c) for c in svc.get("SuccessExitStatus", "").split()}
    prevent = {int(c) for c in svc.get("RestartPreventExitStatus", "").split()}
    restart = svc.get("Restart", "no")
    failed = code not in success
    would = (restart == "always" or (restart == "on-failure" and failed)) and code not in prevent
    say(f"Restart={restart}: systemd would {'restart it' if would else 'leave it stopped'}")
    post_env = {**env, "PATH": path, "EXIT_CODE": "exited", "EXIT_STATUS": str(code),
                "SERVICE_RESULT": "exit-code" if failed else "success"}
    for cmd in svc.get("ExecStopPost", []):
        say(f"ExecStopPost: {cmd}")
        subprocess.run(shlex.split(cmd), env=post_env)
    return code


if __name__ == "__main__":
    sys.exit(main())
