#!/usr/bin/python3
"""A MOCK of the few Azure APIs the davit boot script and drain watcher use (Azure cannot be
reached from the tests), on fake_cloud.py's servers:

- the Instance Metadata Service (plain HTTP, as 169.254.169.254 is; every request must carry
  `Metadata: true`, else 400 as Azure answers): instance/compute/resourceId and name (format=text),
  identity/oauth2/token (a managed identity's access token for resource https://vault.azure.net,
  optionally client_id=), scheduledevents (GET the document, POST StartRequests to acknowledge);
- Key Vault (HTTPS): GET /secrets/NAME?api-version=7.4 with `Authorization: Bearer TOKEN`, Key
  Vault's error shapes (401 Unauthorized, 403 Forbidden, 404 SecretNotFound).

It is not Azure: one vault (the endpoint stands for any vault name), one scale set instance, no
token expiry, and scheduled events are only what a test adds.

    with FakeAzure() as az:
        az.secrets["davit-token"] = token
        ... az.url, az.ca_file, az.metadata_url, az.calls, az.add_event("Terminate") ...
"""
import json
import time
import urllib.parse
import uuid

from fake_cloud import CloudMock, bearer, reply, text

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
SCALE_SET = "davit-web"
INSTANCE_ID = "3"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
ACCESS_TOKEN = "eyJ0eXAiOiJKV1QifQ.fake-davit-azure-token.c2lnbmF0dXJl"


class FakeAzure(CloudMock):
    def __init__(self):
        super().__init__("fake-azure-")
        self.secrets = {}  # Key Vault secret name -> value
        self.denied = set()  # secret names the identity may not read (403)
        self.client_id = CLIENT_ID  # the user-assigned identity's
        self.instance_id = INSTANCE_ID
        self.instance_name = f"{SCALE_SET}_{INSTANCE_ID}"
        self.resource_id = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/davit/providers/"
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

    def handle_metadata(self, method, url, headers, body):
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
            if q.get("resource") != ["https://vault.azure.net"] or "api-version" not in q:
                return reply(400, {"error": "invalid_request"})
            if "client_id" in q and q["client_id"] != [self.client_id]:
                self.refused.append(("identity", 400))
                return reply(400, {"error": "invalid_request", "error_description": "Identity not found"})
            self.calls.append(("identity", q.get("client_id", [""])[0]))
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

    def handle_api(self, method, url, headers, body):
        q = urllib.parse.parse_qs(url.query)
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
        self.calls.append(("keyvault", name))
        return reply(200, {"value": self.secrets[name], "id": f"https://vault/secrets/{name}/0123",
                           "attributes": {"enabled": True}})
