#!/usr/bin/python3
"""A MOCK of the Compute Engine calls `davit autoscale --provider gcp` makes (GCP cannot be reached
from the tests): a regional managed instance group's get (targetSize), listManagedInstances,
resize, deleteInstances and recreateInstances, and an instance's get (creationTimestamp), over
HTTPS; and the metadata server's service account token
(/computeMetadata/v1/instance/service-accounts/default/token, header Metadata-Flavor: Google) on
plain HTTP, as metadata.google.internal is. Scaffolding: fake_cloud.py.

Changes are asynchronous, as GCP's are: the target size changes at once, but a new instance is
CREATING, a deleted one DELETING, a recreated one RECREATING (keeping its name and, until it is up
again, its creationTimestamp) in the first listManagedInstances after the change, and settled at
the next (fake_cloud.Group). Operations are answered RUNNING and never polled by davit.

It is not GCP: one zone, no pagination."""

import datetime
import json
import re

from fake_cloud import Group, ManagedMock

PROJECT = "davit-test-project"
REGION = "europe-west1"
ZONE = REGION + "-b"
TOKEN = "ya29.fake-davit-gcp-compute-token"
EXPIRED_TOKEN = "ya29.fake-davit-gcp-compute-expired"
MIG = re.compile(r"^/compute/v1/projects/%s/regions/%s/instanceGroupManagers/([^/]+)"
                 r"(/listManagedInstances|/resize|/deleteInstances|/recreateInstances)?$" % (PROJECT, REGION))
INSTANCE = re.compile(r"^/compute/v1/projects/%s/zones/%s/instances/([^/]+)$" % (PROJECT, ZONE))
SELF = "https://www.googleapis.com/compute/v1/projects/%s/zones/%s/instances/" % (PROJECT, ZONE)


def reply(status, doc):
    return status, "application/json; charset=UTF-8", json.dumps(doc).encode()


def error(status, reason, message):
    return reply(status, {"error": {"code": status, "message": message,
                                    "errors": [{"message": message, "domain": "global", "reason": reason}],
                                    "status": {401: "UNAUTHENTICATED", 400: "INVALID_ARGUMENT",
                                               404: "NOT_FOUND"}.get(status, "FAILED_PRECONDITION")}})


def rfc3339(t):
    # GCP answers in the zone's offset, not UTC: the client must read it.
    tz = datetime.timezone(datetime.timedelta(hours=-8))
    return datetime.datetime.fromtimestamp(t, tz).isoformat(timespec="milliseconds")


class FakeGCPCompute(ManagedMock):
    MUTATIONS = ("resize", "deleteInstances", "recreateInstances")

    def __init__(self):
        super().__init__("fake-gcp-compute-", [TOKEN], [EXPIRED_TOKEN])

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

    def metadata(self, method, url, headers):
        if url.path != "/computeMetadata/v1/instance/service-accounts/default/token" or \
                headers.get("metadata-flavor") != "Google":
            return 403, "text/html", b"Missing Metadata-Flavor:Google header."
        return reply(200, {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})
