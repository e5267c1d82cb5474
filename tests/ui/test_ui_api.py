"""The server side of the web UI (issue 14), without a browser: the embedded
files with their security headers, and a log read a page at a time
(GET /runs/ID/logs?offset=&limit=), which is what keeps a 100 MB log from
freezing a tab."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
from davit_fixtures import server, tmp_path  # noqa: E402,F401
from davit_harness import Launcher, spool_record  # noqa: E402

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def running_run(server):
    """A run on a test launcher, running: (the launcher, the run's id)."""
    token, key = server.create_pool("p")
    la = Launcher(server, token, key)
    la.register()
    rid = server.submit("p")
    la.poll_until(lambda m: m["type"] == "run")
    la.event(rid, "running", phase="plan")
    return la, rid


def test_files_are_served_with_a_strict_policy(server):
    for path, ctype in (("/", "text/html"), ("/ui/app.js", "text/javascript"),
                        ("/ui/app.css", "text/css"), ("/ui/favicon.svg", "image/svg+xml")):
        st, body, h = server.request("GET", path, token=None)
        assert st == 200, path
        assert h["Content-Type"].startswith(ctype), (path, h)
        assert h["Content-Security-Policy"] == CSP
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "no-referrer"
        assert len(body) > 100
    page = server.request("GET", "/", token=None)[1].decode()
    # No inline script or style, and nothing from another host.
    assert "<script>" not in page and "style=" not in page and "http" not in page.replace(
        'http-equiv', '')
    st, body, _ = server.request("GET", "/ui/nothing.js", token=None)
    assert st == 404 and "nothing" not in str(body)


def test_log_pages_end_on_records_and_chain(server):
    la, rid = running_run(server)
    lines = ["line %05d %s" % (i, "x" * 200) for i in range(3000)]
    data = spool_record("S", 1, b"", "plan") + b"".join(
        spool_record("o", i + 2, lines[i] + "\n", "plan") for i in range(len(lines)))
    st, body, _ = la.log(rid, 0, data)
    assert st == 200 and body["next_offset"] == len(data), body
    la.event(rid, "result", outcome="finished", exit_code=0, reason="done")
    whole = server.request("GET", "/api/v1/runs/%d/logs" % rid)[1].decode()
    # Pages of about 64 KiB of stored bytes, each ending on a record.
    offset, text, pages = 0, "", 0
    while True:
        st, body, h = server.request("GET", "/api/v1/runs/%d/logs?offset=%d&limit=65536" % (rid, offset))
        assert st == 200, body
        assert int(h["X-Davit-Log-Bytes"]) == len(data)
        nxt = int(h["X-Davit-Next-Offset"])
        assert nxt > offset and nxt - offset < 65536 + 1024, (offset, nxt)
        text += body.decode()
        pages += 1
        offset = nxt
        if offset >= len(data):
            break
    assert pages >= 10
    assert text == whole
    # A raw page is exactly the bytes asked for.
    st, body, h = server.request("GET", "/api/v1/runs/%d/logs?format=raw&offset=10&limit=100" % rid)
    assert st == 200 and body == data[10:110] and h["X-Davit-Next-Offset"] == "110"
    for bad in ("limit=0", "limit=x", "limit=99999999", "limit=10&follow=1"):
        st, body, _ = server.request("GET", "/api/v1/runs/%d/logs?%s" % (rid, bad))
        assert st == 400 and "limit" in body["error"], (bad, body)


def test_log_phases_summary(server):
    """format=phases: each phase with the offset where a text page can start,
    its times and its outcome, including a phase that ended without starting
    (skipped)."""
    la, rid = running_run(server)
    # Before the first byte of the log (a run just started).
    st, body, _ = server.request("GET", "/api/v1/runs/%d/logs?format=phases" % rid)
    assert st == 200 and body["phases"] == [] and body["log_bytes"] == 0, body
    a = spool_record("S", 1, b"", "plan") + spool_record("o", 2, "x" * 5000 + "\n", "plan")
    b = spool_record("E", 3, "outcome=failed exit=2 duration_ms=31", "plan")
    c = spool_record("S", 4, b"", "apply") + spool_record("E", 5, "outcome=skipped exit=-1 duration_ms=0", "apply")
    data = a + b + c
    assert la.log(rid, 0, data)[0] == 200
    st, body, _ = server.request("GET", "/api/v1/runs/%d/logs?format=phases" % rid)
    assert st == 200, body
    assert body["log_bytes"] == len(data) and body["corrupt"] is False
    plan, apply_ = body["phases"]
    assert plan["name"] == "plan" and plan["offset"] == 0
    assert (plan["outcome"], plan["exit_code"], plan["duration_ms"]) == ("failed", 2, 31)
    assert plan["started_at"].endswith("Z") and plan["ended_at"]
    assert apply_["name"] == "apply" and apply_["offset"] == len(a + b)
    assert apply_["outcome"] == "skipped" and apply_["exit_code"] == -1
    # A text page from a phase's offset starts with that phase.
    st, page, _ = server.request("GET", "/api/v1/runs/%d/logs?offset=%d&limit=100" % (rid, apply_["offset"]))
    assert page.decode().startswith("=== phase apply\n")
    st, body, _ = server.request("GET", "/api/v1/runs/%d/logs?format=bogus" % rid)
    assert st == 400 and "format" in body["error"]
    assert server.request("GET", "/api/v1/runs/999/logs?format=phases")[0] == 404
