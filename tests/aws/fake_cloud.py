"""The scaffolding of the Azure and GCP MOCKS (fake_azure.py, fake_gcp.py): fake_aws.py's HTTPS
server (a self-signed certificate from the real openssl command) and plain HTTP metadata server,
threaded, reused by import. A subclass answers handle_api (the cloud's HTTPS APIs) and
handle_metadata (169.254.169.254 or metadata.google.internal)."""
import http.server
import json
import shutil
import ssl
import tempfile
import threading
import urllib.parse

import fake_aws


class CloudMock:
    """Two servers and a lock; subclasses hold the state. Not a cloud: only what davit calls."""

    def __init__(self, prefix):
        self.lock = threading.RLock()
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.cert, self.key = fake_aws.make_cert(self.tmp)
        self.ca_file = self.cert
        self.calls = []  # (what, detail) of every accepted API request
        self.refused = []  # (what, status) of every refused one
        self.httpd, self.url = self._serve(self.handle_api, tls=True)
        self.metad, self.metadata_url = self._serve(self.handle_metadata, tls=False)

    def _serve(self, handle, tls):
        # fake_aws._handler calls handle_aws(method, path, headers, body) on its first argument.
        mock = self

        class Adapter:
            def handle_aws(self, method, raw_path, headers, body):
                with mock.lock:
                    return handle(method, urllib.parse.urlsplit(raw_path), dict(headers), body)

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), fake_aws._handler(Adapter(), False))
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert, self.key)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        scheme = "https" if tls else "http"
        return httpd, "%s://127.0.0.1:%d" % (scheme, httpd.server_address[1])

    def close(self):
        for s in (self.httpd, self.metad):
            s.shutdown()
            s.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def reply(status, obj):
    """A JSON answer in fake_aws._handler's (status, content type, bytes) form."""
    return status, "application/json", json.dumps(obj).encode()


def text(status, s):
    return status, "text/plain", s.encode()


def bearer(headers):
    auth = headers.get("Authorization", "")
    return auth[len("Bearer "):] if auth.startswith("Bearer ") else None
