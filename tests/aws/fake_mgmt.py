"""The scaffolding of the Azure and GCP management-API MOCKS (fake_azure_mgmt.py,
fake_gcp_compute.py), which `davit autoscale --provider azure|gcp` calls: fake_aws.py's HTTPS
server (a self-signed certificate from the real openssl command) and its threaded handler, reused
by import, plus a plain HTTP metadata server (169.254.169.254, metadata.google.internal) and a
group of instances that scales like the clouds' own (desired capacity, newest removed first).

Every API request must carry "Authorization: Bearer TOKEN" with a token the mock knows; an expired
one is refused with HTTP 401 in the cloud's own error shape (the subclass's)."""

import http.server
import itertools
import shutil
import ssl
import tempfile
import threading
import time
import urllib.parse

import fake_aws


class Inst:
    def __init__(self, iid, name, launch_time):
        self.id, self.name, self.launch_time = iid, name, launch_time
        self.how_ended = None  # "deleted", "deleted by a lower capacity", "recreated"


class Group:
    """A scale set or managed instance group: its desired capacity and its instances."""

    def __init__(self, mock, name, desired):
        self.mock, self.name = mock, name
        self.instances = {}  # id -> Inst, launch order
        self.ended = {}
        self.desired = 0
        self.set_desired(desired)

    def live(self):
        return list(self.instances.values())

    def launch(self):
        iid, name = self.mock.new_instance(self)
        self.instances[iid] = Inst(iid, name, self.mock.now())

    def end(self, iid, how):
        inst = self.instances.pop(iid)
        inst.how_ended = how
        self.ended[iid] = inst

    def set_desired(self, n):
        self.desired = n
        while len(self.instances) < n:
            self.launch()
        while len(self.instances) > n:  # the newest go, runs or not: davit never scales in so
            self.end(list(self.instances)[-1], "deleted by a lower capacity")


class MgmtMock:
    """Two servers, a lock, the groups; subclasses answer api() and metadata()."""

    def __init__(self, prefix, tokens, expired):
        self.lock = threading.RLock()
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.cert, self.key = fake_aws.make_cert(self.tmp)
        self.ca_file = self.cert
        self.tokens, self.expired = set(tokens), set(expired)
        self.groups = {}
        self.calls = []  # (method, what, detail) of every accepted API request
        self.refused = []  # (what, status) of every refused one
        # Test hooks: what -> fn(), called under the lock before the request is answered.
        self.on_call = {}
        self.ids = itertools.count(1)
        self.now = time.time
        self.httpd, self.url = self._serve(self._api, tls=True)
        self.metad, self.metadata_url = self._serve(self._metadata, tls=False)

    def _serve(self, handle, tls):
        class Adapter:  # fake_aws._handler calls handle_aws(method, path, headers, body)
            def handle_aws(self, method, raw_path, headers, body):
                return handle(method, urllib.parse.urlsplit(raw_path), dict((k.lower(), v) for k, v in headers),
                              body)

        handler = fake_aws._handler(Adapter(), False)
        handler.do_PATCH = handler._serve  # Azure updates a scale set with PATCH
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd, "%s://127.0.0.1:%d" % ("https" if tls else "http", httpd.server_address[1])

    def close(self):
        for s in (self.httpd, self.metad):
            s.shutdown()
            s.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def group(self, name):
        return self.groups[name]

    def mutations(self, group):
        with self.lock:
            return [c[1] for c in self.calls if c[1] in self.MUTATIONS and c[2] == group]

    def _api(self, method, url, headers, body):
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        with self.lock:
            public = self.public(method, url, headers, body)
            if public:
                return public
            if token in self.expired:
                self.refused.append(("api", 401))
                return self.expired_error()
            if token not in self.tokens:
                self.refused.append(("api", 401))
                return self.no_token_error()
            return self.api(method, url, headers, body)

    def public(self, method, url, headers, body):
        """A request answered without a bearer token (a token endpoint), or None."""
        return None

    def _metadata(self, method, url, headers, body):
        with self.lock:
            return self.metadata(method, url, headers)

    def accepted(self, method, what, group, detail=None):
        self.calls.append((method, what, group, detail))
        fn = self.on_call.get(what)
        if fn:
            fn()
