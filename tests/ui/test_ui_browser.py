"""The web UI (issue 14) in a real headless Chromium, driven by Debian's
chromium-driver through python3-selenium, against a real davit server, a
real davit-launcher and the real dockerd.

One server, one browser and one launcher for the whole module (the tests
run in file order, each going on from the last), so that the file stays
well under a minute and a half. Screenshots of every main page go to
BUILD/ui-screenshots/ (docs/ui.md shows them)."""
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from davit_e2e import BUILD, IMAGE, Launcher, Server, wait_for  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = os.path.join(BUILD, "ui-screenshots")
CYCLED = 75  # DAEMON_EXIT_CYCLED: the launcher's exit code when its pool is cycled
# A run that prints a line every 200 ms, for about 20 s unless canceled.
TICKS = "tick=echo token=$TOKEN; i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo tick-$i; sleep 0.2; done"


@pytest.fixture(scope="module")
def env():
    tmp = tempfile.mkdtemp(prefix="davit-ui-")
    server = Server(tmp)
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    os.makedirs(SHOTS, exist_ok=True)
    e = {"tmp": tmp, "server": server, "driver": driver, "launchers": []}
    try:
        yield e
    finally:
        driver.quit()
        for la in e["launchers"]:
            la.stop()
            la.remove_containers()
        code = server.stop()
        log = server.log()
        shutil.rmtree(tmp, ignore_errors=True)
    # The server ran under the sanitizers: they must have found nothing.
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-4000:]
    assert code == 0, (code, log[-4000:])


def until(driver, pred, what, limit=30):
    """Waits for a condition the page promises; limit only stops a hung test.
    A live page replaces its elements as it updates: a stale one is looked up again."""
    return WebDriverWait(driver, limit, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException, IndexError)).until(
        lambda d: pred(d), message=f"waiting for {what}")


def css(driver, sel):
    return driver.find_elements(By.CSS_SELECTOR, sel)


def click(driver, sel, what):
    """Clicks the first element matching sel once there is one. A live view
    replaces its rows when the change feed says something moved, so an element
    found a moment ago may be gone by the click: it is looked up again."""
    until(driver, lambda d: css(d, sel)[0].click() or True, what)


def text(driver, sel):
    """The text of the first element matching sel, read in one step (a live
    page may replace the element between a lookup and a read)."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null", sel)


def shot(driver, name):
    """A screenshot of the whole page (the window grown to its height)."""
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], max(size["height"], min(height + 100, 2400)))
    try:
        driver.save_screenshot(os.path.join(SHOTS, name + ".png"))
    finally:
        driver.set_window_size(size["width"], size["height"])


def go(env, hash_):
    env["driver"].get(env["server"].url + "/" + hash_)


def page_fetch(driver, method, path, headers=None):
    """A fetch from inside the page (its cookie goes along): (status, body)."""
    return driver.execute_async_script(
        """const [m, p, h, done] = arguments;
           fetch(p, {method: m, headers: h, credentials: 'same-origin'})
             .then(async (r) => done([r.status, await r.text()]), (e) => done([0, String(e)]));""",
        method, path, headers or {})


def sign_in(driver, token):
    until(driver, lambda d: css(d, "#token"), "the sign-in form")
    box = css(driver, "#token")[0]
    box.clear()
    box.send_keys(token)
    css(driver, "#signin")[0].click()


def confirm(driver):
    until(driver, lambda d: css(d, "dialog#confirm[open] #confirm-yes"), "the confirmation")
    css(driver, "#confirm-yes")[0].click()


def test_sign_in(env):
    d = env["driver"]
    go(env, "")
    sign_in(d, "dva_not-a-real-token")
    msg = until(d, lambda d: css(d, "#signin-msg .msg"), "the refusal")[0]
    assert "not valid" in msg.text
    assert css(d, "#nav")[0].get_attribute("hidden") is not None
    shot(d, "signin")
    # By keyboard: Tab from the field reaches the button, Enter submits.
    box = css(d, "#token")[0]
    box.clear()
    box.send_keys(env["server"].token)
    box.send_keys(Keys.TAB)
    assert d.switch_to.active_element.get_attribute("id") == "signin"
    box.send_keys(Keys.ENTER)
    until(d, lambda d: d.current_url.endswith("#/pools") and css(d, "h1") and
          css(d, "h1")[0].text == "Pools", "the pools page")
    assert "admin" in css(d, "#who-name")[0].text
    # The session is a cookie the page's script cannot read, never the token.
    assert d.execute_script("return document.cookie") == ""
    cookie = d.get_cookie("davit_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert env["server"].token not in cookie["value"]


def test_create_pool_and_copy_its_token(env):
    d, tmp = env["driver"], env["tmp"]
    key, csr = os.path.join(tmp, "web.key"), os.path.join(tmp, "web.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=web"],
                   check=True, capture_output=True)
    css(d, "details.create summary")[0].click()
    css(d, "#pool-name")[0].send_keys("web")
    # Uploaded as a file, as a user would.
    css(d, "#pool-csr-file")[0].send_keys(csr)
    until(d, lambda d: "BEGIN CERTIFICATE REQUEST" in css(d, "#pool-csr")[0].get_attribute("value"),
          "the uploaded CSR in the form")
    css(d, "#create-submit")[0].click()
    box = until(d, lambda d: css(d, "#new-token"), "the new token")[0]
    token = box.get_attribute("value")
    assert len(token) > 40
    d.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": env["server"].url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    css(d, "#copy-token")[0].click()
    until(d, lambda d: "Copied" in css(d, "#create-result [role=status]")[0].text, "the copy")
    assert d.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], () => arguments[0](null))") == token
    row = until(d, lambda d: css(d, "tr[data-pool='web']"), "the pool's row")[0]
    assert [b.text for b in row.find_elements(By.CSS_SELECTOR, "button")] == ["Cycle", "Reset", "Delete"]
    shot(d, "pools-create")
    env["token"], env["key"] = token, key


def test_launcher_appears_without_reload(env):
    d = env["driver"]
    go(env, "#/pools/web/workers")
    until(d, lambda d: css(d, "#tab-body .empty"), "the empty workers tab")
    d.execute_script("window.__same_page = 1")
    la = Launcher(env["tmp"], "web", env["token"], env["key"], DAVIT_METADATA_zone="lab",
                  DAVIT_LAUNCHER_CONCURRENCY=1)
    env["launchers"].append(la)
    env["launcher"] = la
    row = until(d, lambda d: css(d, "tr[data-worker][data-state='idle']"), "the launcher's row")[0]
    assert d.execute_script("return window.__same_page") == 1  # no reload
    assert "zone=lab" in row.text and "amd64" in row.text
    env["worker"] = row.get_attribute("data-worker")
    shot(d, "pool-workers")


def test_live_log_queue_and_cancel(env):
    d, server = env["driver"], env["server"]
    rid = int(server.cli("run", "submit", "--pool", "web", "--image", IMAGE, "--phase", TICKS,
                         "--phase", "after=echo never", "--secret", "TOKEN=s3cr3t-value")
              .stdout.decode().strip())
    pending = int(server.cli("run", "submit", "--pool", "web", "--image", IMAGE,
                             "--phase", "one=echo queued-behind").stdout.decode().strip())
    go(env, f"#/runs/{rid}")
    # Lines arrive while the run runs: more of them, with no reload.
    first = until(d, lambda d: [p for p in css(d, "#log pre") if "tick-3" in p.text], "tick-3")[0]
    until(d, lambda d: "tick-8" in first.text, "tick-8 after tick-3")
    # Still under way (the launcher may report "running" after the first lines).
    assert server.run(rid)["state"] in ("preparing", "running")
    assert text(d, "#run-state") in ("preparing", "running")
    assert "tick" in text(d, "#phases") and text(d, "#live") == "live"
    # The secret shows as the API shows it.
    assert "token=***" in text(d, "#log") and "s3cr3t" not in d.page_source
    shot(d, "run-live")
    go(env, "#/pools/web/queue")
    until(d, lambda d: css(d, f"tr[data-run='{rid}'][data-state='running']") and
          css(d, f"tr[data-run='{pending}'][data-state='queued']"), "the queue")
    assert text(d, f"tr[data-run='{pending}'] td") == "1"  # its position
    shot(d, "pool-queue")
    go(env, f"#/runs/{rid}")
    click(d, "#cancel", "the cancel button")
    confirm(d)
    until(d, lambda d: text(d, "#run-state") == "canceled",
          "the run to show canceled", limit=60)
    assert server.run(rid)["state"] == "canceled"
    assert not css(d, "#cancel")
    server.wait_ended(pending)
    shot(d, "run-canceled")


def test_drain_and_undrain(env):
    d, server = env["driver"], env["server"]
    go(env, "#/pools/web/workers")
    sel = f"tr[data-worker='{env['worker']}']"
    click(d, sel + "[data-state='idle'] [data-action='drain']", "Drain")
    until(d, lambda d: css(d, sel + "[data-state='draining'] [data-action='undrain']"), "Undrain")
    assert server.workers("web")[0]["state"] == "draining"
    # The filters: by status, and by metadata.
    Select(css(d, "#worker-state")[0]).select_by_value("idle")
    until(d, lambda d: not css(d, sel) and css(d, "#tab-body .empty"), "no idle worker")
    Select(css(d, "#worker-state")[0]).select_by_value("drained")
    css(d, "#worker-tag")[0].send_keys("zone=la")
    until(d, lambda d: css(d, sel), "the drained worker in zone lab")
    css(d, "#worker-tag")[0].send_keys("x")
    until(d, lambda d: not css(d, sel), "no worker in zone lax")
    css(d, "#worker-tag")[0].send_keys(Keys.BACKSPACE * 8)
    Select(css(d, "#worker-state")[0]).select_by_value("")
    until(d, lambda d: css(d, sel), "the worker again")
    shot(d, "pool-drained")
    click(d, sel + " [data-action='undrain']", "Undrain")
    until(d, lambda d: css(d, sel + "[data-state='idle'] [data-action='drain']"), "idle again")
    assert server.workers("web")[0]["state"] == "idle"


def test_runs_page_filters(env):
    d = env["driver"]
    go(env, "#/runs")
    until(d, lambda d: len(css(d, "tr[data-run]")) >= 2, "the runs")
    shot(d, "runs")
    go(env, "#/runs?state=canceled")
    until(d, lambda d: css(d, "tr[data-run]") and
          all(r.get_attribute("data-state") == "canceled" for r in css(d, "tr[data-run]")),
          "only canceled runs")
    d.set_window_size(390, 844)
    go(env, "#/pools/web/workers")
    until(d, lambda d: css(d, "tr[data-worker]"), "the workers at 390 px")
    shot(d, "pool-workers-390")
    go(env, "#/runs/1")
    until(d, lambda d: text(d, "#run-state") == "canceled" and css(d, "#log pre"), "run 1 at 390 px")
    shot(d, "run-390")
    d.set_window_size(1280, 900)


def test_big_log_is_paged(env):
    """A finished log is shown a page (1 MiB stored) at a time: the tab never
    holds the whole of a big log, and the pages follow each other."""
    d, server = env["driver"], env["server"]
    rid = int(server.cli("run", "submit", "--pool", "web", "--image", IMAGE,
                         "--phase", "big=seq 1 400000").stdout.decode().strip())
    run = server.wait_ended(rid)
    assert run["state"] == "finished" and run["log_bytes"] > 2 * 1024 * 1024, run
    go(env, f"#/runs/{rid}")
    until(d, lambda d: css(d, "#log-next"), "the log's pager")
    seen = 0
    for page in range(10):
        body = text(d, "#log")
        assert len(body) < 1200 * 1024  # one page, not the log
        nums = [int(x) for x in body.splitlines() if x.isdigit()]
        # No line left out (the one a page's end splits shows on both pages).
        assert nums and nums[0] <= seen + 2, (page, nums[:3], seen)
        seen = max(seen, max(nums))
        if page == 0:
            shot(d, "run-paged")
        if not css(d, "#log-next:not([disabled])"):
            break
        before = text(d, "#log")
        css(d, "#log-next")[0].click()
        until(d, lambda d: text(d, "#log") != before, "the next page")
    assert seen == 400000 and page >= 2
    css(d, "#log-prev")[0].click()
    until(d, lambda d: text(d, "#log") != body, "the previous page")
    # The phases' summary covers the whole log, not the page shown.
    row = "#phases tr[data-phase='big']"
    until(d, lambda d: "succeeded" in (text(d, row) or ""), "the phase's outcome")
    click(d, row + " button", "the phase's button")
    until(d, lambda d: text(d, "#log").startswith("big$ seq 1 400000"), "the phase's first page")


def test_csrf_is_required(env):
    d = env["driver"]
    go(env, "#/pools")
    until(d, lambda d: css(d, "tr[data-pool='web']"), "the pools")
    # Signed in, but without the X-CSRF-Token header: refused.
    st, body = page_fetch(d, "POST", "/api/v1/pools/web/cycle", {"Content-Type": "application/json"})
    assert st == 403, body
    # A form on another site posting to the server: refused too (the cookie
    # is SameSite=Strict and the form cannot add the header).
    form = ("<form id=f method=post action='%s/api/v1/pools/web/cycle'>"
            "<input name=a value=b></form><script>f.submit()</script>" % env["server"].url)

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(form.encode())

        def log_message(self, *a):
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        # "localhost" is another site than "127.0.0.1".
        d.get("http://localhost:%d/" % evil.server_address[1])
        until(d, lambda d: "error" in d.page_source, "the server's refusal")
    finally:
        evil.shutdown()
    assert env["launcher"].proc.poll() is None  # not cycled
    assert env["server"].workers("web")[0]["state"] == "idle"


def test_viewer_sees_no_actions(env):
    d, server = env["driver"], env["server"]
    req = urllib.request.Request(server.url + "/api/v1/tokens", method="POST",
                                 data=json.dumps({"name": "watcher", "role": "viewer"}).encode(),
                                 headers={"Authorization": "Bearer " + server.token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        viewer = json.load(resp)["token"]
    go(env, "#/pools")
    until(d, lambda d: css(d, "#signout"), "the sign-out button")[0].click()
    sign_in(d, viewer)
    until(d, lambda d: css(d, "tr[data-pool='web']"), "the pools as a viewer")
    assert "viewer" in css(d, "#who-name")[0].text
    assert not css(d, "[data-action]") and not css(d, "details.create")
    shot(d, "pools-viewer")
    go(env, "#/pools/web/workers")
    until(d, lambda d: css(d, "tr[data-worker]"), "the workers as a viewer")
    assert not css(d, "[data-action]") and not css(d, "button.small")
    csrf = d.execute_async_script(
        "fetch('/api/v1/session').then((r) => r.json()).then((s) => arguments[0](s.csrf))")
    st, body = page_fetch(d, "POST", f"/api/v1/workers/{env['worker']}/drain",
                          {"Content-Type": "application/json", "X-CSRF-Token": csrf})
    assert st == 403, body
    until(d, lambda d: css(d, "#signout"), "the sign-out button")[0].click()
    sign_in(d, server.token)
    until(d, lambda d: "admin" in css(d, "#who-name")[0].text, "the admin session again")


def test_cycle_ends_the_launcher(env):
    d = env["driver"]
    go(env, "#/pools/web/workers")
    until(d, lambda d: css(d, "tr[data-worker][data-state='idle']"), "the idle worker")
    click(d, ".head [data-action='cycle']", "Cycle")
    until(d, lambda d: css(d, "dialog#confirm[open]"), "the confirmation")
    shot(d, "pool-cycle-confirm")
    confirm(d)
    until(d, lambda d: css(d, "#action-msg .msg.ok"), "the cycle's answer")
    assert env["launcher"].wait(timeout=60) == CYCLED, env["launcher"].log()
    until(d, lambda d: not css(d, "tr[data-worker][data-state='idle']"), "the worker to leave idle")
    shot(d, "pool-cycled")


def test_reset_and_delete(env):
    d, tmp = env["driver"], env["tmp"]
    csr = os.path.join(tmp, "web2.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", os.path.join(tmp, "web2.key"), "-out", csr, "-subj", "/CN=web"],
                   check=True, capture_output=True)
    go(env, "#/pools")
    click(d, "tr[data-pool='web'] [data-action='reset']", "Reset")
    box = until(d, lambda d: css(d, "dialog#confirm[open] #reset-csr"), "the CSR box")[0]
    with open(csr) as f:
        box.send_keys(f.read())
    css(d, "#confirm-yes")[0].click()
    token = until(d, lambda d: css(d, "#new-token"), "the new token")[0].get_attribute("value")
    assert len(token) > 40 and token != env["token"]
    # Asked first: Cancel leaves the pool alone.
    click(d, "tr[data-pool='web'] [data-action='delete']", "Delete")
    until(d, lambda d: css(d, "dialog#confirm[open]"), "the confirmation")
    css(d, "#confirm-no")[0].click()
    assert css(d, "tr[data-pool='web']")
    click(d, "tr[data-pool='web'] [data-action='delete']", "Delete")
    confirm(d)
    until(d, lambda d: not css(d, "tr[data-pool='web']"), "the pool to go")
    assert "deleted" in text(d, "#action-msg")


def test_no_request_leaves_the_server(env):
    """Every resource the pages loaded came from the server itself."""
    d = env["driver"]
    urls = d.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert urls and all(u.startswith(env["server"].url) for u in urls), urls
    logs = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "Content Security" in e["message"]]
    assert not logs, logs
