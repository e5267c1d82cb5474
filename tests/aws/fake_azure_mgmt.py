#!/usr/bin/python3
"""A MOCK of the Azure Resource Manager calls `davit autoscale --provider azure` makes (Azure
cannot be reached from the tests): Virtual Machine Scale Sets get (sku.capacity), update (PATCH
sku.capacity), delete instances (instanceIds) and the list of the scale set's VMs (instanceId,
name, provisioningState, timeCreated), over HTTPS; Microsoft Entra ID's token endpoint for a service principal's client credentials
(POST /TENANT/oauth2/v2.0/token, grant_type=client_credentials) on the same server; and the instance
metadata service's managed identity token (GET /metadata/identity/oauth2/token, header Metadata: true) on plain HTTP, as
169.254.169.254 is. Scaffolding: fake_cloud.py.

Changes are asynchronous, as Azure's are: a new VM is Creating, a deleted one Deleting, in the
first VM list after the change, and settled at the next (fake_cloud.Group). Deleting VMs answers
202 with an Azure-AsyncOperation header whose URL answers InProgress, then Succeeded (the VM gone);
the capacity is lowered when the deletion ends.

It is not Azure: no orchestration modes, no zones; api-version is required but any is accepted."""

import datetime
import json
import re
import urllib.parse

from fake_cloud import Group, ManagedMock, reply

SUBSCRIPTION = "00000000-0000-4000-8000-00000000da71"
RESOURCE_GROUP = "davit-rg"
TOKEN = "eyJ0eXAiOiJKV1QifQ.fake-davit-azure-mgmt-token.c2ln"
EXPIRED_TOKEN = "eyJ0eXAiOiJKV1QifQ.fake-davit-azure-mgmt-expired.c2ln"
TENANT = "00000000-0000-4000-8000-0000000ten1"
CLIENT_ID = "00000000-0000-4000-8000-000000c1e471"
CLIENT_SECRET = "fake~davit~client~secret~0001"
PREFIX = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachineScaleSets/" % (
    SUBSCRIPTION, RESOURCE_GROUP)
ROUTE = re.compile(r"^%s([^/]+)(/virtualMachines|/delete)?$" % re.escape(PREFIX), re.I)
OPERATION = re.compile(r"^/subscriptions/%s/providers/Microsoft.Compute/locations/westeurope/operations/(\d+)$"
                       % SUBSCRIPTION)
STATE = {None: "Succeeded", "creating": "Creating", "deleting": "Deleting"}


def error(status, code, message):
    return reply(status, {"error": {"code": code, "message": message}})


class FakeAzureMgmt(ManagedMock):
    MUTATIONS = ("update", "delete")
    DELETE_LOWERS_AT_END = 1

    def __init__(self):
        super().__init__("fake-azure-mgmt-", [TOKEN], [EXPIRED_TOKEN])
        self.operations = {}  # id -> [(group, inst)], polls

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
        if url.path != "/%s/oauth2/v2.0/token" % TENANT:
            return None
        form = dict(urllib.parse.parse_qsl((body or b"").decode()))
        if method != "POST" or form.get("grant_type") != "client_credentials" or \
                form.get("scope") != "https://management.azure.com/.default":
            return reply(400, {"error": "invalid_request", "error_description": "AADSTS900144: a parameter is missing"})
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            self.refused.append(("token", 401))
            return reply(401, {"error": "invalid_client",
                               "error_description": "AADSTS7000215: Invalid client secret provided."})
        self.calls.append(("POST", "client_credentials", None, CLIENT_ID))
        return reply(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN})

    def metadata(self, method, url, headers):
        if url.path != "/metadata/identity/oauth2/token" or headers.get("metadata") != "true":
            return error(400, "bad_request", "Required metadata header not specified")
        if "resource=https://management.azure.com/" not in urllib.parse.unquote(url.query):
            return error(400, "invalid_resource", "this mock only gives management tokens")
        return reply(200, {"access_token": TOKEN, "expires_in": "86399", "token_type": "Bearer",
                           "resource": "https://management.azure.com/"})

