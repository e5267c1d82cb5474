"""The launcher's /metrics and /healthz (issue 15, DAVIT_METRICS_LISTEN).

/metrics must parse as Prometheus text (checked by the small strict parser
below: every sample's family has one TYPE line before it, names and labels
are well formed, values are numbers, no series twice) and its counters must
move with runs. /healthz answers 503 before registration, 200 while
registered and polling, 503 once the server has gone away.

One server for the module, which the last test stops; test_daemon's rules.
"""

import base64
import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from test_daemon import LAUNCHER, daemon, engine, submit, wait_for  # noqa: E402,F401
from launcher_box import ENDED, box, clean_env, cli_pool  # noqa: E402,F401

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
SAMPLE = re.compile(r"(%s)(?:\{(%s(?:,%s)*)?\})? (\S+)(?: -?\d+)?" % (NAME, LABEL, LABEL))
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_prometheus(text):
    """{(name, frozenset(labels)): value}; raises AssertionError on anything malformed."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, out = {}, {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            assert re.fullmatch(r"# HELP %s .*" % NAME, line), (n, line)
        elif line.startswith("# TYPE "):
            m = re.fullmatch(r"# TYPE (%s) (\w+)" % NAME, line)
            assert m and m.group(2) in TYPES, (n, line)
            assert m.group(1) not in types, ("TYPE twice", n, line)
            types[m.group(1)] = m.group(2)
        elif line.startswith("#") or not line.strip():
            continue
        else:
            m = SAMPLE.fullmatch(line)
            assert m, ("not a sample line", n, line)
            name, labels, value = m.group(1), m.group(2), m.group(3)
            assert name in types, ("sample before its TYPE", n, line)
            v = float(value)  # also "+Inf", "NaN"
            if types[name] == "counter":
                assert v >= 0 and not math.isnan(v), (n, line)
            key = (name, frozenset(re.findall(LABEL, labels or "")))
            assert key not in out, ("series twice", n, line)
            out[key] = v
    return out


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode(), r.getheader("Content-Type", "")
    finally:
        conn.close()


def metrics(port):
    st, body, ctype = get(port, "/metrics")
    assert st == 200 and ctype.startswith("text/plain; version=0.0.4"), (st, ctype)
    return parse_prometheus(body)


def value(m, name, **labels):
    key = (name, frozenset('%s="%s"' % kv for kv in labels.items()))
    assert key in m, (name, labels, sorted(m))
    return m[key]


def metrics_port(d):
    """The port the launcher logged (it listens on port 0)."""
    m = wait_for(lambda: re.search(r"serving /metrics and /healthz.*127\.0\.0\.1:(\d+)", d.log()),
                 "the metrics listener")
    return int(m.group(1))


def test_healthz_is_503_before_registration(box):
    """A server that accepts connections but never answers: the launcher
    waits in its registration, and /healthz says 503 meanwhile."""
    token, key_b64 = cli_pool(box, "mute")
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    try:
        t = json.loads(base64.b64decode(token))
        t["endpoint"] = "http://127.0.0.1:%d" % mute.getsockname()[1]
        token = base64.b64encode(json.dumps(t).encode()).decode()
        d = daemon(box, token, key_b64, name="mute",
                   env={"DAVIT_METRICS_LISTEN": "127.0.0.1:0"}).start(wait=False)
        port = metrics_port(d)
        assert get(port, "/healthz")[0] == 503
        assert value(metrics(port), "davit_launcher_up") == 0
        d.proc.kill()
        d.wait()
    finally:
        mute.close()


def test_metrics_listen_is_checked_at_start(box):
    base = dict(clean_env(), DAVIT_STATE_DIR=os.path.join(box["tmp"], "opt-state"))
    cases = [
        ({"DAVIT_METRICS_LISTEN": "0.0.0.0:9400"},
         "DAVIT_METRICS_LISTEN: 0.0.0.0 is not a loopback address; set "
         "DAVIT_METRICS_LISTEN_ANY=1"),
        ({"DAVIT_METRICS_LISTEN": "9400"}, "DAVIT_METRICS_LISTEN: expected host:port"),
        ({"DAVIT_METRICS_LISTEN": "127.0.0.1:99999"}, "DAVIT_METRICS_LISTEN: expected host:port"),
    ]
    for extra, needle in cases:
        p = subprocess.run([LAUNCHER], env=dict(base, **extra), capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2, (extra, p.stderr)
        assert needle in p.stderr, (extra, p.stderr)


def test_metrics_parse_and_move_with_runs_and_healthz_follows_the_server(box):
    server = box["server"]
    token, key_b64 = cli_pool(box, "met")
    d = daemon(box, token, key_b64, env={"DAVIT_METRICS_LISTEN": "127.0.0.1:0"}).start()
    port = metrics_port(d)
    assert get(port, "/healthz")[0] == 200
    m0 = metrics(port)
    assert value(m0, "davit_launcher_runs_total", outcome="finished") == 0
    assert value(m0, "davit_launcher_runs_active") == 0
    assert value(m0, "davit_launcher_up") == 1
    for name in ("davit_launcher_spool_shipped_bytes_total", "davit_launcher_ship_lag_bytes",
                 "davit_launcher_docker_errors_total", "davit_launcher_session_renewals_total"):
        value(m0, name)

    rid = submit(server, "plan=echo started; sleep 300", pool="met")
    server.wait_state(rid, ("running",))
    assert value(metrics(port), "davit_launcher_runs_active") == 1
    server.cli("run", "cancel", str(rid))
    assert server.wait_state(rid, ENDED)["state"] == "canceled"
    ok = submit(server, "plan=seq 1 2000", pool="met")
    bad = submit(server, "plan=echo failing; exit 3", pool="met")
    assert server.wait_state(ok, ENDED)["state"] == "finished"
    assert server.wait_state(bad, ENDED)["state"] == "failed"
    # Counted when reported, which the server's state shows first, and a run is no longer
    # active once its thread has ended, just after: wait for both.
    wait_for(lambda: (lambda m: value(m, "davit_launcher_runs_total", outcome="failed") == 1
                      and value(m, "davit_launcher_runs_active") == 0)(metrics(port)),
             "the failed run counted and no run active")
    m = metrics(port)
    assert value(m, "davit_launcher_runs_total", outcome="finished") == 1
    assert value(m, "davit_launcher_runs_total", outcome="canceled") == 1
    assert value(m, "davit_launcher_runs_active") == 0
    assert value(m, "davit_launcher_ship_lag_bytes") == 0
    assert value(m, "davit_launcher_spool_shipped_bytes_total") > len("\n".join(
        str(i) for i in range(1, 2001)))
    # Only GET, only these two paths.
    assert get(port, "/other")[0] == 404

    # The server goes away: the launcher's poll fails and /healthz says so.
    server.stop()
    wait_for(lambda: get(port, "/healthz")[0] == 503, "/healthz to turn 503")
    assert value(metrics(port), "davit_launcher_up") == 0
    d.signal(signal.SIGTERM)  # nothing in hand: it exits
    assert d.wait() == 0, d.log()
