"""Test helpers for the worker: write run directories, read spools.

Both follow docs/run-directory.md. The spool reader is deliberately strict:
any malformed record, and any record whose MAC is not the run key's, fails
the test.
"""
import os
import re

HEADER = re.compile(rb"(@([oecSEWR]) (\d+) (\d+) ([A-Za-z0-9_.-]+) (\d+)) ([0-9a-f]{32})\n")

# The key of each run directory write_rundir made (the worker deletes the file).
KEYS = {}


def write_rundir(path, phases, env=None, secrets=None, settings=None, key=True):
    """phases: list of dicts with name, commands, and optional before/after/timeout.

    key=True writes a fresh run key (mode 0400) as the launcher does; False
    writes none."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    if key:
        KEYS[os.path.realpath(path)] = os.urandom(32)
        _put(path, "key", KEYS[os.path.realpath(path)], mode=0o400)
    _put(path, "version", "1\n")
    for sub, values in (("env", env), ("secrets", secrets)):
        if values:
            for k, v in values.items():
                _put(os.path.join(path, sub), k, v)
    for k, v in (settings or {}).items():
        _put(os.path.join(path, "settings"), k, f"{v}\n")
    for i, ph in enumerate(phases):
        d = os.path.join(path, "phases", str(i))
        _put(d, "name", ph["name"] + "\n")
        for key in ("before", "commands", "after"):
            if key in ph:
                _put(d, key, "".join(c + "\0" for c in ph[key]))
        if "timeout" in ph:
            _put(d, "timeout", f"{ph['timeout']}\n")
    return path


def _put(directory, name, content, mode=0o600):
    os.makedirs(directory, mode=0o700, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class Record:
    def __init__(self, type_, seq, ms, phase, data):
        self.type, self.seq, self.ms, self.phase, self.data = type_, seq, ms, phase, data

    def kv(self, key):
        text = self.data.decode()
        if key == "reason":
            return text.split("reason=", 1)[1]
        for word in text.split(" "):
            if word.startswith(key + "="):
                return word[len(key) + 1:]
        raise KeyError(key)

    def __repr__(self):
        return f"<{self.type} {self.seq} {self.phase} {self.data[:60]!r}>"


def record_mac(key, base, payload):
    """A record's MAC (src/common/spool_mac.h): the ChaCha20-Poly1305 tag with
    the record's seq as the nonce, the payload as associated data, and the
    header without its MAC, with a newline, as the plaintext; in hex."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    seq = int(base.split(b" ")[1])
    nonce = seq.to_bytes(8, "little") + bytes(4)
    return ChaCha20Poly1305(key).encrypt(nonce, base + b"\n", payload)[-16:].hex()


def read_spool(path, key=None):
    """The records of the spool at path, each checked against the key of the
    run directory it is in (or key)."""
    if key is None:
        key = KEYS[os.path.realpath(os.path.dirname(path))]
    with open(path, "rb") as f:
        buf = f.read()
    records, pos = [], 0
    while pos < len(buf):
        m = HEADER.match(buf, pos)
        assert m, f"corrupt record header at offset {pos}: {buf[pos:pos + 80]!r}"
        length = int(m.group(6))
        start = m.end()
        assert buf[start + length:start + length + 1] == b"\n", f"record at {pos} not terminated"
        payload = buf[start:start + length]
        assert m.group(7).decode() == record_mac(key, m.group(1), payload), \
            f"record at {pos} has a bad MAC"
        records.append(Record(m.group(2).decode(), int(m.group(3)), int(m.group(4)),
                              m.group(5).decode(), payload))
        pos = start + length + 1
    for i, r in enumerate(records):
        assert r.seq == i + 1, f"sequence gap at record {i}: {r.seq}"
    return records


def output(records, phase=None, stream="o"):
    """The concatenated bytes of one stream, optionally for one phase."""
    return b"".join(r.data for r in records
                    if r.type == stream and (phase is None or r.phase == phase))


def result(records):
    assert records and records[-1].type == "R", f"last record is not a result: {records[-1:]}"
    return records[-1]


def wait_for_spool(rundir, needle, alive=lambda: True, timeout=60):
    """Waits until needle is in the run directory's spool; fails early once
    alive() says the worker is gone (timeout only stops a hung test)."""
    import time
    spool = os.path.join(rundir, "spool")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(spool, "rb") as f:
                if needle in f.read():
                    return
        except FileNotFoundError:
            pass
        assert alive(), f"the worker ended before {needle!r} was in the spool"
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} did not appear in the spool within {timeout}s")
