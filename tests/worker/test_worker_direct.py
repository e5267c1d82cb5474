"""davit-worker run directly on the host, no container.

This runs the glibc build of the same sources, so in the sanitizer build every
test here also checks for memory errors and leaks (ASan, UBSan, LSan). It
covers the input checks and the run logic that need no container.
"""
import os
import signal
import subprocess
import time

import pytest

from conftest import BUILD
from davit_rundir import output, read_spool, result, write_rundir

WORKER = os.path.join(BUILD, "davit-worker-glibc")


def run_worker(rundir, timeout=60):
    p = subprocess.run([WORKER, "--run-dir", rundir], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def phases_ok():
    return [{"name": "p", "commands": ["echo hi"]}]


@pytest.fixture
def workspace(tmpdir_clean):
    return os.path.join(tmpdir_clean, "ws")


def test_help_version_and_bad_arguments():
    p = subprocess.run([WORKER, "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "usage: davit-worker" in p.stdout
    p = subprocess.run([WORKER, "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("davit-worker ")
    p = subprocess.run([WORKER, "--frobnicate"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr == 'davit-worker: unknown argument "--frobnicate" (see --help)\n'


def test_environment_of_a_phase(rundir, workspace):
    write_rundir(rundir, [{"name": "env", "commands": [
        'echo "$PLAIN|$BOTH|$DAVIT_RUN_ID|$DAVIT_PHASE|$DAVIT_WORKSPACE|$(pwd)"',
        'test -n "$PATH" && echo path-set',
    ], "after": ['echo "after:$DAVIT_PHASE_OUTCOME"']}],
        env={"PLAIN": "plain value", "BOTH": "from-env"},
        secrets={"BOTH": "from-secrets"},
        settings={"run_id": "run-7", "workspace": workspace})
    code, _, err = run_worker(rundir)
    assert code == 0, err
    recs = read_spool(os.path.join(rundir, "spool"))
    # The secret overrides the plain variable of the same name, and is masked.
    assert output(recs, "env") == (
        f"plain value|***|run-7|env|{workspace}|{workspace}\npath-set\nafter:succeeded\n"
    ).encode()


def test_value_is_kept_byte_for_byte(rundir, workspace):
    write_rundir(rundir, [{"name": "p", "commands": ['printf "[%s]" "$MULTI"']}],
                 env={"MULTI": "line one\nline two\n"}, settings={"workspace": workspace})
    code, _, err = run_worker(rundir)
    assert code == 0, err
    assert output(read_spool(os.path.join(rundir, "spool"))) == b"[line one\nline two\n]"


def test_sigterm_cancels_between_and_during_commands(rundir, workspace):
    write_rundir(rundir, [{"name": "wait", "commands": ["echo up; sleep 30"]},
                          {"name": "next", "commands": ["echo no"]}],
                 settings={"workspace": workspace, "kill_grace": "5s"})
    p = subprocess.Popen([WORKER, "--run-dir", rundir], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        spool = os.path.join(rundir, "spool")
        while time.monotonic() < deadline:
            if os.path.exists(spool) and b"up\n" in open(spool, "rb").read():
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert code == 4, p.stderr.read()
    res = result(read_spool(os.path.join(rundir, "spool")))
    assert res.kv("outcome") == "canceled" and res.kv("phase") == "wait"


def test_command_that_cannot_start_fails_the_run(rundir, tmpdir_clean):
    # The workspace is a file, so the worker cannot make it a directory.
    blocker = os.path.join(tmpdir_clean, "file")
    open(blocker, "w").close()
    write_rundir(rundir, phases_ok(), settings={"workspace": blocker + "/ws"})
    code, _, _ = run_worker(rundir)
    assert code == 1
    res = result(read_spool(os.path.join(rundir, "spool")))
    assert res.kv("outcome") == "failed"
    assert res.kv("reason").startswith(f"workspace {blocker}/ws: cannot create: ")


def test_run_directory_is_never_used_twice(rundir, workspace):
    write_rundir(rundir, phases_ok(), settings={"workspace": workspace})
    assert run_worker(rundir)[0] == 0
    before = open(os.path.join(rundir, "spool"), "rb").read()
    write_rundir(rundir, phases_ok(), settings={"workspace": workspace})  # a key again
    code, _, err = run_worker(rundir)
    assert code == 2
    assert "spool: already exists: this run directory was used before" in err
    assert open(os.path.join(rundir, "spool"), "rb").read() == before


def test_the_key_is_gone_before_any_phase(rundir, workspace):
    key_path = os.path.join(rundir, "key")
    write_rundir(rundir, [{"name": "p", "commands": [
        f'test -e {key_path} && echo key-present || echo key-gone']}],
        settings={"workspace": workspace})
    assert os.stat(key_path).st_mode & 0o777 == 0o400
    code, _, err = run_worker(rundir)
    assert code == 0, err
    recs = read_spool(os.path.join(rundir, "spool"))  # every record signed with the key
    assert output(recs, "p") == b"key-gone\n"
    assert not os.path.exists(key_path)
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))


@pytest.mark.parametrize("content,message", [
    (None, "key: missing: the launcher gave this run no key"),
    (b"short", "key: not a key: shorter than 32 bytes"),
    (b"k" * 33, "key: not a key: longer than 32 bytes"),
], ids=["missing", "short", "long"])
def test_bad_key(rundir, workspace, content, message):
    write_rundir(rundir, phases_ok(), settings={"workspace": workspace}, key=content is not None)
    if content is not None:
        os.chmod(os.path.join(rundir, "key"), 0o600)
        _put(rundir, "key", content)
    code, out, err = run_worker(rundir)
    assert code == 2
    assert err == f"davit-worker: run directory {rundir}: {message}\n"
    # Nothing is recorded that the launcher could not verify, and nothing ran.
    assert not os.path.exists(os.path.join(rundir, "spool"))
    assert not os.path.exists(workspace)


BAD = [
    # (what to break, the message expected on stderr)
    (lambda d: _put(d, "version", "2\n"), 'version: this worker reads format 1, not "2"'),
    (lambda d: _put(d, "version", "1\n\n"), "version: must be a single non-empty line"),
    (lambda d: _rm(d, "phases"), "phases: No such file or directory"),
    (lambda d: _put(d, "settings/colour", "blue\n"), "settings/colour: unknown setting"),
    (lambda d: _put(d, "settings/user", "nobody\n"),
     'settings/user: expected UID or UID:GID (numbers): "nobody"'),
    (lambda d: _put(d, "settings/echo", "yes\n"), 'settings/echo: expected 0 or 1: "yes"'),
    (lambda d: _put(d, "settings/workspace", "relative\n"),
     'settings/workspace: must be an absolute path: "relative"'),
    (lambda d: _put(d, "settings/run_timeout", "1.5h\n"),
     'settings/run_timeout: not a duration (like 90, 90s, 7m, 1h): "1.5h"'),
    (lambda d: _put(d, "env/1BAD", "x"), "env/1BAD: not a variable name"),
    (lambda d: _put(d, "env/NUL", "a\0b"), "env/NUL: value contains a NUL byte"),
    (lambda d: _put(d, "secrets/BIG", "x" * (128 * 1024 + 1)), "BIG: larger than 131072 bytes"),
    (lambda d: _put(d, "phases/0/name", "has space\n"),
     'phases/0/name: 1 to 64 of [A-Za-z0-9_.-]: "has space"'),
    (lambda d: _put(d, "phases/0/commands", "echo no terminator"),
     "phases/0/commands: the last command is not followed by a NUL byte"),
    (lambda d: _put(d, "phases/0/extra", ""), "phases/0/extra: unknown file"),
    (lambda d: _put(d, "phases/zero/name", "x\n"), "phases/zero: not a phase number from 0 to 63"),
    (lambda d: (_put(d, "phases/1/name", "p\n")), 'phases/1/name: "p" is already the name of phase 0'),
    (lambda d: (_rm(d, "phases/0"), os.mkdir(os.path.join(d, "phases/0"))),
     "phases/0/name: No such file or directory"),
]


@pytest.mark.parametrize("breakage,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_run_directory(rundir, workspace, breakage, message):
    write_rundir(rundir, phases_ok(), settings={"workspace": workspace})
    breakage(rundir)
    code, out, err = run_worker(rundir)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err, err
    assert err.startswith(f"davit-worker: run directory {rundir}: ")
    recs = read_spool(os.path.join(rundir, "spool"))
    assert len(recs) == 1
    assert recs[0].kv("outcome") == "failed"
    assert recs[0].kv("reason").startswith("bad run directory: ")
    assert not os.path.exists(workspace)  # nothing ran


def _fifo(d, rel):
    path = os.path.join(d, rel)
    if os.path.lexists(path):
        os.unlink(path)
    os.mkfifo(path, 0o600)


def _link(d, rel, target):
    path = os.path.join(d, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


# Planted by someone who can write the run directory: a FIFO would block the worker in open()
# for ever (no writer), a symlink would make it read (and run with, or print) another file.
PLANTED = [
    (lambda d: _fifo(d, "phases/0/commands"), "phases/0/commands: a FIFO, not a regular file"),
    (lambda d: _fifo(d, "version"), "version: a FIFO, not a regular file"),
    (lambda d: _fifo(d, "settings/run_id"), "settings/run_id: a FIFO, not a regular file"),
    (lambda d: _link(d, "env/LEAK", "/etc/passwd"),
     "env/LEAK: a symbolic link, not a regular file"),
    (lambda d: _link(d, "secrets", "/etc"), "secrets: a symbolic link, not a directory"),
    (lambda d: _link(d, "phases/0", "/etc"), "phases/0: a symbolic link, not a directory"),
    (lambda d: _link(d, "phases/0/name", "/etc/hostname"),
     "phases/0/name: a symbolic link, not a regular file"),
]


@pytest.mark.parametrize("plant,message", PLANTED, ids=[m.split(":")[0] for _, m in PLANTED])
def test_fifo_or_symlink_in_the_run_directory(rundir, workspace, plant, message):
    write_rundir(rundir, phases_ok(), env={"A": "1"}, settings={"workspace": workspace})
    plant(rundir)
    # the timeout is only a guard against a hang: the worker answers at once
    code, out, err = run_worker(rundir, timeout=20)
    assert code == 2, err
    assert err == f"davit-worker: run directory {rundir}: {message}\n"
    assert "root:" not in out + err
    assert not os.path.exists(workspace)  # nothing ran


@pytest.mark.parametrize("plant,message", [
    (lambda d: _link(d, "key", "/etc/passwd"), "key: a symbolic link, not a regular file"),
    (lambda d: _fifo(d, "key"), "key: a FIFO, not a regular file"),
], ids=["symlink", "fifo"])
def test_key_that_is_not_a_file(rundir, workspace, plant, message):
    write_rundir(rundir, phases_ok(), settings={"workspace": workspace})
    plant(rundir)
    code, _, err = run_worker(rundir, timeout=20)
    assert code == 2 and err == f"davit-worker: run directory {rundir}: {message}\n", err
    assert os.path.exists("/etc/passwd") and not os.path.exists(os.path.join(rundir, "spool"))


def test_run_directory_that_is_a_file(tmpdir_clean):
    path = os.path.join(tmpdir_clean, "notadir")
    open(path, "w").close()
    code, _, err = run_worker(path)
    assert code == 2 and err == f"davit-worker: run directory {path}: Not a directory\n"


def _put(d, rel, content):
    path = os.path.join(d, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)


def _rm(d, rel):
    import shutil
    shutil.rmtree(os.path.join(d, rel))


def test_output_that_keeps_coming_makes_few_records(rundir, workspace):
    # 20,000 lines, one write(2) each: one record per read made about one
    # record per line; output that keeps arriving is gathered into records.
    write_rundir(rundir, [{"name": "p", "commands": [
        'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done']}],
        settings={"workspace": workspace})
    code, _, err = run_worker(rundir)
    assert code == 0, err
    recs = read_spool(os.path.join(rundir, "spool"))
    assert output(recs, "p") == b"".join(b"line %d\n" % i for i in range(20000))
    stdout = [r for r in recs if r.type == "o"]
    assert len(stdout) < 1000, len(stdout)


def test_first_line_after_a_pause_is_not_held(rundir, workspace):
    # A line a user waits for is recorded when it is read, not when more comes.
    write_rundir(rundir, [{"name": "p", "commands": [
        "echo first; echo first-b; sleep 2; echo second"]}], settings={"workspace": workspace})
    code, _, err = run_worker(rundir)
    assert code == 0, err
    recs = [r for r in read_spool(os.path.join(rundir, "spool")) if r.type == "o"]
    first = [r for r in recs if b"first-b" in r.data][0]
    second = [r for r in recs if b"second" in r.data][0]
    assert b"second" not in first.data
    assert second.ms - first.ms >= 1500, (first, second)
