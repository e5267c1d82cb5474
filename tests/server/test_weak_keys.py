"""Pool keys over the API: a CSR with a weak key is refused with 400 and a one-line reason, both
when a pool is created and when its key is reset. Every key is made by the real openssl command."""

import subprocess

import pytest

from davit_harness import openssl_key

# (name, openssl genpkey options, words the error must contain)
WEAK = [
    ("rsa-e3", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-pkeyopt", "rsa_keygen_pubexp:3"],
     "public exponent 3: davit needs 65537"),
    ("rsa-1024", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
     "has 1024 bits: davit needs at least 2048"),
    ("ec-explicit", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-pkeyopt", "ec_param_enc:explicit"],
     "explicit curve parameters"),
]


def weak_csr(tmp_path, name, genpkey):
    key = str(tmp_path / (name + ".key"))
    csr = str(tmp_path / (name + ".csr"))
    subprocess.run(["openssl", "genpkey", *genpkey, "-out", key], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=davit-test", "-out", csr],
                   check=True, capture_output=True)
    with open(csr) as f:
        return f.read()


@pytest.mark.parametrize("name,genpkey,words", WEAK, ids=[w[0] for w in WEAK])
def test_weak_key_refused(server, tmp_path, name, genpkey, words):
    csr = weak_csr(tmp_path, name, genpkey)
    st, data, _ = server.request("POST", "/api/v1/pools", {"name": "weak", "csr": csr})
    assert st == 400, (st, data)
    assert words in data["error"] and "\n" not in data["error"], data
    assert server.ok("GET", "/api/v1/pools")["pools"] == []
    # A good pool cannot be moved to the weak key either.
    server.create_pool("good")
    st, data, _ = server.request("POST", "/api/v1/pools/good/reset", {"csr": csr})
    assert st == 400 and words in data["error"], (st, data)


def test_good_keys_still_accepted(server, tmp_path):
    for kind in ["rsa", "ec", "ed25519"]:
        _, csr = openssl_key(str(tmp_path), kind, "good-" + kind)
        with open(csr) as f:
            server.ok("POST", "/api/v1/pools", {"name": "good-" + kind, "csr": f.read()}, status=201)
