"""davit-worker as PID 1 of real containers (real dockerd, local images only).

These are the acceptance tests of docs/worker.md. Every container runs with
network none, and is removed at the end of its test.
"""
import hashlib
import os
import shutil
import subprocess
import time
import uuid

import pytest

from davit_rundir import output, read_spool, result, wait_for_spool, write_rundir

EXIT = {"finished": 0, "failed": 1, "timed_out": 3, "canceled": 4, "usage": 2}


def kinds(records, phase=None):
    """The record types in order, e.g. "ScoE", optionally for one phase."""
    return "".join(r.type for r in records if phase is None or r.phase == phase)


def test_multi_phase_with_hooks_finishes_in_order(containers, rundir):
    write_rundir(rundir, [
        {"name": "init", "before": ["echo before-init"], "commands": ["echo init"],
         "after": ["echo after-init $DAVIT_PHASE_OUTCOME"]},
        {"name": "plan", "commands": ["echo plan-1", "echo plan-2 >&2"]},
        {"name": "apply", "before": ["echo before-apply"], "commands": ["echo apply"],
         "after": ["echo after-apply"]},
    ], env={"GREETING": "hi"}, settings={"run_id": "r-1"})
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"]
    res = result(recs)
    assert res.kv("outcome") == "finished" and res.kv("phase") == "-"
    # Phases in order, each bracketed by S and E, and hooks around commands.
    assert [r.phase for r in recs if r.type == "S"] == ["init", "plan", "apply"]
    assert kinds(recs, "init") == "ScococoE"
    assert output(recs, "init") == b"before-init\ninit\nafter-init succeeded\n"
    assert output(recs, "plan") == b"plan-1\n" and output(recs, "plan", "e") == b"plan-2\n"
    assert output(recs, "apply") == b"before-apply\napply\nafter-apply\n"
    stages = [r.data.split(b" ")[0] for r in recs if r.type == "c" and r.phase == "apply"]
    assert stages == [b"before", b"run", b"after"]
    assert all(r.kv("outcome") == "succeeded" for r in recs if r.type == "E")
    times = [r.ms for r in recs]
    assert times == sorted(times)


def test_failing_phase_skips_the_rest_and_runs_its_after_hooks(containers, rundir):
    write_rundir(rundir, [
        {"name": "init", "commands": ["echo ok"]},
        {"name": "plan", "commands": ["echo trying", "exit 7", "echo not-reached"],
         "after": ["echo cleanup $DAVIT_PHASE_OUTCOME"]},
        {"name": "apply", "before": ["echo no"], "commands": ["echo no"],
         "after": ["echo no"]},
    ])
    code, recs = containers.run(rundir)
    assert code == EXIT["failed"]
    res = result(recs)
    assert res.kv("outcome") == "failed" and res.kv("phase") == "plan"
    assert res.kv("exit") == "7"
    assert "command 2 of phase plan exited with code 7" in res.kv("reason")
    # The failing phase's after hook ran and was told so; nothing of apply ran.
    assert output(recs, "plan") == b"trying\ncleanup failed\n"
    ends = {r.phase: r.kv("outcome") for r in recs if r.type == "E"}
    assert ends == {"init": "succeeded", "plan": "failed", "apply": "skipped"}
    assert not [r for r in recs if r.phase == "apply" and r.type != "E"]


def test_failing_after_hook_fails_the_phase(containers, rundir):
    write_rundir(rundir, [{"name": "plan", "commands": ["true"], "after": ["exit 4"]},
                          {"name": "apply", "commands": ["echo no"]}])
    code, recs = containers.run(rundir)
    assert code == EXIT["failed"]
    assert "after hook 1 of phase plan exited with code 4" in result(recs).kv("reason")


@pytest.mark.parametrize("case", ["phase", "run", "no_output"])
def test_timeouts_end_the_run_timed_out(containers, rundir, case):
    phases = [{"name": "first", "commands": ["echo quick"]},
              {"name": "slow", "commands": ["echo start; sleep 30"]}]
    settings = {"kill_grace": "2s"}
    if case == "phase":
        phases[1]["timeout"] = "1s"
        want = "phase slow exceeded its 1s timeout"
    elif case == "run":
        settings["run_timeout"] = "2s"
        want = "the run exceeded its 2s timeout"
    else:
        settings["output_timeout"] = "1500ms"
        want = "no output for 1500ms"
    write_rundir(rundir, phases, settings=settings)
    code, recs = containers.run(rundir)
    assert code == EXIT["timed_out"]
    res = result(recs)
    assert res.kv("outcome") == "timed_out"
    assert res.kv("phase") == "slow"
    assert res.kv("reason") == want
    # sleep died of the SIGTERM, well before its 30 s.
    assert res.kv("exit") == str(128 + 15)
    assert int(res.kv("duration_ms")) < 20000


def test_output_keeps_the_timeout_away(containers, rundir):
    write_rundir(rundir, [{"name": "chatty",
                           "commands": ["for i in 1 2 3 4 5 6; do echo $i; sleep 0.5; done"]}],
                 settings={"output_timeout": "2s"})
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"]


def test_docker_kill_term_cancels(containers, rundir):
    write_rundir(rundir, [{"name": "long", "commands": ["echo started; sleep 60"]},
                          {"name": "never", "commands": ["echo no"]}],
                 settings={"kill_grace": "5s"})
    name = containers.start(rundir)
    wait_for_spool(rundir, b"started", timeout=30)
    t0 = time.monotonic()
    subprocess.run(["docker", "kill", "--signal", "TERM", name], check=True, capture_output=True)
    code = containers.wait(name)
    elapsed = time.monotonic() - t0
    recs = read_spool(os.path.join(rundir, "spool"))
    assert code == EXIT["canceled"]
    res = result(recs)
    assert res.kv("outcome") == "canceled" and res.kv("phase") == "long"
    assert res.kv("reason") == "canceled by SIGTERM"
    # sleep obeys SIGTERM, so no SIGKILL was needed: well within the grace period.
    assert elapsed < 5
    assert not [r for r in recs if r.type == "W" and b"SIGKILL" in r.data and b"did not" in r.data]
    assert {r.phase: r.kv("outcome") for r in recs if r.type == "E"} == {
        "long": "canceled", "never": "skipped"}


def test_phase_ignoring_term_is_killed_after_grace(containers, rundir):
    write_rundir(rundir, [{"name": "stubborn",
                           "commands": ["trap '' TERM; echo started; sleep 60"]}],
                 settings={"kill_grace": "2s"})
    name = containers.start(rundir)
    wait_for_spool(rundir, b"started", timeout=30)
    t0 = time.monotonic()
    subprocess.run(["docker", "kill", "--signal", "TERM", name], check=True, capture_output=True)
    code = containers.wait(name)
    elapsed = time.monotonic() - t0
    recs = read_spool(os.path.join(rundir, "spool"))
    assert code == EXIT["canceled"]
    res = result(recs)
    assert res.kv("exit") == str(128 + 9)  # SIGKILL
    assert 1.5 <= elapsed < 15
    notes = b"".join(r.data for r in recs if r.type == "W")
    assert b"did not stop within the grace period: sending SIGKILL" in notes


def test_double_forked_orphan_leaves_no_zombie(containers, rundir):
    write_rundir(rundir, [
        {"name": "spawn", "commands": ["(sleep 1 &); (sh -c 'sleep 1 & exit 0' &); echo spawned"]},
        {"name": "check", "commands": [
            "sleep 2.5",
            # State Z in any process's status means a zombie nobody reaped.
            "cat /proc/[0-9]*/status | grep '^State:' | sort | uniq -c",
            "! grep -q '^State:.*Z' /proc/[0-9]*/status"]},
    ])
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"], output(recs, "check")
    assert b"Z (zombie)" not in output(recs, "check")


def test_secret_split_across_writes_and_add_mask(containers, rundir):
    write_rundir(rundir, [
        {"name": "leak", "commands": [
            "printf 'token=s3cr'; sleep 0.3; printf 'et-value!\\n'",
            "echo \"$API_TOKEN\" >&2",
            # The value is made at run time, as a real token would be.
            "echo \"::add-mask::$(echo aHVudGVyMg== | base64 -d)\"",
            "echo 'the password is hunter2'",
            "printf 'hun'; sleep 0.3; printf 'ter2\\n'",
        ]},
        {"name": "later", "commands": ["echo hunter2 s3cret-value"]},
    ], secrets={"API_TOKEN": "s3cret-value"}, env={"PLAIN": "visible"})
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"]
    with open(os.path.join(rundir, "spool"), "rb") as f:
        raw = f.read()
    # Neither value anywhere in the spool, command records included.
    assert b"s3cret-value" not in raw and b"hunter2" not in raw
    assert output(recs, "leak") == (b"token=***!\n::add-mask::***\nthe password is ***\n***\n")
    assert output(recs, "leak", "e") == b"***\n"
    assert output(recs, "later") == b"*** ***\n"


def test_secrets_stay_out_of_docker_inspect(containers, rundir):
    write_rundir(rundir, [{"name": "p", "commands": ["test -n \"$API_TOKEN\""]}],
                 secrets={"API_TOKEN": "s3cret-value"})
    name = containers.start(rundir)
    assert containers.wait(name) == EXIT["finished"]
    inspect = subprocess.run(["docker", "inspect", name], capture_output=True, text=True).stdout
    assert "s3cret-value" not in inspect


def test_100_mb_of_output_arrives_complete(containers, rundir):
    size = 100 * 1024 * 1024
    write_rundir(rundir, [{"name": "flood", "commands": [
        # Random bytes (NULs, invalid UTF-8, no line structure), checksummed
        # inside the container by the same stream that prints them.
        f"head -c {size} /dev/urandom > /tmp/blob && sha256sum /tmp/blob >&2 && cat /tmp/blob",
        "grep VmHWM /proc/1/status >&2",
    ]}], settings={"output_timeout": "60s"})
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"]
    out = output(recs, "flood")
    assert len(out) == size
    err = output(recs, "flood", "e").decode()
    assert hashlib.sha256(out).hexdigest() == err.split()[0]
    # The worker's own peak memory stays small however much passes through.
    hwm_kb = int(err.split("VmHWM:")[1].split()[0])
    assert hwm_kb < 16 * 1024, f"worker peak RSS {hwm_kb} kB"


def test_long_line_nul_and_invalid_utf8_intact(containers, rundir):
    write_rundir(rundir, [{"name": "bytes", "commands": [
        "head -c 10485760 /dev/zero | tr '\\0' 'x'",
        "printf 'a\\000b\\377\\376c\\n'",
    ]}])
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"]
    out = output(recs, "bytes")
    assert out == b"x" * 10485760 + b"a\x00b\xff\xfec\n"
    assert max(len(r.data) for r in recs) <= 65536


def test_phases_run_as_non_root_user(containers, rundir):
    write_rundir(rundir, [{"name": "who", "commands": [
        "id -u; id -g",
        "touch /mnt/workspace/mine && echo workspace-writable",
        "cat /opt/davit/run/secrets/KEY 2>/dev/null || echo secrets-unreadable",
        "echo forged >> /opt/davit/run/spool 2>/dev/null || echo spool-unwritable",
    ]}], secrets={"KEY": "v"}, settings={"user": "1983"})
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"], output(recs)
    assert output(recs, "who") == (b"1983\n1983\nworkspace-writable\nsecrets-unreadable\n"
                                   b"spool-unwritable\n")
    st = os.stat(os.path.join(rundir, "spool"))
    assert st.st_uid == 0 and (st.st_mode & 0o777) == 0o600


def test_echo_setting_copies_output_to_docker_logs(containers, rundir):
    write_rundir(rundir, [{"name": "talk", "commands": ["echo to-stdout; echo to-stderr >&2"]}],
                 settings={"echo": "1"})
    name = containers.start(rundir)
    assert containers.wait(name) == EXIT["finished"]
    out, err = containers.logs(name)
    assert b"to-stdout\n" in out and b"to-stderr\n" in err
    assert b"[davit talk] phase started" in out
    assert b"run ended: outcome=finished" in out


@pytest.mark.parametrize("breakage,message", [
    ("no_version", "version: No such file or directory"),
    ("bad_timeout", 'phases/0/timeout: not a duration (like 90, 90s, 7m, 1h): "soon"'),
    ("unknown_file", "surprise: unknown file in the run directory"),
    ("gap", "phases/1: missing (phases must be numbered 0 to 1)"),
])
def test_malformed_run_directory(containers, rundir, breakage, message):
    write_rundir(rundir, [{"name": "p", "commands": ["echo no"]}])
    if breakage == "no_version":
        os.unlink(os.path.join(rundir, "version"))
    elif breakage == "bad_timeout":
        with open(os.path.join(rundir, "phases", "0", "timeout"), "w") as f:
            f.write("soon\n")
    elif breakage == "unknown_file":
        open(os.path.join(rundir, "surprise"), "w").close()
    else:
        shutil.copytree(os.path.join(rundir, "phases", "0"), os.path.join(rundir, "phases", "2"))
    name = containers.start(rundir)
    code = containers.wait(name)
    _, err = containers.logs(name)
    assert code == EXIT["usage"]
    lines = err.decode().strip().split("\n")
    assert len(lines) == 1 and message in lines[0], err
    recs = read_spool(os.path.join(rundir, "spool"))
    assert len(recs) == 1 and recs[0].type == "R"
    assert recs[0].kv("outcome") == "failed" and message in recs[0].kv("reason")


def test_missing_run_directory(containers):
    name = containers.start(None)
    code = containers.wait(name)
    _, err = containers.logs(name)
    assert code == EXIT["usage"]
    assert err.decode().strip() == (
        "davit-worker: run directory /opt/davit/run: No such file or directory")


def test_runs_in_scratch_image_with_no_libc(containers, rundir, tmpdir_clean):
    """An image holding only busybox (static) and the worker: no libc, no loader."""
    image = "davit/test-scratch-" + uuid.uuid4().hex[:8]
    root = os.path.join(tmpdir_clean, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy("/bin/busybox", os.path.join(root, "bin", "busybox"))
    for applet in ("sh", "echo", "ls", "find", "cat"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    os.makedirs(os.path.join(root, "opt", "davit", "bin"))
    shutil.copy(containers.worker, os.path.join(root, "opt", "davit", "bin", "davit-worker"))
    tar = subprocess.Popen(["tar", "-C", root, "-cf", "-", "."], stdout=subprocess.PIPE)
    subprocess.run(["docker", "import", "-", image], stdin=tar.stdout, check=True,
                   capture_output=True)
    tar.wait()
    try:
        listing = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--label", "io.davit.run=davit-test-ls",
             "--entrypoint", "/bin/busybox", image, "find", "/", "-xdev"],
            check=True, capture_output=True, text=True).stdout.split()
        assert not [p for p in listing if "libc" in p or "/ld-" in p or p.endswith(".so")]
        assert "/opt/davit/bin/davit-worker" in listing
        write_rundir(rundir, [{"name": "p", "commands": ["echo no libc here; ls /"]}],
                     settings={"workspace": "/tmp-ws"})
        name = containers.start(rundir, image=image)
        assert containers.wait(name) == EXIT["finished"]
        out = output(read_spool(os.path.join(rundir, "spool")), "p")
        assert out.startswith(b"no libc here\n")
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)


def test_worker_binary_is_static():
    out = subprocess.run(["file", os.path.join(os.environ.get("DAVIT_BUILD_DIR", ""),
                                               "davit-worker")],
                         capture_output=True, text=True, check=True).stdout
    assert "statically linked" in out


@pytest.fixture
def passwd_image(tmpdir_clean):
    """make(home) -> a throwaway image from davit/runner-busybox whose /etc/passwd
    gives uid 1983 the home directory home (made, owned by 1983), or no entry
    at all for None. Removed at the end of the test."""
    made = []

    def make(home):
        name = "davit-test-home-" + uuid.uuid4().hex[:12]
        lines = ["root:x:0:0:root:/root:/bin/sh"]
        if home:
            lines.append(f"runner:x:1983:1983:a runner:{home}:/bin/sh")
        src = os.path.join(tmpdir_clean, name)
        os.makedirs(os.path.join(src, "etc"))
        with open(os.path.join(src, "etc", "passwd"), "w") as f:
            f.write("\n".join(lines) + "\n")
        if home:
            os.makedirs(src + home)
            os.chown(src + home, 1983, 1983)
        subprocess.run(["docker", "create", "--name", name, "--label", "io.davit.run=" + name,
                        "--entrypoint", "/bin/true", "davit/runner-busybox"],
                       check=True, capture_output=True)
        try:
            for top in os.listdir(src):
                subprocess.run(["docker", "cp", "-a", os.path.join(src, top), f"{name}:/"],
                               check=True, capture_output=True)
            subprocess.run(["docker", "commit", name, name], check=True, capture_output=True)
            made.append(name)
        finally:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        return name

    yield make
    if made:
        subprocess.run(["docker", "rmi", "-f", *made], capture_output=True)


@pytest.mark.parametrize("entry,home", [
    ("/home/runner", "/home/runner"),  # the image's passwd entry for the uid
    (None, "/mnt/workspace"),          # no entry: the workspace
], ids=["passwd_entry", "no_entry"])
def test_home_of_a_non_root_user(containers, rundir, passwd_image, entry, home):
    image = passwd_image(entry)
    write_rundir(rundir, [{"name": "home", "commands": [
        'echo "HOME=$HOME"', 'echo settings > "$HOME/.toolrc" && cat "$HOME/.toolrc"',
    ]}], settings={"user": "1983"})
    code, recs = containers.run(rundir, image=image)
    assert output(recs, "home") == f"HOME={home}\nsettings\n".encode(), output(recs, None, "e")
    assert code == EXIT["finished"]


def test_home_of_root_and_from_env(containers, rundir):
    write_rundir(rundir, [{"name": "root", "commands": ['echo "HOME=$HOME"']},
                          {"name": "mine", "commands": ['echo "HOME=$HOME"']}])
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"]
    assert output(recs, "root") == b"HOME=/root\n"
    # A HOME in the run's env/ wins over the worker's choice.
    shutil.rmtree(rundir)
    write_rundir(rundir, [{"name": "mine", "commands": ['echo "HOME=$HOME"']}],
                 env={"HOME": "/srv/mine"}, settings={"user": "1983"})
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"]
    assert output(recs, "mine") == b"HOME=/srv/mine\n"


def test_root_phase_cannot_read_the_workers_memory(containers, rundir):
    """The worker is non-dumpable, so even a root phase (without CAP_SYS_PTRACE, as in any default
    container) cannot look into it for the run key; and the key file is gone."""
    write_rundir(rundir, [{"name": "peek", "commands": [
        "id -u",
        "for f in environ maps mem; do head -c 1 /proc/1/$f >/dev/null 2>&1 "
        "&& echo $f-readable || echo $f-denied; done",
        "test -e /opt/davit/run/key && echo key-present || echo key-gone",
    ]}])
    code, recs = containers.run(rundir)
    assert code == EXIT["finished"], output(recs, None, "e")
    assert output(recs, "peek") == b"0\nenviron-denied\nmaps-denied\nmem-denied\nkey-gone\n"
