#!/usr/bin/python3
"""A MOCK of the few AWS APIs davit uses: a fake, because AWS cannot be reached from the tests.

It is a small local HTTPS server (a self-signed certificate made with the real openssl command)
that speaks:

- the Auto Scaling Query API (`davit autoscale`): DescribeAutoScalingGroups, DescribeLifecycleHooks,
  SetDesiredCapacity, TerminateInstanceInAutoScalingGroup, CompleteLifecycleAction,
  RecordLifecycleActionHeartbeat, DescribeAutoScalingInstances;
- the EC2 Query API: DescribeInstances (launch times);
- SSM GetParameter (JSON protocol, WithDecryption) and Secrets Manager GetSecretValue (the AWS
  boot script, deploy/boot);
- IMDSv2 on a second, plain HTTP port, as 169.254.169.254 is: PUT /latest/api/token, then
  /latest/meta-data/instance-id, placement/region, placement/availability-zone,
  iam/security-credentials/ROLE and /latest/dynamic/instance-identity/document.

Every AWS request must carry a valid Signature Version 4 (verified here from the spec, with hashlib
and hmac) made with credentials the fake knows (TEST_* below, or add_credentials); a bad signature,
a stale date, a missing or expired session token get AWS's own error shapes. It holds one or more
Auto Scaling groups' state: min, max, desired capacity, instances and their lifecycle states
(Pending, InService, Terminating:Wait, Terminated), a termination lifecycle hook that holds an
instance in Terminating:Wait until CompleteLifecycleAction or its heartbeat timeout.

It is not AWS: no pagination (NextToken), no cooldowns, no availability zone balancing, instances
are InService as soon as they are launched, and the error messages are AWS's for the cases davit
meets, not all of them.

As a library:

    with FakeAWS() as aws:
        aws.add_group("workers", min_size=1, max_size=5, desired=1)
        ... aws.url, aws.ca_file, aws.imds_url, aws.calls, aws.group("workers") ...

As a program: python3 tests/aws/fake_aws.py --port 8443 [--imds-port 8080] [--group NAME:MIN:MAX:DESIRED]
prints the URLs and the CA file, and serves until interrupted.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import http.server
import itertools
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from xml.sax.saxutils import escape

TEST_REGION = "eu-west-1"
TEST_ACCESS_KEY = "AKIAFAKEDAVITTEST001"
TEST_SECRET_KEY = "fake/davit+test/secret/key/0000000000001"
TEST_SESSION_TOKEN = "FakeSessionTokenForDavitTests//0001"
# A session whose token has expired: signed correctly, refused with ExpiredToken.
EXPIRED_ACCESS_KEY = "ASIAFAKEDAVITEXPIRED"
EXPIRED_SECRET_KEY = "fake/davit+test/secret/key/expired00001"
EXPIRED_SESSION_TOKEN = "FakeSessionTokenForDavitTests//expired"
IMDS_ROLE = "davit-worker"

ASG_NS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
MAX_SKEW = datetime.timedelta(minutes=15)  # AWS refuses a request dated further off


class AWSError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_cert(directory):
    """A self-signed certificate for 127.0.0.1 and localhost, made by openssl. Returns (cert, key)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=fake-aws", "-keyout", key, "-out", cert,
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


# ---- Signature Version 4 (docs.aws.amazon.com, "Create a signed AWS API request") ----

def _uri_encode(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)


def canonical_query(raw):
    pairs = []
    for part in raw.split("&") if raw else []:
        k, _, v = part.partition("=")
        pairs.append((_uri_encode(urllib.parse.unquote(k)), _uri_encode(urllib.parse.unquote(v))))
    return "&".join("%s=%s" % kv for kv in sorted(pairs))


def signing_key(secret, date, region, service):
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def expected_signature(method, raw_path, headers, body, secret, amz_date, scope, signed_headers):
    """The signature of a request, from its parts; headers is a list of (name, value)."""
    path, _, query = raw_path.partition("?")
    canon_headers = ""
    for name in signed_headers:
        values = [re.sub(r"\s+", " ", v.strip()) for n, v in headers if n.lower() == name]
        canon_headers += "%s:%s\n" % (name, ",".join(values))
    payload = None
    for n, v in headers:
        if n.lower() == "x-amz-content-sha256":
            payload = v.strip()
    if payload is None:
        payload = hashlib.sha256(body).hexdigest()
    creq = "\n".join([method, _uri_encode(path, safe="/-_.~"), canonical_query(query), canon_headers,
                      ";".join(signed_headers), payload])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    return hmac.new(signing_key(secret, date, region, service), sts.encode(), hashlib.sha256).hexdigest()


AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                     r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$")


class Instance:
    def __init__(self, iid, launch_time):
        self.id = iid
        self.state = "InService"
        self.launch_time = launch_time
        self.wait_since = None  # when it entered Terminating:Wait
        self.heartbeat = None  # the last heartbeat (or wait_since)
        self.how_ended = None  # "completed", "hook timed out", "terminated"


class Group:
    def __init__(self, name, min_size, max_size, desired, hook_timeout=None):
        self.name, self.min, self.max, self.desired = name, min_size, max_size, desired
        self.instances = {}  # id -> Instance, launch order
        self.ended = {}  # id -> Instance, terminated
        # A termination lifecycle hook (its heartbeat timeout in seconds), or none.
        self.hook = {"name": name + "-terminating", "timeout": hook_timeout} if hook_timeout else None

    def live(self):
        return [i for i in self.instances.values() if not i.state.startswith("Terminat")]

    def in_state(self, state):
        return [i.id for i in self.instances.values() if i.state == state]


class FakeAWS:
    """The fake's state and its two servers. Thread-safe: one lock around the state."""

    def __init__(self, port=0, imds_port=0, host="127.0.0.1"):
        self.lock = threading.RLock()
        self.tmp = tempfile.mkdtemp(prefix="fake-aws-")
        self.cert, self.key = make_cert(self.tmp)
        self.ca_file = self.cert
        self.credentials = {}
        self.add_credentials(TEST_ACCESS_KEY, TEST_SECRET_KEY, TEST_SESSION_TOKEN)
        self.add_credentials(EXPIRED_ACCESS_KEY, EXPIRED_SECRET_KEY, EXPIRED_SESSION_TOKEN, expired=True)
        self.groups = {}
        self.parameters = {}  # SSM name -> (type, value)
        self.secrets = {}  # Secrets Manager name -> string
        self.calls = []  # (service, action or target, params, time) of every accepted request
        # Test hooks: action name -> fn(params), called (under the lock) before it is answered,
        # so that a test can change the world between two of a client's calls.
        self.on_action = {}
        # Outages: action or X-Amz-Target -> (HTTP status, error code) answered instead (after the
        # signature is checked), as AWS does when unavailable or throttling.
        self.outage = {}
        # Actions whose next answer is lost: carried out, then the connection closed unanswered.
        self.drop_answer = set()
        self.refused = []  # (service or "?", error code) of every refused one
        self.imds_tokens = {}  # token -> expiry (monotonic)
        self.imds_instance_id = "i-0fake000000000000"
        self.imds_role = IMDS_ROLE
        self.ids = itertools.count(1)
        self.now = time.time  # replaceable by tests that move time

        handler = _handler(self, imds=False)
        self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.imdsd = http.server.ThreadingHTTPServer((host, imds_port), _handler(self, imds=True))
        self.url = "https://%s:%d" % (host, self.httpd.server_address[1])
        self.imds_url = "http://%s:%d" % (host, self.imdsd.server_address[1])
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.httpd, self.imdsd)]
        for t in self.threads:
            t.start()

    def close(self):
        for s in (self.httpd, self.imdsd):
            s.shutdown()
            s.server_close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- setting up ----

    def add_credentials(self, access_key, secret_key, session_token=None, expired=False):
        self.credentials[access_key] = {"secret": secret_key, "token": session_token, "expired": expired}

    def add_group(self, name, min_size, max_size, desired, hook_timeout=None):
        """A group with desired instances InService; hook_timeout (s) adds a termination hook."""
        with self.lock:
            g = Group(name, min_size, max_size, 0, hook_timeout)
            self.groups[name] = g
            self._set_desired(g, desired)
            return g

    def group(self, name):
        return self.groups[name]

    def actions(self, name=None):
        """The actions accepted so far (all, or those named name)."""
        with self.lock:
            return [c for c in self.calls if name is None or c[1] == name]

    # ---- the group's behaviour ----

    def _launch(self, g):
        iid = "i-%017x" % (0xfa4e0000000 + next(self.ids))
        g.instances[iid] = Instance(iid, self.now())
        return iid

    def _end(self, g, inst, how):
        inst.state, inst.how_ended = "Terminated", how
        g.instances.pop(inst.id, None)
        g.ended[inst.id] = inst

    def _terminate(self, g, inst, how):
        """Starts an instance's termination: held by the hook, if the group has one."""
        if g.hook:
            inst.state = "Terminating:Wait"
            inst.wait_since = inst.heartbeat = self.now()
        else:
            self._end(g, inst, how)

    def _set_desired(self, g, desired):
        g.desired = desired
        while len(g.live()) < desired:
            self._launch(g)
        # Scale-in by desired capacity picks instances itself (the newest here): runs on them die,
        # which is why davit autoscale never lowers desired capacity this way.
        while len(g.live()) > desired:
            self._terminate(g, g.live()[-1], "terminated by a lower desired capacity")

    def _expire_hooks(self):
        for g in self.groups.values():
            for inst in list(g.instances.values()):
                if inst.state != "Terminating:Wait":
                    continue
                # AWS's global timeout: 100 heartbeat timeouts, at most 48 hours.
                overall = min(100 * g.hook["timeout"], 48 * 3600)
                if self.now() > inst.heartbeat + g.hook["timeout"] or self.now() > inst.wait_since + overall:
                    self._end(g, inst, "hook timed out")

    # ---- requests ----

    def _verify(self, method, raw_path, headers, body):
        """Checks SigV4; returns (service, region) or raises AWSError."""
        auth = next((v for n, v in headers if n.lower() == "authorization"), "")
        m = AUTH_RE.match(auth.strip())
        if not m:
            raise AWSError(403, "IncompleteSignature", "Authorization header requires 'Credential', "
                           "'Signature' and 'SignedHeaders' parameters.")
        akid, date, region, service, signed, sig = m.groups()
        creds = self.credentials.get(akid)
        if creds is None:
            raise AWSError(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
        signed_headers = signed.split(";")
        amz_date = next((v.strip() for n, v in headers if n.lower() == "x-amz-date"), "")
        if "host" not in signed_headers or "x-amz-date" not in signed_headers or amz_date[:8] != date:
            raise AWSError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match "
                           "the signature you provided.")
        try:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            raise AWSError(403, "IncompleteSignature", "Date must be in ISO-8601 'basic format'.")
        if abs(datetime.datetime.now(datetime.timezone.utc) - t) > MAX_SKEW:
            raise AWSError(403, "SignatureDoesNotMatch", "Signature expired: %s is now earlier or later than "
                           "the allowed 15 minutes." % amz_date)
        want = expected_signature(method, raw_path, headers, body, creds["secret"], amz_date,
                                  "%s/%s/%s/aws4_request" % (date, region, service), signed_headers)
        if not hmac.compare_digest(want, sig):
            raise AWSError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match "
                           "the signature you provided. Check your AWS Secret Access Key and signing method.")
        token = next((v.strip() for n, v in headers if n.lower() == "x-amz-security-token"), None)
        if creds["token"] != token:
            raise AWSError(403, "InvalidClientTokenId", "The security token included in the request is invalid.")
        if creds["expired"]:
            raise AWSError(403, "ExpiredToken", "The security token included in the request is expired")
        return service, region

    def handle_aws(self, method, raw_path, headers, body):
        """One signed request: returns (status, content type, body bytes)."""
        target = next((v for n, v in headers if n.lower() == "x-amz-target"), None)
        # The service named in the credential scope picks the error's shape, even for a refusal.
        scope = re.search(r"Credential=[^/]*/\d{8}/[^/]*/([a-z0-9-]+)/",
                          next((v for n, v in headers if n.lower() == "authorization"), ""))
        service = scope.group(1) if scope else "autoscaling"
        try:
            service, region = self._verify(method, raw_path, headers, body)
            with self.lock:
                self._expire_hooks()
                down = self.outage.get(target) or self.outage.get(
                    dict(urllib.parse.parse_qsl(body.decode(errors="replace"))).get("Action"))
                if down:
                    raise AWSError(down[0], down[1], "")
                if target:
                    return self._json_call(service, target, body)
                params = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
                params.update(urllib.parse.parse_qsl(raw_path.partition("?")[2]))
                action = params.get("Action", "")
                fn = {"autoscaling": ASG_ACTIONS, "ec2": EC2_ACTIONS}.get(service, {}).get(action)
                if fn is None:
                    raise AWSError(400, "InvalidAction", "The action %s is not valid for this web service."
                                   % escape(action)[:64])
                self.calls.append((service, action, params, self.now()))
                if action in self.on_action:
                    self.on_action[action](params)
                out = fn(self, params).encode()
                if action in self.drop_answer:
                    self.drop_answer.discard(action)
                    return None
                return 200, "text/xml", out
        except AWSError as e:
            with self.lock:
                self.refused.append((service, e.code))
            return error_body(service, target, e)

    def _json_call(self, service, target, body):
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            raise AWSError(400, "SerializationException", "Start of structure or map found where not expected.")
        self.calls.append((service, target, req, self.now()))
        if service == "ssm" and target == "AmazonSSM.GetParameter":
            name = req.get("Name", "")
            if name not in self.parameters:
                raise AWSError(400, "ParameterNotFound", "")
            typ, value = self.parameters[name]
            if typ == "SecureString" and not req.get("WithDecryption"):
                value = base64.b64encode(b"kms-ciphertext:" + hashlib.sha256(value.encode()).digest()).decode()
            out = {"Parameter": {"Name": name, "Type": typ, "Value": value, "Version": 1,
                                 "ARN": "arn:aws:ssm:%s:123456789012:parameter/%s" % (TEST_REGION, name.lstrip("/")),
                                 "DataType": "text"}}
        elif service == "secretsmanager" and target == "secretsmanager.GetSecretValue":
            sid = req.get("SecretId", "")
            if sid not in self.secrets:
                raise AWSError(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
            out = {"ARN": "arn:aws:secretsmanager:%s:123456789012:secret:%s-AbCdEf" % (TEST_REGION, sid),
                   "Name": sid, "SecretString": self.secrets[sid], "VersionId": str(uuid.uuid4()),
                   "VersionStages": ["AWSCURRENT"], "CreatedDate": self.now()}
        else:
            raise AWSError(400, "UnknownOperationException", "")
        return 200, "application/x-amz-json-1.1", json.dumps(out).encode()

    def handle_imds(self, method, path, headers):
        h = {n.lower(): v for n, v in headers}
        if path == "/latest/api/token" and method == "PUT":
            try:
                ttl = int(h.get("x-aws-ec2-metadata-token-ttl-seconds", ""))
            except ValueError:
                ttl = 0
            if not 1 <= ttl <= 21600:
                return 400, "text/plain", b""
            tok = base64.b64encode(os.urandom(30)).decode()
            with self.lock:
                self.imds_tokens[tok] = time.monotonic() + ttl
            return 200, "text/plain", tok.encode()
        if method != "GET":
            return 405, "text/plain", b""
        with self.lock:
            ok = self.imds_tokens.get(h.get("x-aws-ec2-metadata-token", ""), 0) > time.monotonic()
        if not ok:
            return 401, "text/plain", b""
        creds_path = "/latest/meta-data/iam/security-credentials/"
        if path == "/latest/meta-data/instance-id":
            return 200, "text/plain", self.imds_instance_id.encode()
        if path == "/latest/meta-data/placement/region":
            return 200, "text/plain", TEST_REGION.encode()
        if path == "/latest/meta-data/placement/availability-zone":
            return 200, "text/plain", (TEST_REGION + "a").encode()
        if path == "/latest/dynamic/instance-identity/document":
            doc = {"accountId": "123456789012", "architecture": "x86_64", "availabilityZone": TEST_REGION + "a",
                   "imageId": "ami-0fake", "instanceId": self.imds_instance_id, "instanceType": "t3.medium",
                   "pendingTime": iso(self.now()), "region": TEST_REGION, "version": "2017-09-30"}
            return 200, "application/json", json.dumps(doc).encode()
        if path == creds_path:
            return 200, "text/plain", self.imds_role.encode()
        if path == creds_path + self.imds_role:
            c = self.credentials[TEST_ACCESS_KEY]
            doc = {"Code": "Success", "LastUpdated": iso(self.now()), "Type": "AWS-HMAC",
                   "AccessKeyId": TEST_ACCESS_KEY, "SecretAccessKey": c["secret"], "Token": c["token"],
                   "Expiration": iso(self.now() + 6 * 3600)}
            return 200, "text/plain", json.dumps(doc).encode()
        return 404, "text/plain", b""


def error_body(service, target, e):
    rid = str(uuid.uuid4())
    if target or service in ("ssm", "secretsmanager"):
        # The JSON protocol: the exception's name in __type.
        code = {"ExpiredToken": "ExpiredTokenException", "SignatureDoesNotMatch": "InvalidSignatureException",
                "InvalidClientTokenId": "UnrecognizedClientException"}.get(e.code, e.code)
        status = 400 if e.status == 403 else e.status
        return status, "application/x-amz-json-1.1", json.dumps({"__type": code, "message": e.message}).encode()
    if service == "ec2":
        # EC2's own shape; an expired session is RequestExpired there.
        code = {"ExpiredToken": "RequestExpired", "SignatureDoesNotMatch": "AuthFailure"}.get(e.code, e.code)
        return 400 if e.status == 403 else e.status, "text/xml", (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message>'
            "</Error></Errors><RequestID>%s</RequestID></Response>" % (code, escape(e.message), rid)).encode()
    return e.status, "text/xml", (
        '<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>Sender</Type>\n    <Code>%s</Code>\n'
        "    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n"
        % (ASG_NS, e.code, escape(e.message), rid)).encode()


# ---- the Query actions ----

def _response(action, ns, result):
    rid = str(uuid.uuid4())
    inner = "<%sResult>%s</%sResult>" % (action, result, action) if result is not None else ""
    return ('<%sResponse xmlns="%s">\n  %s\n  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n'
            "  </ResponseMetadata>\n</%sResponse>\n" % (action, ns, inner, rid, action))


def _members(params, prefix):
    out, i = [], 1
    while "%s.%d" % (prefix, i) in params:
        out.append(params["%s.%d" % (prefix, i)])
        i += 1
    return out


def _group_of(aws, params):
    name = params.get("AutoScalingGroupName", "")
    if name not in aws.groups:
        raise AWSError(400, "ValidationError", "AutoScalingGroup name not found - no such group")
    return aws.groups[name]


def _int(params, key):
    try:
        return int(params[key])
    except (KeyError, ValueError):
        raise AWSError(400, "ValidationError", "%s: an integer is required" % key)


def _instance_xml(g, i):
    return ("<member><InstanceId>%s</InstanceId><InstanceType>t3.medium</InstanceType>"
            "<AvailabilityZone>%sa</AvailabilityZone><LifecycleState>%s</LifecycleState>"
            "<HealthStatus>Healthy</HealthStatus><ProtectedFromScaleIn>false</ProtectedFromScaleIn>"
            "%s</member>" % (i.id, TEST_REGION, i.state,
                             "<AutoScalingGroupName>%s</AutoScalingGroupName>" % escape(g.name)))


def describe_groups(aws, params):
    names = _members(params, "AutoScalingGroupNames.member") or list(aws.groups)
    xml = ""
    for name in names:
        g = aws.groups.get(name)
        if g is None:
            continue
        xml += ("<member><AutoScalingGroupName>%s</AutoScalingGroupName>"
                "<AutoScalingGroupARN>arn:aws:autoscaling:%s:123456789012:autoScalingGroup:%s</AutoScalingGroupARN>"
                "<MinSize>%d</MinSize><MaxSize>%d</MaxSize><DesiredCapacity>%d</DesiredCapacity>"
                "<DefaultCooldown>300</DefaultCooldown><Instances>%s</Instances>"
                "<HealthCheckType>EC2</HealthCheckType></member>"
                % (escape(g.name), TEST_REGION, uuid.uuid4(), g.min, g.max, g.desired,
                   "".join(_instance_xml(g, i) for i in g.instances.values())))
    return _response("DescribeAutoScalingGroups", ASG_NS, "<AutoScalingGroups>%s</AutoScalingGroups>" % xml)


def describe_instances_asg(aws, params):
    ids = _members(params, "InstanceIds.member")
    xml = "".join(_instance_xml(g, i) for g in aws.groups.values() for i in g.instances.values()
                  if not ids or i.id in ids)
    return _response("DescribeAutoScalingInstances", ASG_NS,
                     "<AutoScalingInstances>%s</AutoScalingInstances>" % xml)


def describe_hooks(aws, params):
    g = _group_of(aws, params)
    xml = ""
    if g.hook:
        xml = ("<member><LifecycleHookName>%s</LifecycleHookName><AutoScalingGroupName>%s</AutoScalingGroupName>"
               "<LifecycleTransition>%s</LifecycleTransition><HeartbeatTimeout>%d</HeartbeatTimeout>"
               "<GlobalTimeout>%d</GlobalTimeout><DefaultResult>CONTINUE</DefaultResult></member>"
               % (escape(g.hook["name"]), escape(g.name), TERMINATING, g.hook["timeout"], 100 * g.hook["timeout"]))
    return _response("DescribeLifecycleHooks", ASG_NS, "<LifecycleHooks>%s</LifecycleHooks>" % xml)


def set_desired(aws, params):
    g = _group_of(aws, params)
    d = _int(params, "DesiredCapacity")
    if d > g.max:
        raise AWSError(400, "ValidationError", "New SetDesiredCapacity value %d is above max value %d for the "
                       "AutoScalingGroup." % (d, g.max))
    if d < g.min:
        raise AWSError(400, "ValidationError", "New SetDesiredCapacity value %d is below min value %d for the "
                       "AutoScalingGroup." % (d, g.min))
    aws._set_desired(g, d)
    return _response("SetDesiredCapacity", ASG_NS, None)


def _find_instance(aws, iid):
    for g in aws.groups.values():
        if iid in g.instances:
            return g, g.instances[iid]
    raise AWSError(400, "ValidationError", "Instance Id not found - No managed instance found for instance ID: %s"
                   % escape(iid)[:32])


def terminate_instance(aws, params):
    g, inst = _find_instance(aws, params.get("InstanceId", ""))
    decrement = params.get("ShouldDecrementDesiredCapacity", "").lower()
    if decrement not in ("true", "false"):
        raise AWSError(400, "ValidationError", "ShouldDecrementDesiredCapacity: true or false is required")
    if inst.state.startswith("Terminat"):
        raise AWSError(400, "ValidationError", "The instance %s is already terminating." % inst.id)
    if decrement == "true":
        # The guard issue #85 of Spacelift's module met: decrementing below min is refused.
        if g.desired - 1 < g.min:
            raise AWSError(400, "ValidationError", "Currently, desiredSize equals minSize (%d). Terminating "
                           "instance without replacement will violate group's min size constraint. Either set "
                           "shouldDecrementDesiredCapacity flag to false or lower group's min size." % g.min)
        g.desired -= 1
        aws._terminate(g, inst, "terminated")
    else:
        aws._terminate(g, inst, "terminated")
        while len(g.live()) < g.desired:
            aws._launch(g)
    activity = ("<Activity><ActivityId>%s</ActivityId><AutoScalingGroupName>%s</AutoScalingGroupName>"
                "<Description>Terminating EC2 instance: %s</Description><Cause>a user request</Cause>"
                "<StartTime>%s</StartTime><StatusCode>InProgress</StatusCode><Progress>0</Progress></Activity>"
                % (uuid.uuid4(), escape(g.name), inst.id, iso(aws.now())))
    return _response("TerminateInstanceInAutoScalingGroup", ASG_NS, activity)


def _waiting_instance(aws, params):
    g = _group_of(aws, params)
    inst = g.instances.get(params.get("InstanceId", ""))
    if not g.hook or params.get("LifecycleHookName") != g.hook["name"] or inst is None \
            or inst.state != "Terminating:Wait":
        raise AWSError(400, "ValidationError", "No active Lifecycle Action found with instance ID %s"
                       % escape(params.get("InstanceId", ""))[:32])
    return g, inst


def complete_action(aws, params):
    g, inst = _waiting_instance(aws, params)
    if params.get("LifecycleActionResult") not in ("CONTINUE", "ABANDON"):
        raise AWSError(400, "ValidationError", "LifecycleActionResult: CONTINUE or ABANDON is required")
    aws._end(g, inst, "completed")
    return _response("CompleteLifecycleAction", ASG_NS, "")


def heartbeat(aws, params):
    _, inst = _waiting_instance(aws, params)
    inst.heartbeat = aws.now()
    return _response("RecordLifecycleActionHeartbeat", ASG_NS, "")


def ec2_describe_instances(aws, params):
    ids = set(_members(params, "InstanceId"))
    if len(ids) > 1000:  # EC2's limit for instance ids in one call
        raise AWSError(400, "InvalidParameterValue", "The maximum number of instance IDs is 1000")
    items = ""
    for g in aws.groups.values():
        for i in list(g.instances.values()) + list(g.ended.values()):
            if ids and i.id not in ids:
                continue
            code, name = (48, "terminated") if i.state == "Terminated" else (16, "running")
            items += ("<item><instanceId>%s</instanceId><instanceType>t3.medium</instanceType>"
                      "<launchTime>%s</launchTime><instanceState><code>%d</code><name>%s</name></instanceState>"
                      "<tagSet><item><key>aws:autoscaling:groupName</key><value>%s</value></item></tagSet></item>"
                      % (i.id, iso(i.launch_time), code, name, escape(g.name)))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="%s">\n'
            "  <requestId>%s</requestId>\n  <reservationSet><item><reservationId>r-0fake</reservationId>"
            "<ownerId>123456789012</ownerId><instancesSet>%s</instancesSet></item></reservationSet>\n"
            "</DescribeInstancesResponse>\n" % (EC2_NS, uuid.uuid4(), items))


ASG_ACTIONS = {
    "DescribeAutoScalingGroups": describe_groups,
    "DescribeAutoScalingInstances": describe_instances_asg,
    "DescribeLifecycleHooks": describe_hooks,
    "SetDesiredCapacity": set_desired,
    "TerminateInstanceInAutoScalingGroup": terminate_instance,
    "CompleteLifecycleAction": complete_action,
    "RecordLifecycleActionHeartbeat": heartbeat,
}
EC2_ACTIONS = {"DescribeInstances": ec2_describe_instances}


def _handler(aws, imds):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            headers = list(self.headers.items())
            if imds:
                answer = aws.handle_imds(self.command, self.path, headers)
            else:
                answer = aws.handle_aws(self.command, self.path, headers, body)
            if answer is None:  # drop_answer: acted, then the connection is lost
                self.close_connection = True
                return
            # (status, content type, body), or with a dict of more headers (fake_cloud.py's mocks)
            status, ctype, out = answer[:3]
            self.send_response(status)
            for k, v in (answer[3] if len(answer) > 3 else {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_PATCH = _serve

        def log_message(self, fmt, *args):
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser(description="A MOCK of AWS Auto Scaling, EC2, SSM, Secrets Manager and IMDSv2 "
                                 "for davit's tests.")
    ap.add_argument("--port", type=int, default=0, help="HTTPS port (0: any)")
    ap.add_argument("--imds-port", type=int, default=0, help="IMDS plain HTTP port (0: any)")
    ap.add_argument("--group", action="append", default=[], metavar="NAME:MIN:MAX:DESIRED[:HOOK_TIMEOUT]")
    ap.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                    help="an SSM SecureString parameter")
    ap.add_argument("--secret", action="append", default=[], metavar="NAME=VALUE",
                    help="a Secrets Manager secret string")
    args = ap.parse_args()
    # Blocked before the servers' threads start (they inherit it), and waited for below: a stop
    # at any point, even while the URLs are printed, ends the program cleanly.
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    aws = FakeAWS(args.port, args.imds_port)
    for spec in args.group:
        parts = spec.split(":")
        aws.add_group(parts[0], *(int(p) for p in parts[1:4]), hook_timeout=int(parts[4]) if len(parts) > 4 else None)
    for p in args.parameter:
        k, _, v = p.partition("=")
        aws.parameters[k] = ("SecureString", v)
    for p in args.secret:
        k, _, v = p.partition("=")
        aws.secrets[k] = v
    print("url %s\nimds %s\nca %s\nregion %s\naccess_key %s\nsecret_key %s\nsession_token %s"
          % (aws.url, aws.imds_url, aws.ca_file, TEST_REGION, TEST_ACCESS_KEY, TEST_SECRET_KEY,
             TEST_SESSION_TOKEN), flush=True)
    signal.sigwait(stop)
    aws.close()


if __name__ == "__main__":
    main()
