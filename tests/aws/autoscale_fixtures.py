"""What the autoscaler's integration tests share (test_autoscale.py for AWS,
test_autoscale_clouds.py for Azure and GCP): a pool whose stand-in launchers
(tests/server/davit_harness.py) carry the instance_id metadata the boot scripts set, one
`davit autoscale` tick and its decisions read from its log, and a proxy in front of the davit
server that lets a test act between the autoscaler's read of the pool and its drain."""

import http.client
import http.server
import os
import re
import subprocess
import threading

from davit_harness import DAVIT, Launcher


def decisions(log):
    out = []
    for line in log.splitlines():
        if " autoscale decision " in line:
            fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
            out.append((fields["decision"], {k: v.strip('"') for k, v in fields.items()}))
    return out


def kinds(ds):
    return [d for d, _ in ds]


class PoolCell:
    """One pool, with the launchers on its group's instances. A subclass gives args() (the
    command line after `davit`), environ(**kw) and instance_ids() (the group's live instances)."""

    def __init__(self, server, name):
        self.server, self.name = server, name
        self.token, self.key = server.create_pool(name)
        self.launchers = {}  # instance id -> Launcher
        self.server_url = "http://127.0.0.1:%d" % server.port

    def boot(self, *ids):
        """Starts a launcher on each instance (all live ones without one when none are named)."""
        ids = ids or [i for i in self.instance_ids() if i not in self.launchers]
        for iid in ids:
            la = Launcher(self.server, self.token, self.key, hostname=iid)
            la.register(metadata={"instance_id": iid})
            self.launchers[iid] = la
        return [self.launchers[i] for i in ids]

    def submit(self, n=1):
        return [self.server.submit(self.name) for _ in range(n)]

    def scaling(self):
        return self.server.ok("GET", "/api/v1/pools/%s/scaling" % self.name)

    def worker(self, iid):
        return next(w for w in self.scaling()["workers"] if w["metadata"].get("instance_id") == iid)

    def base_environ(self, server_url=None):
        e = dict(os.environ)
        e.update({"DAVIT_SERVER": server_url or self.server_url, "DAVIT_API_TOKEN": self.server.token})
        return e

    def tick(self, *extra, rc=0, **env_kw):
        """One tick; returns its decisions as (decision, fields) from its log lines."""
        p = subprocess.run([DAVIT] + self.args(*extra), env=self.environ(**env_kw), capture_output=True,
                           text=True, timeout=120)
        print(p.stderr)
        assert p.returncode == rc, (p.returncode, p.stderr)
        assert "AddressSanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
        self.last = p
        return decisions(p.stderr)


class DrainProxy:
    """A plain HTTP proxy to the davit server that calls before_drain() (once) when a worker's
    drain is asked for, before passing it on: the window in which a worker takes a run after the
    autoscaler read the pool."""

    def __init__(self, server_port, before_drain):
        self.before = before_drain
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if self.command == "POST" and self.path.endswith("/drain") and proxy.before:
                    fn, proxy.before = proxy.before, None
                    fn()
                c = http.client.HTTPConnection("127.0.0.1", server_port, timeout=60)
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                c.request(self.command, self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                c.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
