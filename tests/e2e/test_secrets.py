"""Sealed secrets and signed run specs, end to end (issue 15, docs/secrets.md).

One server and two launchers for the module: pool "sec" (EC P-256 key) runs sealed secrets, pool
"sig" (RSA key) runs only specs signed by a key in its DAVIT_SUBMITTER_KEYS file. Sealing and
signing are done twice: by the davit CLI, and by the small Python implementation below, written
from docs/secrets.md alone, so that the document is exact enough for another client.

Every run that must fail is checked to end `failed` with its reason, without a container: the
Engine's own event log shows no container created by the launcher while it was handled.
"""
import base64
import hashlib
import json
import os
import secrets as pysecrets
import subprocess
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from davit_e2e import DAVIT, IMAGE, LAUNCHER, Stack, make_pool, wait_for

SCHEME = b"davit-seal-v1"


# --- docs/secrets.md, implemented independently ---

def key_id(pub):
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def seal(pool, nonce, secrets):
    """The "sealed" member for secrets, sealed to an EC pool's public key (pool: GET /pools/NAME)."""
    pub = serialization.load_pem_public_key(pool["public_key"].encode())
    point = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    eph = ec.generate_private_key(ec.SECP256R1())
    epk, ppk = eph.public_key().public_bytes(*point), pub.public_bytes(*point)
    z = eph.exchange(ec.ECDH(), pub)
    run_key = HKDF(hashes.SHA256(), 32, salt=None, info=SCHEME + b"\0" + epk + ppk).derive(z)
    kid = key_id(pub)
    assert kid == pool["key_id"]
    boxes = {}
    for name, value in secrets.items():
        aad = b"\0".join([SCHEME, kid.encode(), pool["id"].encode(), nonce.encode(), name.encode()])
        iv = os.urandom(12)
        boxes[name] = base64.b64encode(iv + AESGCM(run_key).encrypt(iv, value.encode(), aad)).decode()
    return {"alg": "ecdh-es-p256-hkdf-sha256/a256gcm", "key_id": kid,
            "key": base64.b64encode(epk).decode(), "secrets": boxes}


def canonical(spec):
    """RFC 8785 for a spec without reals: Python's sorted, compact, non-ASCII-as-is dump."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(spec, pool_id, key):
    """spec with its "signature": Ed25519 over "davit-spec-v1" NUL pool id NUL canonical JSON."""
    body = {k: v for k, v in spec.items() if k != "signature"}
    msg = b"davit-spec-v1\0" + pool_id.encode() + b"\0" + canonical(body)
    return {**body, "signature": base64.b64encode(key.sign(msg)).decode()}


# --- the module's stack ---

def api(srv, path):
    req = urllib.request.Request(srv.url + path, headers={"Authorization": f"Bearer {srv.token}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read()


def post_run(srv, spec):
    req = urllib.request.Request(srv.url + "/api/v1/runs", data=json.dumps(spec).encode(),
                                 headers={"Authorization": f"Bearer {srv.token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["id"]


def docker_time():
    return subprocess.run(["date", "+%s.%N"], capture_output=True, text=True).stdout.strip()


def containers_created(la, since, until):
    """The containers la created between two times, from the Engine's own event log."""
    out = subprocess.run(["docker", "events", "--since", since, "--until", until,
                          "--filter", "type=container", "--filter", "event=create",
                          "--filter", f"label=io.davit.launcher={la.identity()}",
                          "--format", "{{.Actor.ID}}"],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


class Module:
    pass


def ec_csr(tmp, name):
    """An EC P-256 key and its CSR, as docs/launcher.md makes them."""
    key, csr = os.path.join(tmp, name + ".key"), os.path.join(tmp, name + ".csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/CN=" + name], check=True, capture_output=True)
    return key, csr


def ec_pool(srv, tmp, name):
    key, csr = ec_csr(tmp, name)
    return srv.cli("pool", "create", name, "--csr", csr).stdout.decode().strip(), key


@pytest.fixture(scope="module")
def m():
    s = Stack()
    srv = s.server
    t = Module()
    t.stack, t.srv, t.tmp = s, srv, s.tmp
    token, t.sec_key = ec_pool(srv, s.tmp, "sec")
    t.sec = s.launcher("sec", token, t.sec_key)
    # The submitter keys: k1 is trusted by pool sig's launcher, k2 is not.
    t.k1, t.k2 = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    t.k1_pem = os.path.join(s.tmp, "k1.pem")
    with open(t.k1_pem, "wb") as f:
        f.write(t.k1.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    keys = os.path.join(s.tmp, "submitters.pem")
    with open(keys, "wb") as f:
        f.write(t.k1.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(keys, 0o600)
    token, key = make_pool(srv, s.tmp, "sig")
    t.sig = s.launcher("sig", token, key, DAVIT_SUBMITTER_KEYS=keys)
    wait_for(lambda: srv.workers("sec") and srv.workers("sig"), what="the launchers")
    t.pools = {n: json.loads(api(srv, "/api/v1/pools/" + n)) for n in ("sec", "sig")}
    yield t
    leftovers = s.close()
    assert not leftovers, f"containers left behind: {leftovers}"


def spec(*phases, **extra):
    return {"image": IMAGE, "phases": [{"name": f"p{i}", "commands": [c]}
                                       for i, c in enumerate(phases)], **extra}


def nonce():
    return pysecrets.token_hex(16)


def ended_without_container(m, la, submit):
    """Submits with submit(), waits for the end, and checks that no container was created."""
    since = docker_time()
    rid = submit()
    run = m.srv.wait_ended(rid, limit=60)
    assert containers_created(la, since, docker_time()) == []
    return run


# --- the tests ---

def test_secret_leak_check(m):
    """Three secrets sealed by the CLI: one printed in a split write, one given to ::add-mask::.
    The run sees the right values; afterwards no plaintext is anywhere the issue lists."""
    srv, la = m.srv, m.sec
    values = {f"S{i}": f"leak{i}-" + pysecrets.token_hex(12) for i in (1, 2, 3)}
    digests = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in values.items()}
    env = {**srv.env(), **values}  # --secret NAME: the value from the environment
    wait_go = ("i=0; while [ ! -e /mnt/workspace/go ] && [ $i -lt 600 ]; do sleep 0.1;"
               " i=$((i+1)); done")
    p = subprocess.run([DAVIT, "run", "submit", "--pool", "sec", "--image", IMAGE,
                        "--phase", "wait=" + wait_go,
                "--phase", "use=" + "; ".join(
                    [f'printf %s "${k}" | sha256sum' for k in values] +
                    ['printf "S1 is %.5s" "$S1"; sleep 0.3; printf "%s\\n" "${S1#?????}"',
                     'echo "::add-mask::$S2"', 'echo "S2 is $S2"']),
                        "--secret", "S1", "--secret", "S2", "--secret", "S3"],
                       env=env, capture_output=True, check=True, timeout=60)
    rid = int(p.stdout.decode())
    # docker inspect of the container while the run is in it.
    cid = wait_for(lambda: la.containers(all_=False), limit=60, what="the run's container")[0]
    inspect = subprocess.run(["docker", "inspect", cid], capture_output=True, check=True).stdout
    subprocess.run(["docker", "exec", cid, "touch", "/mnt/workspace/go"], check=True)
    run = srv.wait_ended(rid, limit=60)
    assert run["state"] == "finished", run
    log = srv.logs(rid).decode()
    for k, d in digests.items():
        assert d in log, (k, log)  # the run saw the right value
    # Printed, so that finding them nowhere means something: masked in the log.
    assert "S1 is ***" in log and "::add-mask::***" in log and "S2 is ***" in log, log
    # Every place the plaintext must not be.
    places = {"docker inspect": inspect, "server log": srv.log().encode(),
              "launcher log": la.log().encode(), "metrics": api(srv, "/metrics")}
    for path in ("/api/v1/runs/%d" % rid, "/api/v1/runs?pool=sec", "/api/v1/runs",
                 "/api/v1/runs/%d/logs" % rid, "/api/v1/runs/%d/logs?format=raw" % rid,
                 "/api/v1/pools/sec", "/api/v1/workers"):
        places["GET " + path] = api(srv, path)
    for root in (srv.data, la.state):
        for d, _, names in os.walk(root):
            for n in names:
                with open(os.path.join(d, n), "rb") as f:
                    places[os.path.join(d, n)] = f.read()
    assert any(n.endswith("davit.db-wal") for n in places), "the WAL is searched too"
    hits = [(k, where) for k, v in values.items() for where, data in places.items()
            if v.encode() in data]
    assert hits == []


def test_sealed_by_another_client_opens(m):
    """Sealed by the Python implementation of docs/secrets.md: the launcher opens it."""
    n = nonce()
    rid = post_run(m.srv, spec('printf %s "$TOKEN" | sha256sum', run_nonce=n,
                               sealed=seal(m.pools["sec"], n, {"TOKEN": "py-sealed"}), pool="sec"))
    run = m.srv.wait_ended(rid, limit=60)
    assert run["state"] == "finished", run
    assert hashlib.sha256(b"py-sealed").hexdigest() in m.srv.logs(rid).decode()


def test_tampered_ciphertext_fails(m):
    n = nonce()
    sealed = seal(m.pools["sec"], n, {"TOKEN": "tamper-me"})
    box = bytearray(base64.b64decode(sealed["secrets"]["TOKEN"]))
    box[15] ^= 1
    sealed["secrets"]["TOKEN"] = base64.b64encode(bytes(box)).decode()
    run = ended_without_container(m, m.sec, lambda: post_run(
        m.srv, spec("true", run_nonce=n, sealed=sealed, pool="sec")))
    assert run["state"] == "failed" and "secrets cannot be opened" in run["reason"], run


def test_ciphertext_moved_to_another_run_fails(m):
    """The sealed secrets of a run that ran, put into a new run. (The server keeps no sealed block
    with an ended run, so the test keeps its own copy.)"""
    first_nonce = nonce()
    sealed = seal(m.pools["sec"], first_nonce, {"TOKEN": "moved"})
    first = m.srv.wait_ended(post_run(m.srv, spec("true", run_nonce=first_nonce, sealed=sealed,
                                                  pool="sec")), limit=60)
    assert first["state"] == "finished", first
    assert "sealed" not in first["spec"]
    run = ended_without_container(m, m.sec, lambda: post_run(
        m.srv, spec("true", run_nonce=nonce(), sealed=sealed, pool="sec")))
    assert run["state"] == "failed" and "sealed for another run" in run["reason"], run


def test_run_nonce_is_unique(m):
    """A run nonce names one run: a second spec with it is refused (docs/secrets.md)."""
    body = spec("true", run_nonce=nonce(), pool="rst-none")
    make_pool(m.srv, m.tmp, "rst-none")  # no launcher: the first run just waits
    post_run(m.srv, body)
    with pytest.raises(urllib.error.HTTPError) as e:
        post_run(m.srv, body)
    assert e.value.code == 409


def test_plaintext_secrets_refused_without_the_flag(m):
    with pytest.raises(urllib.error.HTTPError) as e:
        post_run(m.srv, spec("true", secrets={"A": "plain"}, pool="sec"))
    assert e.value.code == 400
    assert b"--allow-plaintext-secrets" in e.value.read()


def test_reset_pool_fails_its_queued_sealed_runs(m):
    """No launcher serves pool rst: the run waits, sealed to the old key, until the reset."""
    srv = m.srv
    ec_pool(srv, m.tmp, "rst")
    pool = json.loads(api(srv, "/api/v1/pools/rst"))
    n = nonce()
    rid = post_run(srv, spec("true", run_nonce=n, sealed=seal(pool, n, {"A": "old-key"}),
                             pool="rst"))
    assert srv.run(rid)["state"] == "queued"
    _, csr = ec_csr(m.tmp, "rst2")
    srv.cli("pool", "reset", "rst", "--csr", csr)
    run = srv.run(rid)
    assert run["state"] == "failed" and "pool was reset" in run["reason"], run


def test_signed_spec_from_the_cli_runs(m):
    p = m.srv.cli("run", "submit", "--pool", "sig", "--image", IMAGE, "--phase", "a=echo signed",
                  "--secret", "K=v", "--sign-key", m.k1_pem)
    run = m.srv.wait_ended(int(p.stdout.decode()), limit=60)
    assert run["state"] == "finished", run


@pytest.mark.parametrize("case", ["unsigned", "tampered image", "tampered phase", "wrong key"])
def test_bad_signatures_fail(m, case):
    pool_id = m.pools["sig"]["id"]
    s = spec("echo hello", run_nonce=nonce())
    if case == "unsigned":
        reason = "not signed"
    elif case == "wrong key":
        s, reason = sign(s, pool_id, m.k2), "none of the 1 keys"
    else:
        s, reason = sign(s, pool_id, m.k1), "altered after signing"
        if case == "tampered image":
            s["image"] = "busybox:latest"
        else:
            s["phases"][0]["commands"] = ["echo evil"]
    run = ended_without_container(m, m.sig, lambda: post_run(m.srv, {**s, "pool": "sig"}))
    assert run["state"] == "failed" and reason in run["reason"], run


def test_unusable_submitter_keys_stop_the_launcher(m):
    """A keys file that others may write would let them choose what runs: refused at the start."""
    keys = os.path.join(m.tmp, "open-submitters.pem")
    with open(keys, "wb") as f:
        f.write(m.k1.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(keys, 0o666)
    token, key = make_pool(m.srv, m.tmp, "sig-bad")
    la = m.stack.launcher("sig-bad", token, key, DAVIT_SUBMITTER_KEYS=keys)
    assert la.wait(timeout=60) == 2
    assert "writable by group or others" in la.log()


def test_exec_refuses_sealed_secrets(m):
    """davit-launcher exec has no pool to open them with: it says so rather than run without."""
    n = nonce()
    path = os.path.join(m.tmp, "sealed-spec.json")
    with open(path, "w") as f:
        json.dump(spec("true", run_nonce=n, sealed=seal(m.pools["sec"], n, {"A": "x"})), f)
    p = subprocess.run([LAUNCHER, "exec", path], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "DAVIT_STATE_DIR": os.path.join(m.tmp, "exec-state")})
    assert p.returncode == 2 and "only the daemon opens sealed secrets" in p.stderr, p


def test_signed_by_another_client_runs(m):
    s = sign(spec("echo py-signed", run_nonce=nonce()), m.pools["sig"]["id"], m.k1)
    run = m.srv.wait_ended(post_run(m.srv, {**s, "pool": "sig"}), limit=60)
    assert run["state"] == "finished", run
