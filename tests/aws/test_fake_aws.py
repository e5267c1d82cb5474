"""The fake AWS (a MOCK, fake_aws.py) itself: its SigV4 check agrees with AWS's published test
vectors and with curl's signing, and refuses what AWS refuses; its group, SSM, Secrets Manager and
IMDSv2 behave as the autoscaler and the boot script expect."""

import json
import subprocess
import urllib.request

import pytest

import fake_aws as F


@pytest.fixture(scope="module")
def aws():
    with F.FakeAWS() as a:
        yield a


def curl(aws, data, service="autoscaling", creds=(F.TEST_ACCESS_KEY, F.TEST_SECRET_KEY, F.TEST_SESSION_TOKEN),
         headers=()):
    """A request signed by curl's own SigV4 (--aws-sigv4), as davit autoscale's libcurl signs."""
    cmd = ["curl", "-sS", "--cacert", aws.ca_file, "--aws-sigv4", "aws:amz:%s:%s" % (F.TEST_REGION, service),
           "--user", "%s:%s" % creds[:2], "-w", "\n%{http_code}", "-d", data, aws.url + "/"]
    if creds[2]:
        cmd[1:1] = ["-H", "X-Amz-Security-Token: " + creds[2]]
    for h in headers:
        cmd[1:1] = ["-H", h]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


def test_signature_matches_aws_test_vectors():
    # aws-sig-v4-test-suite: get-vanilla and get-vanilla-query-order-key
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    h = [("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]
    scope = "20150830/us-east-1/service/aws4_request"
    assert F.expected_signature("GET", "/", h, b"", secret, "20150830T123600Z", scope, ["host", "x-amz-date"]) == \
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    assert F.expected_signature("GET", "/?Param2=value2&Param1=value1", h, b"", secret, "20150830T123600Z", scope,
                                ["host", "x-amz-date"]) == \
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"


def test_signed_requests_and_refusals(aws):
    aws.add_group("sig", 0, 3, 1)
    st, body = curl(aws, "Action=DescribeAutoScalingGroups&Version=2011-01-01&AutoScalingGroupNames.member.1=sig")
    assert st == 200 and "<DesiredCapacity>1</DesiredCapacity>" in body
    st, body = curl(aws, "Action=DescribeAutoScalingGroups&Version=2011-01-01",
                    creds=(F.TEST_ACCESS_KEY, "not-the-secret", F.TEST_SESSION_TOKEN))
    assert st == 403 and "<Code>SignatureDoesNotMatch</Code>" in body
    st, body = curl(aws, "Action=DescribeAutoScalingGroups&Version=2011-01-01",
                    creds=(F.EXPIRED_ACCESS_KEY, F.EXPIRED_SECRET_KEY, F.EXPIRED_SESSION_TOKEN))
    assert st == 403 and "<Code>ExpiredToken</Code>" in body
    st, body = curl(aws, "Action=DescribeAutoScalingGroups&Version=2011-01-01",
                    creds=(F.TEST_ACCESS_KEY, F.TEST_SECRET_KEY, None))
    assert st == 403 and "<Code>InvalidClientTokenId</Code>" in body
    st, body = curl(aws, "Action=DescribeInstances&Version=2016-11-15", service="ec2",
                    creds=(F.EXPIRED_ACCESS_KEY, F.EXPIRED_SECRET_KEY, F.EXPIRED_SESSION_TOKEN))
    assert st == 400 and "<Code>RequestExpired</Code>" in body and "<Response><Errors>" in body
    # a stale date: signed correctly, a day ago
    st, body = curl(aws, "Action=DescribeAutoScalingGroups&Version=2011-01-01",
                    headers=("X-Amz-Date: 20200101T000000Z",))
    assert st == 403 and "SignatureDoesNotMatch" in body


def test_group_min_size_and_hook(aws):
    g = aws.add_group("hooked", 1, 4, 1, hook_timeout=60)
    (iid,) = list(g.instances)
    st, body = curl(aws, "Action=TerminateInstanceInAutoScalingGroup&Version=2011-01-01&InstanceId=%s"
                    "&ShouldDecrementDesiredCapacity=true" % iid)
    assert st == 400 and "min size constraint" in body
    st, _ = curl(aws, "Action=SetDesiredCapacity&Version=2011-01-01&AutoScalingGroupName=hooked&DesiredCapacity=5")
    assert st == 400 and g.desired == 1
    st, _ = curl(aws, "Action=SetDesiredCapacity&Version=2011-01-01&AutoScalingGroupName=hooked&DesiredCapacity=2")
    assert st == 200 and len(g.live()) == 2
    st, _ = curl(aws, "Action=TerminateInstanceInAutoScalingGroup&Version=2011-01-01&InstanceId=%s"
                 "&ShouldDecrementDesiredCapacity=true" % iid)
    assert st == 200 and g.desired == 1 and g.instances[iid].state == "Terminating:Wait"
    st, body = curl(aws, "Action=DescribeLifecycleHooks&Version=2011-01-01&AutoScalingGroupName=hooked")
    assert "<HeartbeatTimeout>60</HeartbeatTimeout>" in body and F.TERMINATING in body
    st, _ = curl(aws, "Action=CompleteLifecycleAction&Version=2011-01-01&AutoScalingGroupName=hooked"
                 "&LifecycleHookName=hooked-terminating&LifecycleActionResult=CONTINUE&InstanceId=%s" % iid)
    assert st == 200 and iid not in g.instances and g.ended[iid].how_ended == "completed"
    st, body = curl(aws, "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=%s" % iid, service="ec2")
    assert st == 200 and "<name>terminated</name>" in body


def test_ssm_secrets_and_imds(aws):
    aws.parameters["/davit/pool-token"] = ("SecureString", "tok-123")
    aws.secrets["davit/pool-key"] = "-----BEGIN PRIVATE KEY-----\n..."
    json_h = ("Content-Type: application/x-amz-json-1.1",)
    st, body = curl(aws, json.dumps({"Name": "/davit/pool-token", "WithDecryption": True}), service="ssm",
                    headers=json_h + ("X-Amz-Target: AmazonSSM.GetParameter",))
    assert st == 200 and json.loads(body)["Parameter"]["Value"] == "tok-123"
    st, body = curl(aws, json.dumps({"Name": "/davit/pool-token"}), service="ssm",
                    headers=json_h + ("X-Amz-Target: AmazonSSM.GetParameter",))
    assert st == 200 and json.loads(body)["Parameter"]["Value"] != "tok-123"
    st, body = curl(aws, json.dumps({"SecretId": "davit/pool-key"}), service="secretsmanager",
                    headers=json_h + ("X-Amz-Target: secretsmanager.GetSecretValue",))
    assert st == 200 and json.loads(body)["SecretString"].startswith("-----BEGIN")
    st, body = curl(aws, json.dumps({"SecretId": "x"}), service="secretsmanager",
                    creds=(F.EXPIRED_ACCESS_KEY, F.EXPIRED_SECRET_KEY, F.EXPIRED_SESSION_TOKEN),
                    headers=json_h + ("X-Amz-Target: secretsmanager.GetSecretValue",))
    assert st == 400 and json.loads(body)["__type"] == "ExpiredTokenException"

    def imds(path, token=None, method="GET", ttl=None):
        req = urllib.request.Request(aws.imds_url + path, method=method)
        if token:
            req.add_header("X-aws-ec2-metadata-token", token)
        if ttl:
            req.add_header("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    assert imds("/latest/meta-data/instance-id")[0] == 401  # IMDSv2 only
    st, tok = imds("/latest/api/token", method="PUT", ttl=60)
    assert st == 200
    assert imds("/latest/meta-data/instance-id", tok) == (200, aws.imds_instance_id)
    role = imds("/latest/meta-data/iam/security-credentials/", tok)[1]
    doc = json.loads(imds("/latest/meta-data/iam/security-credentials/" + role, tok)[1])
    assert (doc["AccessKeyId"], doc["Token"]) == (F.TEST_ACCESS_KEY, F.TEST_SESSION_TOKEN)


def test_runs_as_a_program():
    p = subprocess.Popen(["/usr/bin/python3", F.__file__, "--group", "cli:0:2:1"], stdout=subprocess.PIPE, text=True)
    try:
        lines = dict(p.stdout.readline().split(" ", 1) for _ in range(7))
        assert lines["url"].startswith("https://127.0.0.1:")
    finally:
        p.terminate()
        assert p.wait(timeout=30) == 0
