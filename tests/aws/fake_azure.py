#!/usr/bin/python3
"""A MOCK of the Azure APIs davit calls (Azure cannot be reached from the tests), on
fake_cloud.py's servers (a ManagedMock). One mock for both sides of a scale set:

The instances' side (deploy/boot/davit-boot-azure, davit-azure-drain):
- the Instance Metadata Service (plain HTTP, as 169.254.169.254 is; every request must carry
  `Metadata: true`, else 400 as Azure answers): instance/compute/resourceId and name (format=text),
  identity/oauth2/token (a managed identity's access token for resource https://vault.azure.net,
  optionally client_id=), scheduledevents (GET the document, POST StartRequests to acknowledge);
- Key Vault (HTTPS): GET /secrets/NAME?api-version=7.4 with `Authorization: Bearer ACCESS_TOKEN`,
  Key Vault's error shapes (401 Unauthorized, 403 Forbidden, 404 SecretNotFound). Its calls are in
  boot_calls. outage["keyvault"] or outage["identity"] = (status, code) answers that instead
  (Key Vault's or IMDS's error shape), as Azure does when unavailable or throttling (503, 429).

The autoscaler's side (`davit autoscale --provider azure`):
- Azure Resource Manager (HTTPS, `Authorization: Bearer TOKEN`): Virtual Machine Scale Sets get
  (sku.capacity), update (PATCH sku.capacity), delete instances (instanceIds) and the list of the
  scale set's VMs (instanceId, name, provisioningState, timeCreated); an expired token (EXPIRED_TOKEN)
  refused with 401 ExpiredAuthenticationToken. Its calls are in calls, (method, what, group, detail);
- Microsoft Entra ID's token endpoint for a service principal's client credentials
  (POST /TENANT/oauth2/v2.0/token, grant_type=client_credentials), on the same server;
- IMDS's managed identity token for resource https://management.azure.com/ (TOKEN), for the
  system-assigned identity or, with client_id=, the user-assigned one (CLIENT_ID).

Changes are asynchronous, as Azure's are: a new VM is Creating, a deleted one Deleting, in the first
VM list after the change, and settled at the next (fake_cloud.Group). Deleting VMs answers 202 with
an Azure-AsyncOperation header whose URL answers InProgress, then Succeeded (the VM gone); the
capacity is lowered when the deletion ends.

It is not Azure: one vault (the endpoint stands for any vault name), one instance for IMDS (the
scale set SCALE_SET's INSTANCE_ID: add_scale_set(SCALE_SET, 0).adopt(INSTANCE_ID, INSTANCE_NAME)
makes the autoscaler's list agree), no token expiry on the instances' side, scheduled events only
what a test adds, no orchestration modes, no zones; api-version is required but any is accepted.

    with FakeAzure() as az:
        az.secrets["davit-token"] = token
        az.add_scale_set("davit-web", 2)
        ... az.url, az.ca_file, az.metadata_url, az.boot_calls, az.calls, az.add_event("Terminate") ...
"""
import datetime
import json
import re
import time
import urllib.parse
import uuid

from fake_cloud import Group, ManagedMock, bearer, reply, text

SUBSCRIPTION = "00000000-0000-4000-8000-00000000da71"
RESOURCE_GROUP = "davit-rg"
SCALE_SET = "davit-web"
INSTANCE_ID = "3"
INSTANCE_NAME = "%s_%s" % (SCALE_SET, INSTANCE_ID)
CLIENT_ID = "11111111-2222-3333-4444-555555555555"  # the instances' user-assigned identity
ACCESS_TOKEN = "eyJ0eXAiOiJKV1QifQ.fake-davit-azure-token.c2lnbmF0dXJl"  # for Key Vault
TOKEN = "eyJ0eXAiOiJKV1QifQ.fake-davit-azure-mgmt-token.c2ln"  # for Resource Manager
EXPIRED_TOKEN = "eyJ0eXAiOiJKV1QifQ.fake-davit-azure-mgmt-expired.c2ln"
TENANT = "00000000-0000-4000-8000-0000000ten1"
SP_CLIENT_ID = "00000000-0000-4000-8000-000000c1e471"  # a service principal's
CLIENT_SECRET = "fake~davit~client~secret~0001"
PREFIX = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachineScaleSets/" % (
    SUBSCRIPTION, RESOURCE_GROUP)
ROUTE = re.compile(r"^%s([^/]+)(/virtualMachines|/delete)?$" % re.escape(PREFIX), re.I)
OPERATION = re.compile(r"^/subscriptions/%s/providers/Microsoft.Compute/locations/westeurope/operations/(\d+)$"
                       % SUBSCRIPTION)
STATE = {None: "Succeeded", "creating": "Creating", "deleting": "Deleting"}


def error(status, code, message):
    return reply(status, {"error": {"code": code, "message": message}})


class FakeAzure(ManagedMock):
    MUTATIONS = ("update", "delete")
    DELETE_LOWERS_AT_END = 1

    def __init__(self):
        super().__init__("fake-azure-", [TOKEN], [EXPIRED_TOKEN])
        self.operations = {}  # id -> {"insts": [(group, inst)], "polls": n}
        self.fail_deletes = False  # deletions' operations end Failed
        self.boot_calls = []  # ("identity", client id), ("keyvault", name): the boot side's
        self.secrets = {}  # Key Vault secret name -> value
        self.denied = set()  # secret names the identity may not read (403)
        self.client_id = CLIENT_ID  # the user-assigned identity's
        self.instance_id = INSTANCE_ID
        self.instance_name = INSTANCE_NAME
        self.resource_id = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                            f"Microsoft.Compute/virtualMachineScaleSets/{SCALE_SET}/virtualMachines/"
                            f"{INSTANCE_ID}")
        self.events = []
        self.incarnation = 1
        self.acks = []  # (EventId, time.time()) of each StartRequests
        self.on_ack = None  # fn(event id), called (under the lock) when acknowledged

    def add_event(self, kind="Terminate", resources=None, not_before_s=600):
        ev = {"EventId": str(uuid.uuid4()).upper(), "EventType": kind, "ResourceType": "VirtualMachine",
              "Resources": resources or [self.instance_name], "EventStatus": "Scheduled",
              "NotBefore": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + not_before_s)),
              "Description": "fake-azure", "EventSource": "Platform", "DurationInSeconds": -1}
        with self.lock:
            self.events.append(ev)
            self.incarnation += 1
        return ev["EventId"]

    def _boot_metadata(self, method, url, headers, body):
        if headers.get("Metadata") != "true":
            self.refused.append(("imds", 400))
            return reply(400, {"error": "Bad request. Required metadata header not specified"})
        q = urllib.parse.parse_qs(url.query)
        path = url.path
        if path == "/metadata/instance/compute/resourceId" and q.get("format") == ["text"]:
            return text(200, self.resource_id)
        if path == "/metadata/instance/compute/name" and q.get("format") == ["text"]:
            return text(200, self.instance_name)
        if path == "/metadata/identity/oauth2/token":
            down = self.down("identity")
            if down:  # IMDS's identity endpoint throttles (429) and has 5xx answers of its own
                return reply(down[0], {"error": down[1], "error_description": "fake-azure outage"})
            if q.get("resource") != ["https://vault.azure.net"] or "api-version" not in q:
                return reply(400, {"error": "invalid_request"})
            if "client_id" in q and q["client_id"] != [self.client_id]:
                self.refused.append(("identity", 400))
                return reply(400, {"error": "invalid_request", "error_description": "Identity not found"})
            self.boot_calls.append(("identity", q.get("client_id", [""])[0]))
            return reply(200, {"access_token": ACCESS_TOKEN, "expires_in": "86399",
                               "resource": "https://vault.azure.net", "token_type": "Bearer"})
        if path == "/metadata/scheduledevents":
            if method == "GET":
                return reply(200, {"DocumentIncarnation": self.incarnation, "Events": self.events})
            if method == "POST":
                try:
                    ids = [r["EventId"] for r in json.loads(body)["StartRequests"]]
                except (ValueError, KeyError, TypeError):
                    return reply(400, {"error": "malformed StartRequests"})
                for i in ids:
                    self.acks.append((i, time.time()))
                    self.events = [e for e in self.events if e["EventId"] != i]
                    if self.on_ack:
                        self.on_ack(i)
                self.incarnation += 1
                return text(200, "")
        return reply(404, {"error": "Not found"})

    def _keyvault(self, method, url, headers, body):
        q = urllib.parse.parse_qs(url.query)
        down = self.down("keyvault")
        if down:  # Key Vault's shape; a 429 comes with Retry-After, as Key Vault's does
            return reply(down[0], {"error": {"code": down[1], "message": "fake-azure outage"}},
                         {"Retry-After": "1"} if down[0] == 429 else None)
        if bearer(headers) != ACCESS_TOKEN:
            self.refused.append(("keyvault", 401))
            return reply(401, {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer token."}})
        if method != "GET" or not url.path.startswith("/secrets/") or q.get("api-version") != ["7.4"]:
            return reply(400, {"error": {"code": "BadParameter", "message": "bad request"}})
        name = url.path[len("/secrets/"):]
        if name in self.denied:
            self.refused.append(("keyvault", 403))
            return reply(403, {"error": {"code": "Forbidden", "message": f"Caller is not authorized: {name}"}})
        if name not in self.secrets:
            self.refused.append(("keyvault", 404))
            return reply(404, {"error": {"code": "SecretNotFound", "message": f"A secret with (name/id) {name} was not found in this key vault."}})
        self.boot_calls.append(("keyvault", name))
        return reply(200, {"value": self.secrets[name], "id": f"https://vault/secrets/{name}/0123",
                           "attributes": {"enabled": True}})

    def add_scale_set(self, name, capacity):
        with self.lock:
            self.groups[name] = Group(self, name, capacity)
            return self.groups[name]

    def new_instance(self, g):
        n = next(self.ids)
        return str(n), "%s_%d" % (g.name, n)

    def expired_error(self):
        return error(401, "ExpiredAuthenticationToken",
                     "The access token expiry UTC time '12/3/2026 12:00:00 PM' is earlier than current UTC time.")

    def no_token_error(self):
        return error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")

    def _vmss(self, g):
        return {"name": g.name, "id": PREFIX + g.name, "type": "Microsoft.Compute/virtualMachineScaleSets",
                "location": "westeurope", "sku": {"name": "Standard_D2ps_v5", "tier": "Standard",
                                                  "capacity": g.desired},
                "properties": {"provisioningState": "Succeeded", "orchestrationMode": "Uniform"}}

    def _vm(self, g, i):
        t = self.now_iso(i.launch_time)
        return {"instanceId": i.id, "name": i.name, "id": PREFIX + g.name + "/virtualMachines/" + i.id,
                "properties": {"provisioningState": STATE[i.action], "timeCreated": t, "latestModelApplied": True}}

    @staticmethod
    def now_iso(t):
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0+00:00")

    def _operation(self, op_id):
        op = self.operations.get(op_id)
        if op is None:
            return error(404, "NotFound", "no such operation")
        insts, op["polls"] = op["insts"], op["polls"] + 1
        if op["polls"] == 1 and any(i.action for _, i in insts):
            return reply(200, {"name": op_id, "status": "InProgress"})
        if self.fail_deletes:  # the VM stays, as after a failed deletion
            for _, i in insts:
                i.action = None
            return reply(200, {"name": op_id, "status": "Failed",
                               "error": {"code": "InternalExecutionError", "message": "An internal execution error occurred."}})
        for g, i in insts:
            if i.action:
                g.finish(i)
        return reply(200, {"name": op_id, "status": "Succeeded"})

    def api(self, method, url, headers, body):
        m = OPERATION.match(url.path)
        if m and method == "GET":
            self.accepted(method, "operation", None, m.group(1))
            return self._operation(m.group(1))
        m = ROUTE.match(url.path)
        if not m or "api-version=" not in url.query:
            return error(404, "NotFound" if m else "MissingApiVersionParameter", "no such route here")
        name, sub = m.group(1), m.group(2)
        g = self.groups.get(name)
        if g is None:
            return error(404, "ResourceNotFound", "The Resource 'Microsoft.Compute/virtualMachineScaleSets/%s' "
                         "under resource group '%s' was not found." % (name[:64], RESOURCE_GROUP))
        if method == "GET" and not sub:
            self.accepted(method, "get", name)
            return reply(200, self._vmss(g))
        if method == "GET" and sub and sub.lower() == "/virtualmachines":
            self.accepted(method, "list", name)
            g.listed()
            return reply(200, {"value": [self._vm(g, i) for i in g.instances.values()]})
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return error(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")
        if method == "PATCH" and not sub:
            cap = doc.get("sku", {}).get("capacity")
            if not isinstance(cap, int) or cap < 0:
                return error(400, "InvalidParameter", "sku.capacity: a non-negative integer is required")
            self.accepted(method, "update", name, cap)
            g.set_desired(cap)
            return reply(200, self._vmss(g))
        if method == "POST" and sub and sub.lower() == "/delete":
            ids = doc.get("instanceIds")
            if not isinstance(ids, list) or not ids or any(i not in g.instances for i in ids):
                return error(400, "InvalidParameter", "instanceIds: the instances are not in the scale set")
            if any(g.instances[i].action == "deleting" for i in ids):
                # Not Azure's answer (it would accept it again): a second deletion is a davit bug.
                return error(409, "OperationNotAllowed", "an instance is being deleted already")
            self.accepted(method, "delete", name, ids)
            op_id = str(next(self.ids))
            self.operations[op_id] = {"insts": [(g, g.start(i, "deleting")) for i in ids], "polls": 0}
            where = "%s/subscriptions/%s/providers/Microsoft.Compute/locations/westeurope/operations/%s" \
                "?api-version=2024-03-01" % (self.url, SUBSCRIPTION, op_id)
            return reply(202, None, {"Azure-AsyncOperation": where, "Location": where})
        return error(405, "MethodNotAllowed", "not here")

    def public(self, method, url, headers, body):
        if url.path.startswith("/secrets/"):  # Key Vault, with its own token and errors
            return self._keyvault(method, url, headers, body)
        if url.path != "/%s/oauth2/v2.0/token" % TENANT:
            return None
        form = dict(urllib.parse.parse_qsl((body or b"").decode()))
        if method != "POST" or form.get("grant_type") != "client_credentials" or \
                form.get("scope") != "https://management.azure.com/.default":
            return reply(400, {"error": "invalid_request", "error_description": "AADSTS900144: a parameter is missing"})
        if form.get("client_id") != SP_CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            self.refused.append(("token", 401))
            return reply(401, {"error": "invalid_client",
                               "error_description": "AADSTS7000215: Invalid client secret provided."})
        self.calls.append(("POST", "client_credentials", None, SP_CLIENT_ID))
        return reply(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN})

    def handle_metadata(self, method, url, headers, body):
        """IMDS: a management token for the autoscaler; the rest (Key Vault's token, the
        instance, Scheduled Events) for the boot script and the drain watcher."""
        if url.path != "/metadata/identity/oauth2/token" or headers.get("metadata") != "true" or \
                "resource=https://management.azure.com/" not in urllib.parse.unquote(url.query):
            return self._boot_metadata(method, url, headers, body)
        q = urllib.parse.parse_qs(url.query)
        if "client_id" in q and q["client_id"] != [self.client_id]:
            self.refused.append(("identity", 400))
            return reply(400, {"error": "invalid_request", "error_description": "Identity not found"})
        self.calls.append(("GET", "identity", None, q.get("client_id", [""])[0]))
        return reply(200, {"access_token": TOKEN, "expires_in": "86399", "token_type": "Bearer",
                           "resource": "https://management.azure.com/"})

