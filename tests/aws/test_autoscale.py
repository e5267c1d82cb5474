"""davit autoscale (issue 16) against a fake AWS (fake_aws.py, a MOCK: AWS cannot be reached from
the tests), a real davit server and stand-ins for davit-launcher (tests/server/davit_harness.py)
whose instance_id metadata names the fake's instances, as the AWS boot script's launchers do.

One server and one fake for the module; each test has its own pool and group."""

import datetime
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

import fake_aws as F
from autoscale_fixtures import DrainProxy, PoolCell, decisions, kinds
from davit_fixtures import check_stopped
from davit_harness import DAVIT, Launcher, Server, wait_for


@pytest.fixture(scope="module")
def env():
    tmp = tempfile.mkdtemp(prefix="davit-aws-")
    server = Server(tmp)
    aws = F.FakeAWS()
    try:
        yield server, aws
    finally:
        aws.close()
        check_stopped(server)
        shutil.rmtree(tmp, ignore_errors=True)


class Cell(PoolCell):
    """One pool and one Auto Scaling group, with the launchers on its instances."""

    def __init__(self, env, name, min_size, max_size, desired, hook_timeout=None):
        server, self.aws = env
        super().__init__(server, name)
        self.group = self.aws.add_group(name, min_size, max_size, desired, hook_timeout)

    def instance_ids(self):
        return [i.id for i in self.group.live()]

    def args(self, *extra):
        return ["autoscale", "--pool", self.name, "--group", self.name, "--region", F.TEST_REGION,
                "--aws-endpoint", self.aws.url + "/"] + list(extra)

    def environ(self, creds=(F.TEST_ACCESS_KEY, F.TEST_SECRET_KEY, F.TEST_SESSION_TOKEN), server_url=None):
        e = self.base_environ(server_url)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                  "AWS_DEFAULT_REGION", "AWS_PROFILE"):
            e.pop(k, None)
        e.update({"AWS_CA_BUNDLE": self.aws.ca_file, "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.aws.imds_url})
        if creds:
            e.update({"AWS_ACCESS_KEY_ID": creds[0], "AWS_SECRET_ACCESS_KEY": creds[1],
                      "AWS_SESSION_TOKEN": creds[2]})
        return e

    def mutations(self):
        return [c[1] for c in self.aws.actions() if c[1] in MUTATIONS and self._mine(c[2])]

    def _mine(self, params):
        return params.get("AutoScalingGroupName") == self.name or \
            params.get("InstanceId", "") in set(self.group.instances) | set(self.group.ended)


MUTATIONS = ("SetDesiredCapacity", "TerminateInstanceInAutoScalingGroup", "CompleteLifecycleAction")


def tick_while(c, during):
    """One tick run in the background while during(process) acts; returns its log."""
    p = subprocess.Popen([DAVIT] + c.args(), env=c.environ(), stderr=subprocess.PIPE, text=True)
    try:
        during(p)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    print(err)
    assert p.returncode == 0, err
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    return err


def test_scale_out_on_pending_up_to_max_and_max_create(env):
    c = Cell(env, "out", 0, 4, 0)
    c.submit(6)
    ds = c.tick("--max-create", "3")
    assert kinds(ds) == ["scale_out"] and ds[0][1]["desired"] == "0->3"
    assert c.group.desired == 3 and len(c.group.live()) == 3
    # Instances starting, no worker yet: desired and registered workers disagree, no change.
    assert kinds(c.tick("--max-create", "3")) == ["hold"]
    assert c.group.desired == 3
    for la in c.boot():
        assert [m["type"] for m in la.poll(wait_s=0)] == ["run"]  # each takes a run
    # busy 3 + pending 3 = 6 > max 4: one more (the max), not three
    ds = c.tick("--max-create", "3")
    assert kinds(ds) == ["scale_out"] and ds[0][1]["desired"] == "3->4" and c.group.desired == 4
    c.boot()
    # At max: credentials from the instance's role this time (IMDSv2), and nothing to do.
    ds = c.tick("--max-create", "3", creds=None)
    assert kinds(ds) == ["steady"] and "max size 4" in ds[0][1]["reason"]
    assert c.mutations() == ["SetDesiredCapacity", "SetDesiredCapacity"]


def test_scale_out_counts_free_slots(env):
    """Issue 16, M5: launchers taking two runs at once (DAVIT_LAUNCHER_CONCURRENCY=2). One holds a
    run and has a slot free; with 3 runs pending, 4 runs need 2 instances, not 4."""
    c = Cell(env, "slots", 0, 10, 1)
    iid = c.instance_ids()[0]
    la = Launcher(c.server, c.token, c.key, hostname=iid, capacity=2)
    la.register(metadata={"instance_id": iid})
    c.launchers[iid] = la
    c.submit(1)
    assert [m["type"] for m in la.poll(wait_s=0)] == ["run"]
    c.submit(3)
    # The option over what the workers report: one slot an instance is 4.
    ds = c.tick("--dry-run", "--slots-per-instance", "1")
    assert kinds(ds) == ["scale_out"] and ds[0][1]["desired"] == "1->4" and c.group.desired == 1
    ds = c.tick()
    assert kinds(ds) == ["scale_out"] and ds[0][1]["desired"] == "1->2", ds
    assert "of 2 slots" in ds[0][1]["reason"] and c.group.desired == 2


def test_scale_in_only_idle_workers_past_the_delay(env):
    c = Cell(env, "in", 0, 3, 2)
    a, b = c.boot()
    c.submit(1)
    assert [m["type"] for m in a.poll(wait_s=0)] == ["run"]  # a busy, b idle
    ds = c.tick("--scale-down-delay", "1h")
    assert kinds(ds) == ["steady"] and "scale-down delay" in ds[0][1]["reason"]
    assert c.mutations() == []
    ds = c.tick("--scale-down-delay", "0s")
    assert kinds(ds) == ["scale_in"] and ds[0][1]["instance"] == b.hostname
    assert c.group.desired == 1 and list(c.group.instances) == [a.hostname]
    assert c.group.ended[b.hostname].how_ended == "terminated"
    assert c.worker(a.hostname)["state"] == "busy"
    assert c.mutations() == ["TerminateInstanceInAutoScalingGroup"]


def test_a_busy_worker_that_was_drained_is_undrained_and_kept(env):
    c = Cell(env, "race", 0, 3, 2)
    a, b = c.boot()
    c.submit(1)  # pending 1: target 1, capacity 2: the oldest idle worker (a) is the candidate
    # Between the autoscaler's read of the pool and its drain, a takes the run.
    proxy = DrainProxy(c.server.port, lambda: a.poll(wait_s=0))
    try:
        ds = c.tick("--scale-down-delay", "0s", server_url=proxy.url)
    finally:
        proxy.close()
    assert kinds(ds) == ["undrained_busy"] and ds[0][1]["instance"] == a.hostname
    assert c.worker(a.hostname)["state"] == "busy"  # undrained: it takes runs again
    assert a.hostname in c.group.instances and c.group.desired == 2
    assert c.mutations() == []


def test_a_terminate_whose_answer_is_lost_leaves_the_worker_drained(env):
    """The connection drops after AWS acted on TerminateInstanceInAutoScalingGroup: the group,
    read again, shows the instance leaving, so its worker is not undrained (it would take a run
    on a dying machine); an AWS error answer with the instance still live undrains it."""
    c = Cell(env, "lostanswer", 0, 4, 2)
    a, b = c.boot()
    c.aws.drop_answer.add("TerminateInstanceInAutoScalingGroup")
    ds = c.tick("--scale-down-delay", "0s")
    assert kinds(ds) == ["scale_in", "scale_in"], ds
    assert {a.hostname, b.hostname} <= set(c.group.ended)
    assert {c.worker(i)["state"] for i in (a.hostname, b.hostname)} == {"drained"}
    assert "the terminate call failed but the instance is leaving" in c.last.stderr


def test_a_refused_terminate_undrains_the_worker(env):
    c = Cell(env, "refusedterm", 0, 4, 1)
    (a,) = c.boot()
    c.aws.outage["TerminateInstanceInAutoScalingGroup"] = (400, "ScalingActivityInProgress")
    try:
        c.tick("--scale-down-delay", "0s", rc=8)
    finally:
        del c.aws.outage["TerminateInstanceInAutoScalingGroup"]
    assert a.hostname in c.group.instances
    assert c.worker(a.hostname)["state"] == "idle"


def test_drained_workers_are_not_capacity(env):
    c = Cell(env, "drained", 0, 3, 2)
    a, b = c.boot()
    c.server.ok("POST", "/api/v1/workers/%d/drain" % b.id, {})
    c.submit(2)
    # demand 2 (pending); capacity 1 (a): b, drained, would make it 2 and nothing would happen
    ds = c.tick()
    assert kinds(ds) == ["scale_out"] and ds[0][1]["desired"] == "2->3"


def test_min_size_one(env):
    c = Cell(env, "min1", 1, 3, 2)
    a, b = c.boot()
    ds = c.tick("--scale-down-delay", "0s")
    assert kinds(ds) == ["scale_in"] and c.group.desired == 1
    # At min size: the last idle worker stays, and no call is made that the group would refuse.
    ds = c.tick("--scale-down-delay", "0s")
    assert kinds(ds) == ["steady"] and c.group.desired == 1 and len(c.group.live()) == 1
    assert c.mutations() == ["TerminateInstanceInAutoScalingGroup"]
    assert ("autoscaling", "ValidationError") not in c.aws.refused


def test_a_stray_instance_is_terminated(env):
    c = Cell(env, "stray", 0, 4, 3)
    ids = list(c.group.instances)
    c.boot(ids[0])
    c.group.instances[ids[1]].launch_time -= 11 * 60  # no worker for 11 minutes
    ds = c.tick()
    assert kinds(ds) == ["stray"] and ds[0][1]["instance"] == ids[1]
    assert ids[1] in c.group.ended and c.group.desired == 2
    assert ids[2] in c.group.instances  # young, no worker yet: left to boot
    assert kinds(c.tick()) == ["hold"]


def test_no_stray_nor_hook_completed_while_workers_have_no_instance_id(env):
    """Fail closed: a worker registered without instance_id metadata may be on an instance that
    looks worker-less; that instance is neither terminated as a stray nor has its lifecycle action
    completed at once."""
    c = Cell(env, "unlabelled", 0, 4, 3, hook_timeout=300)
    ids = list(c.group.instances)
    c.boot(ids[0])
    la = Launcher(c.server, c.token, c.key, hostname="unlabelled-host")
    la.register(metadata={"zone": "test"})  # no instance_id: started by hand, say
    c.group.instances[ids[1]].launch_time -= 11 * 60
    ds = c.tick()
    assert kinds(ds) == ["hold"] and ds[0][1]["instance"] == ids[1]
    assert "no instance_id metadata" in c.last.stderr
    assert c.mutations() == [] and ids[1] in c.group.instances
    with c.aws.lock:
        c.aws._terminate(c.group, c.group.instances[ids[2]], "terminated")
        c.group.desired = 2
    ds = c.tick()
    assert ("hold", ids[2]) in [(k, f.get("instance")) for k, f in ds]
    assert "CompleteLifecycleAction" not in c.mutations()
    assert c.group.instances[ids[2]].state == "Terminating:Wait"


def test_launch_times_read_in_batches_of_at_most_1000(env):
    """1001 instances with no worker: their launch times in two DescribeInstances calls (EC2 takes
    at most 1000 ids a call), and no stray among the young ones."""
    c = Cell(env, "batches", 0, 2000, 1001)
    before = len(c.aws.actions("DescribeInstances"))
    assert kinds(c.tick()) == ["hold"]
    calls = c.aws.actions("DescribeInstances")[before:]
    sizes = sorted(len([k for k in call[2] if k.startswith("InstanceId.")]) for call in calls)
    assert sizes == [1, 1000]


def test_with_every_a_stray_is_worker_less_for_stray_after_not_just_old(env):
    """An instance launched long ago but seen worker-less only now (its worker just left) is a stray
    only after --stray-after of ticks without a worker, not at the first tick."""
    c = Cell(env, "strayevery", 0, 4, 2)
    ids = list(c.group.instances)
    c.boot(ids[0])
    c.group.instances[ids[1]].launch_time -= 60 * 60
    start = time.time()
    p = subprocess.Popen([DAVIT] + c.args("--every", "1s", "--stray-after", "3s"), env=c.environ(),
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for("the stray terminated", lambda: ids[1] in c.group.ended, limit=30)
    finally:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    print(err)
    assert p.returncode == 0, err
    assert "AddressSanitizer" not in err and "runtime error" not in err, err
    (call,) = [x for x in c.aws.actions("TerminateInstanceInAutoScalingGroup") if x[2]["InstanceId"] == ids[1]]
    assert call[3] - start >= 3, err
    assert "has had no worker for" in err


def test_lifecycle_hook_completes_only_after_the_run_ends(env):
    c = Cell(env, "hook", 0, 3, 1, hook_timeout=300)
    (a,) = c.boot()
    (rid,) = c.submit(1)
    assert [m["type"] for m in a.poll(wait_s=0)] == ["run"]
    a.event(rid, "running", phase="plan")
    iid = a.hostname
    with c.aws.lock:  # an instance refresh or a manual scale-in: the hook holds it
        c.aws._terminate(c.group, c.group.instances[iid], "terminated")
        c.group.desired = 0
    before_end = []

    def during(p):
        wait_for("the worker drained", lambda: c.worker(iid)["state"] == "draining")
        assert c.group.instances[iid].state == "Terminating:Wait"
        assert "CompleteLifecycleAction" not in c.mutations()
        before_end.append(time.time())
        a.event(rid, "result", outcome="finished", exit_code=0)

    err = tick_while(c, during)
    assert iid in c.group.ended and c.group.ended[iid].how_ended == "completed"
    done = [call[3] for call in c.aws.actions("CompleteLifecycleAction")]
    ended = datetime.datetime.strptime(c.server.run(rid)["ended_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    ended = ended.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert len(done) == 1 and done[0] >= before_end[0] and done[0] >= ended
    assert "lifecycle_completed" in kinds(decisions(err))


def test_a_run_longer_than_the_hooks_heartbeat_timeout_survives(env):
    """A run that outlasts the hook's heartbeat timeout: the autoscaler holds the instance with
    heartbeats (the fake ends it at its timeout otherwise) and completes the action when the run
    ends; an idle worker's at once; pauses that grow (a handful of reads, not a busy loop)."""
    c = Cell(env, "hookheartbeat", 0, 3, 2, hook_timeout=3)  # a heartbeat every 2.7 s
    a, b = c.boot()
    (rid,) = c.submit(1)
    assert [m["type"] for m in a.poll(wait_s=0)] == ["run"]
    a.event(rid, "running", phase="plan")
    with c.aws.lock:
        for iid in (a.hostname, b.hostname):
            c.aws._terminate(c.group, c.group.instances[iid], "terminated")
        c.group.desired = 0
    reads = c.server.log().count("path=/api/v1/pools/hookheartbeat/scaling")
    def during(p):
        # Past two heartbeat timeouts after it began waiting: still held.
        wait_for("three heartbeats", lambda: len([x for x in c.aws.actions("RecordLifecycleActionHeartbeat")
                                                   if x[2].get("InstanceId") == a.hostname]) >= 3
                 or p.poll() is not None, limit=30)
        with c.aws.lock:
            c.aws._expire_hooks()
            assert c.group.instances[a.hostname].state == "Terminating:Wait", c.group.ended
        assert p.poll() is None
        a.event(rid, "result", outcome="finished", exit_code=0)

    err = tick_while(c, during)
    ds = decisions(err)
    assert sorted(kinds(ds)) == ["lifecycle_completed", "lifecycle_completed", "steady"]
    assert {f["instance"] for k, f in ds if k == "lifecycle_completed"} == {a.hostname, b.hostname}
    assert c.group.ended[a.hostname].how_ended == "completed"  # by davit autoscale, not the timeout
    assert c.group.ended[b.hostname].how_ended == "completed"
    assert c.server.log().count("path=/api/v1/pools/hookheartbeat/scaling") - reads <= 20


def test_expired_credentials_change_nothing(env):
    c = Cell(env, "expired", 0, 3, 1)
    c.boot()
    c.submit(3)
    before = len(c.aws.calls)
    ds = c.tick(creds=(F.EXPIRED_ACCESS_KEY, F.EXPIRED_SECRET_KEY, F.EXPIRED_SESSION_TOKEN), rc=8)
    assert ds == []
    lines = c.last.stderr.strip().splitlines()
    assert len(lines) == 1 and "AWS refused the credentials" in lines[0] and "ExpiredToken" in lines[0]
    assert len(c.aws.calls) == before and ("autoscaling", "ExpiredToken") in c.aws.refused
    assert c.group.desired == 1 and all(w["state"] == "idle" for w in c.scaling()["workers"])


def test_dry_run_and_metrics(env):
    c = Cell(env, "metrics", 0, 3, 0)
    c.submit(2)
    ds = c.tick("--dry-run")
    assert kinds(ds) == ["scale_out"] and ds[0][1]["dry_run"] == "true" and c.group.desired == 0
    # every option from its variable instead
    e = c.environ()
    e.update({"DAVIT_AUTOSCALE_POOL": c.name, "DAVIT_AUTOSCALE_GROUP": c.name, "DAVIT_AUTOSCALE_REGION": F.TEST_REGION,
              "DAVIT_AUTOSCALE_AWS_ENDPOINT": c.aws.url, "DAVIT_AUTOSCALE_DRY_RUN": "true",
              "DAVIT_AUTOSCALE_MAX_CREATE": "1"})
    p = subprocess.run([DAVIT, "autoscale"], env=e, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    ds = decisions(p.stderr)
    assert kinds(ds) == ["scale_out"] and ds[0][1]["desired"] == "0->1" and ds[0][1]["dry_run"] == "true"
    assert c.group.desired == 0
    p = subprocess.Popen([DAVIT] + c.args("--every", "1s", "--metrics-listen", "127.0.0.1:0"),
                         env=c.environ(), stderr=subprocess.PIPE, text=True)
    try:
        port = None
        while port is None:
            line = p.stderr.readline()
            assert line, "autoscale ended early"
            m = re.search(r"metrics listening host=127.0.0.1 port=(\d+)", line)
            port = m and int(m.group(1))

        def metrics():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
                return r.read().decode()
        wait_for("two ticks", lambda: re.search(r"^davit_autoscale_ticks_total [2-9]", metrics(), re.M))
        text = metrics()
        assert 'davit_autoscale_decisions_total{decision="scale_out"} 1' in text
        assert re.search(r'^davit_autoscale_decisions_total\{decision="hold"\} [1-9]', text, re.M)
        assert "davit_autoscale_errors_total 0" in text and "davit_autoscale_group_desired 2" in text
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
