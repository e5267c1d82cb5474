"""The scaffolding of the Azure and GCP MOCKS: fake_aws.py's HTTPS server (a self-signed
certificate from the real openssl command) and threaded handler, reused by import, plus a plain
HTTP metadata server (169.254.169.254, metadata.google.internal). One mock per cloud is built on
it, serving both the instances' side and the autoscaler's: fake_azure.py, fake_gcp.py.

- CloudMock: the two servers and a lock. A subclass answers handle_api (the cloud's HTTPS APIs)
  and handle_metadata.
- ManagedMock: a CloudMock with the management APIs `davit autoscale` calls: bearer tokens checked
  (an expired one refused with HTTP 401 in the cloud's own error shape, the subclass's; public()
  answers what has its own token, like a token endpoint or a secret store), and groups of
  instances (Group) whose changes are
  ASYNCHRONOUS as the clouds' are: an instance created, deleted or recreated has its action under
  way in the first instance list after the change and is settled by the next one (or by
  settle(), or by the operation's status being polled), so that a test sees what one tick in
  between sees."""
import http.server
import itertools
import json
import shutil
import ssl
import tempfile
import threading
import time
import urllib.parse

import fake_aws


class Headers(dict):
    """A request's headers, looked up case-insensitively as HTTP names are."""

    def __init__(self, items):
        super().__init__((k.lower(), v) for k, v in items)

    def get(self, k, default=None):
        return super().get(k.lower(), default)


class CloudMock:
    """Two servers and a lock; subclasses hold the state. Not a cloud: only what davit calls."""

    def __init__(self, prefix):
        self.lock = threading.RLock()
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.cert, self.key = fake_aws.make_cert(self.tmp)
        self.ca_file = self.cert
        self.calls = []  # every accepted API request (the subclass's shape)
        self.refused = []  # (what, status) of every refused one
        # Outages: what (the subclass names them: "keyvault", "identity", "secretmanager", "token")
        # -> (HTTP status, error code) answered instead, in the cloud's own error shape, as a
        # cloud does when unavailable or throttling (fake_aws.py's outage, for these mocks).
        self.outage = {}
        self.httpd, self.url = self._serve(self.handle_api, tls=True)
        self.metad, self.metadata_url = self._serve(self.handle_metadata, tls=False)

    def _serve(self, handle, tls):
        # fake_aws._handler calls handle_aws(method, path, headers, body) on its first argument.
        mock = self

        class Adapter:
            def handle_aws(self, method, raw_path, headers, body):
                with mock.lock:
                    return handle(method, urllib.parse.urlsplit(raw_path), Headers(headers), body)

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), fake_aws._handler(Adapter(), False))
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        scheme = "https" if tls else "http"
        return httpd, "%s://127.0.0.1:%d" % (scheme, httpd.server_address[1])

    def down(self, what):
        """The outage set for what, (status, code), or None; a refusal is noted."""
        out = self.outage.get(what)
        if out:
            self.refused.append((what, out[0]))
        return out

    def close(self):
        for s in (self.httpd, self.metad):
            s.shutdown()
            s.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def reply(status, obj, headers=None):
    """A JSON answer in fake_aws._handler's (status, content type, bytes[, headers]) form."""
    out = status, "application/json; charset=utf-8", (json.dumps(obj).encode() if obj is not None else b"")
    return out + (headers,) if headers else out


def text(status, s):
    return status, "text/plain", s.encode()


def bearer(headers):
    auth = headers.get("Authorization", "")
    return auth[len("Bearer "):] if auth.startswith("Bearer ") else None


class Inst:
    def __init__(self, iid, name, launch_time):
        self.id, self.name, self.launch_time = iid, name, launch_time
        # The action under way: None (settled), "creating", "deleting", "recreating"; and how
        # many instance lists have seen it so far.
        self.action, self.seen = "creating", 0
        self.how_ended = None  # "deleted", "deleted by a lower capacity"
        self.recreated = 0


class Group:
    """A scale set or managed instance group: its desired capacity and its instances (those
    being deleted included, until they have gone)."""

    def __init__(self, mock, name, desired):
        self.mock, self.name = mock, name
        self.instances = {}  # id -> Inst, launch order
        self.ended = {}
        self.desired = 0
        self.set_desired(desired)
        self.settle()  # a new group's instances are up

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

    def adopt(self, iid, name):
        """One more instance, up, with this id and name: a boot mock's (fake_azure.py, fake_gcp.py),
        so that a test ties what the boot script registers to what the autoscaler reads."""
        with self.mock.lock:
            inst = Inst(iid, name, self.mock.now())
            inst.action = None
            self.instances[iid] = inst
            self.desired += 1
            return inst

    def start(self, iid, action):
        inst = self.instances[iid]
        inst.action, inst.seen = action, 0
        return inst

    def finish(self, inst):
        """Ends inst's action: a deleted instance goes (its deletion_lowers: the desired capacity
        with it), a recreated one is new."""
        action, inst.action = inst.action, None
        if action == "deleting":
            self.end(inst.id, "deleted")
            self.desired -= self.mock.DELETE_LOWERS_AT_END
        elif action == "recreating":
            inst.launch_time = self.mock.now()
            inst.recreated += 1

    def listed(self):
        """An instance list is being answered: actions seen once already end now; the others
        are seen under way once."""
        for inst in list(self.instances.values()):
            if inst.action and inst.seen:
                self.finish(inst)
            elif inst.action:
                inst.seen += 1

    def settle(self):
        with self.mock.lock:
            for inst in list(self.instances.values()):
                if inst.action:
                    self.finish(inst)


class ManagedMock(CloudMock):
    """The management API's mock: tokens and groups; subclasses answer api() and metadata(), and
    set MUTATIONS (the calls that change a group) and DELETE_LOWERS_AT_END (1 when a deletion
    lowers the capacity when it ends, Azure; 0 when at once, GCP)."""

    MUTATIONS = ()
    DELETE_LOWERS_AT_END = 0

    def __init__(self, prefix, tokens, expired):
        self.tokens, self.expired = set(tokens), set(expired)
        self.groups = {}
        # Test hooks: what -> fn(), called under the lock before the request is answered.
        self.on_call = {}
        self.ids = itertools.count(1)
        self.now = time.time
        super().__init__(prefix)  # calls: (method, what, group, detail)

    def group(self, name):
        return self.groups[name]

    def settle(self):
        for g in list(self.groups.values()):
            g.settle()

    def mutations(self, group):
        with self.lock:
            return [c[1] for c in self.calls if c[1] in self.MUTATIONS and c[2] == group]

    def handle_api(self, method, url, headers, body):
        public = self.public(method, url, headers, body)
        if public:
            return public
        token = bearer(headers)
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

    def handle_metadata(self, method, url, headers, body):
        return self.metadata(method, url, headers)

    def accepted(self, method, what, group, detail=None):
        self.calls.append((method, what, group, detail))
        fn = self.on_call.get(what)
        if fn:
            fn()
