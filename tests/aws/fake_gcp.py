#!/usr/bin/python3
"""A MOCK of the few Google Cloud APIs the davit boot script uses (GCP cannot be reached from the
tests), on fake_cloud.py's servers:

- the metadata server (plain HTTP, as metadata.google.internal is; every request must carry
  `Metadata-Flavor: Google`, else 403 as GCE answers): computeMetadata/v1/instance/name,
  project/project-id, instance/service-accounts/default/token;
- Secret Manager (HTTPS): GET /v1/projects/P/secrets/S/versions/V:access with
  `Authorization: Bearer TOKEN`, the payload base64-encoded as Google sends it, Google's error
  shapes (401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND).

It is not GCP: one project, one instance, no token expiry, versions are only "latest" or "1".

    with FakeGCP() as g:
        g.secrets["davit-token"] = token
        ... g.url, g.ca_file, g.metadata_url, g.calls ...
"""
import base64
import re

from fake_cloud import CloudMock, bearer, reply, text

PROJECT = "davit-test-project"
INSTANCE_NAME = "davit-web-x7k2"
ACCESS_TOKEN = "ya29.fake-davit-gcp-token"
ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/(latest|1):access$")


class FakeGCP(CloudMock):
    def __init__(self):
        super().__init__("fake-gcp-")
        self.secrets = {}  # secret name in PROJECT -> value
        self.denied = set()  # names the service account may not access (403)
        self.instance_name = INSTANCE_NAME
        self.project = PROJECT

    def handle_metadata(self, method, url, headers, body):
        if headers.get("Metadata-Flavor") != "Google":
            self.refused.append(("metadata", 403))
            return text(403, "Missing Metadata-Flavor:Google header.")
        answers = {"/computeMetadata/v1/instance/name": self.instance_name,
                   "/computeMetadata/v1/project/project-id": self.project}
        if url.path in answers:
            return text(200, answers[url.path])
        if url.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            self.calls.append(("token", ""))
            return reply(200, {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"})
        return text(404, "Not Found")

    def handle_api(self, method, url, headers, body):
        def error(code, status, message):
            self.refused.append(("secretmanager", status))
            return reply(code, {"error": {"code": code, "message": message, "status": status}})

        if bearer(headers) != ACCESS_TOKEN:
            return error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        m = ACCESS.match(url.path)
        if method != "GET" or not m:
            return error(404, "NOT_FOUND", "no such method")
        project, name, _version = m.groups()
        if project != self.project or name not in self.secrets:
            return error(404, "NOT_FOUND", f"Secret [projects/{project}/secrets/{name}] not found or has no versions.")
        if name in self.denied:
            return error(403, "PERMISSION_DENIED", f"Permission 'secretmanager.versions.access' denied for {name}")
        self.calls.append(("secretmanager", url.path))
        data = base64.b64encode(self.secrets[name].encode()).decode()
        return reply(200, {"name": f"projects/123/secrets/{name}/versions/1",
                           "payload": {"data": data, "dataCrc32c": "0"}})
