#!/usr/bin/python3
"""A MOCK of the Google Cloud APIs davit calls (GCP cannot be reached from the tests), on
fake_cloud.py's servers (a ManagedMock). One mock for both sides of a managed instance group:

The instances' side (deploy/boot/davit-boot-gcp):
- the metadata server (plain HTTP, as metadata.google.internal is; every request must carry
  `Metadata-Flavor: Google`, else 403 as GCE answers): computeMetadata/v1/instance/name,
  project/project-id, instance/service-accounts/default/token (ACCESS_TOKEN, which Secret Manager
  and Compute Engine both take, as a service account's token is one);
- Secret Manager (HTTPS): GET /v1/projects/P/secrets/S/versions/V:access with
  `Authorization: Bearer TOKEN`, the payload base64-encoded as Google sends it, Google's error
  shapes (401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND). Its calls are in boot_calls.
  outage["secretmanager"] or outage["token"] = (status, code) answers that instead (Google's error
  shape; the metadata server's is text), as GCP does when unavailable or throttling (503, 429).

The autoscaler's side (`davit autoscale --provider gcp`), Compute Engine (HTTPS): a regional
managed instance group's get (targetSize), listManagedInstances, resize, deleteInstances and
recreateInstances, and an instance's get (creationTimestamp); an expired token (EXPIRED_TOKEN)
refused with 401. Its calls are in calls, (method, what, group, detail).

Changes are asynchronous, as GCP's are: the target size changes at once, but a new instance is
CREATING, a deleted one DELETING, a recreated one RECREATING (keeping its name and, until it is up
again, its creationTimestamp) in the first listManagedInstances after the change, and settled at
the next (fake_cloud.Group). Operations are answered RUNNING and never polled by davit.

It is not GCP: one project, one zone, no pagination, no token expiry on the instances' side,
secret versions only "latest" or "1", one instance for the metadata server (INSTANCE_NAME:
add_group(G, 0).adopt(INSTANCE_NAME, INSTANCE_NAME) makes the autoscaler's list agree).

    with FakeGCP() as g:
        g.secrets["davit-token"] = token
        g.add_group("davit-web", 2)
        ... g.url, g.ca_file, g.metadata_url, g.boot_calls, g.calls ...
"""
import base64
import datetime
import json
import re

from fake_cloud import Group, ManagedMock, bearer, reply, text

PROJECT = "davit-test-project"
REGION = "europe-west1"
ZONE = REGION + "-b"
INSTANCE_NAME = "davit-web-x7k2"
ACCESS_TOKEN = TOKEN = "ya29.fake-davit-gcp-token"
EXPIRED_TOKEN = "ya29.fake-davit-gcp-expired"
ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/(latest|1):access$")
MIG = re.compile(r"^/compute/v1/projects/%s/regions/%s/instanceGroupManagers/([^/]+)"
                 r"(/listManagedInstances|/resize|/deleteInstances|/recreateInstances)?$" % (PROJECT, REGION))
INSTANCE = re.compile(r"^/compute/v1/projects/%s/zones/%s/instances/([^/]+)$" % (PROJECT, ZONE))
SELF = "https://www.googleapis.com/compute/v1/projects/%s/zones/%s/instances/" % (PROJECT, ZONE)


def error(status, reason, message):
    return reply(status, {"error": {"code": status, "message": message,
                                    "errors": [{"message": message, "domain": "global", "reason": reason}],
                                    "status": {401: "UNAUTHENTICATED", 400: "INVALID_ARGUMENT",
                                               404: "NOT_FOUND"}.get(status, "FAILED_PRECONDITION")}})


def rfc3339(t):
    # GCP answers in the zone's offset, not UTC: the client must read it.
    tz = datetime.timezone(datetime.timedelta(hours=-8))
    return datetime.datetime.fromtimestamp(t, tz).isoformat(timespec="milliseconds")


class FakeGCP(ManagedMock):
    MUTATIONS = ("resize", "deleteInstances", "recreateInstances")

    def __init__(self):
        super().__init__("fake-gcp-", [TOKEN], [EXPIRED_TOKEN])
        self.boot_calls = []  # ("token", ""), ("secretmanager", path): the boot side's
        self.secrets = {}  # secret name in PROJECT -> value
        self.denied = set()  # names the service account may not access (403)
        self.instance_name = INSTANCE_NAME
        self.project = PROJECT

    def handle_metadata(self, method, url, headers, body):
        """The metadata server: the instance's name, the project, the service account's token
        (for Secret Manager and Compute Engine alike, as GCP's is)."""
        if headers.get("Metadata-Flavor") != "Google":
            self.refused.append(("metadata", 403))
            return text(403, "Missing Metadata-Flavor:Google header.")
        answers = {"/computeMetadata/v1/instance/name": self.instance_name,
                   "/computeMetadata/v1/project/project-id": self.project}
        if url.path in answers:
            return text(200, answers[url.path])
        if url.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            down = self.down("token")
            if down:
                return text(down[0], down[1])
            self.boot_calls.append(("token", ""))
            return reply(200, {"access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"})
        return text(404, "Not Found")

    def _secretmanager(self, method, url, headers, body):
        def error(code, status, message):
            self.refused.append(("secretmanager", status))
            return reply(code, {"error": {"code": code, "message": message, "status": status}})

        down = self.down("secretmanager")
        if down:  # Google's shape: 503 UNAVAILABLE, 429 RESOURCE_EXHAUSTED
            return reply(down[0], {"error": {"code": down[0], "message": "fake-gcp outage", "status": down[1]}})
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
        self.boot_calls.append(("secretmanager", url.path))
        data = base64.b64encode(self.secrets[name].encode()).decode()
        return reply(200, {"name": f"projects/123/secrets/{name}/versions/1",
                           "payload": {"data": data, "dataCrc32c": "0"}})

    def add_group(self, name, size):
        with self.lock:
            self.groups[name] = Group(self, name, size)
            return self.groups[name]

    def new_instance(self, g):
        name = "%s-%04x" % (g.name, next(self.ids))
        return name, name

    def expired_error(self):
        return error(401, "authError", "Request had invalid authentication credentials. Expected OAuth 2 access "
                     "token, login cookie or other valid authentication credential.")

    no_token_error = expired_error

    def _op(self, kind, g):
        return reply(200, {"kind": "compute#operation", "operationType": kind, "status": "RUNNING",
                           "targetLink": "https://www.googleapis.com/compute/v1/projects/%s/regions/%s/"
                           "instanceGroupManagers/%s" % (PROJECT, REGION, g.name)})

    def _names(self, g, body):
        try:
            urls = json.loads(body or b"{}").get("instances")
        except ValueError:
            return None
        if not isinstance(urls, list) or not urls:
            return None
        names = [u.rsplit("/", 1)[-1] for u in urls if isinstance(u, str) and "/zones/%s/instances/" % ZONE in u]
        return names if len(names) == len(urls) and all(n in g.instances for n in names) else None

    def api(self, method, url, headers, body):
        m = INSTANCE.match(url.path)
        if m and method == "GET":
            for g in self.groups.values():
                inst = g.instances.get(m.group(1))
                if inst:
                    self.accepted(method, "instances.get", g.name, inst.name)
                    return reply(200, {"kind": "compute#instance", "name": inst.name, "status": "RUNNING",
                                       "creationTimestamp": rfc3339(inst.launch_time), "selfLink": SELF + inst.name})
            return error(404, "notFound", "The resource 'projects/%s/zones/%s/instances/%s' was not found"
                         % (PROJECT, ZONE, m.group(1)[:64]))
        m = MIG.match(url.path)
        g = self.groups.get(m.group(1)) if m else None
        if g is None:
            return error(404, "notFound", "The resource was not found")
        sub = m.group(2)
        if method == "GET" and not sub:
            self.accepted(method, "get", g.name)
            return reply(200, {"kind": "compute#instanceGroupManager", "name": g.name, "targetSize": g.desired,
                               "baseInstanceName": g.name, "region": REGION})
        if method != "POST":
            return error(400, "badRequest", "not here")
        if sub == "/listManagedInstances":
            self.accepted(method, "listManagedInstances", g.name)
            g.listed()
            return reply(200, {"managedInstances": [
                {"instance": SELF + i.name, "id": str(abs(hash(i.name)) % 10 ** 18),
                 "instanceStatus": "STAGING" if i.action == "creating" else "RUNNING",
                 "currentAction": (i.action or "none").upper()} for i in g.instances.values()]})
        if sub == "/resize":
            size = dict(p.split("=", 1) for p in url.query.split("&") if "=" in p).get("size", "")
            if not size.isdigit():
                return error(400, "invalid", "Invalid value for field 'size'")
            self.accepted(method, "resize", g.name, int(size))
            g.set_desired(int(size))
            return self._op("compute.regionInstanceGroupManagers.resize", g)
        names = self._names(g, body)
        if names is None:
            return error(400, "invalid", "Invalid value for field 'instances': not managed by this group")
        if any(g.instances[n].action in ("deleting", "recreating") for n in names):
            # GCP would queue it: a second action on an instance already changing is a davit bug.
            return error(400, "resourceNotReady", "The instance is being changed already")
        self.accepted(method, sub[1:], g.name, names)
        for n in names:
            g.start(n, "deleting" if sub == "/deleteInstances" else "recreating")
        if sub == "/deleteInstances":
            g.desired -= len(names)  # the target size is lowered at once
        return self._op("compute.regionInstanceGroupManagers." + sub[1:], g)

    def public(self, method, url, headers, body):
        if url.path.startswith("/v1/projects/"):  # Secret Manager, with its own errors
            return self._secretmanager(method, url, headers, body)
        return None
