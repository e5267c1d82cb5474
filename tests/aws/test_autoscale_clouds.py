"""davit autoscale --provider azure|gcp (issue 19) against MOCKS of Azure Resource Manager's scale
set API (fake_azure.py) and Compute Engine's managed instance group API (fake_gcp.py),
neither cloud being reachable from the tests; a real davit server and stand-ins for davit-launcher
whose instance_id metadata is what the boot scripts set (deploy/boot/davit-boot-azure: the scale
set VM's instanceId; davit-boot-gcp: the instance's name).

One server for the module, one mock per provider; each test has its own pool and group. The same
algorithm as AWS's (test_autoscale.py): only what differs by provider is checked again here."""

import shutil
import tempfile

import pytest

import fake_azure as AZ
import fake_gcp as GCP
from autoscale_fixtures import DrainProxy, PoolCell, kinds
from davit_fixtures import check_stopped
from davit_harness import Server


@pytest.fixture(scope="module")
def server():
    tmp = tempfile.mkdtemp(prefix="davit-clouds-")
    s = Server(tmp)
    try:
        yield s
    finally:
        check_stopped(s)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module", params=["azure", "gcp"])
def cloud(request):
    mock = AZ.FakeAzure() if request.param == "azure" else GCP.FakeGCP()
    mock.provider = request.param
    try:
        yield mock
    finally:
        mock.close()


class Cell(PoolCell):
    """One pool and one scale set or managed instance group."""

    def __init__(self, server, cloud, name, desired, min_size=0, max_size=3):
        name = "%s-%s" % (cloud.provider, name)
        super().__init__(server, name)
        self.cloud, self.min, self.max = cloud, min_size, max_size
        self.azure = cloud.provider == "azure"
        self.group = cloud.add_scale_set(name, desired) if self.azure else cloud.add_group(name, desired)
        self.cloud_token = AZ.TOKEN if self.azure else GCP.TOKEN
        self.expired = AZ.EXPIRED_TOKEN if self.azure else GCP.EXPIRED_TOKEN
        self.token_var = "AZURE_ACCESS_TOKEN" if self.azure else "GOOGLE_OAUTH_ACCESS_TOKEN"

    def instance_ids(self):
        return list(self.group.instances)

    def args(self, *extra):
        if self.azure:
            where = ["--scale-set", self.name, "--subscription", AZ.SUBSCRIPTION, "--resource-group",
                     AZ.RESOURCE_GROUP, "--azure-endpoint", self.cloud.url + "/"]
        else:
            where = ["--group", self.name, "--project", GCP.PROJECT, "--region", GCP.REGION,
                     "--gcp-endpoint", self.cloud.url]
        return ["autoscale", "--provider", self.cloud.provider, "--pool", self.name, "--ca-file",
                self.cloud.ca_file, "--min", str(self.min), "--max", str(self.max)] + where + list(extra)

    def environ(self, token="default", server_url=None):
        e = self.base_environ(server_url)
        for k in ("AZURE_ACCESS_TOKEN", "GOOGLE_OAUTH_ACCESS_TOKEN"):
            e.pop(k, None)
        e["DAVIT_AZURE_IMDS_ENDPOINT"] = e["DAVIT_GCP_METADATA_ENDPOINT"] = self.cloud.metadata_url
        if token:
            e[self.token_var] = self.cloud_token if token == "default" else token
        return e

    def mutations(self):
        return self.cloud.mutations(self.name)

    @property
    def set_call(self):
        return "update" if self.azure else "resize"

    @property
    def delete_call(self):
        return "delete" if self.azure else "deleteInstances"


def test_scale_out_on_pending(server, cloud):
    c = Cell(server, cloud, "out", 0, max_size=3)
    c.submit(4)
    ds = c.tick("--max-create", "5")
    assert kinds(ds) == ["scale_out"] and ds[0][1]["desired"] == "0->3"  # capped at --max
    assert c.group.desired == 3 and len(c.group.instances) == 3
    # Instances starting, no worker yet: no change. The token from the instance's metadata server
    # this time (the managed identity, the service account).
    assert kinds(c.tick(token=None)) == ["hold"]
    for la in c.boot():
        assert [m["type"] for m in la.poll(wait_s=0)] == ["run"]
    ds = c.tick()
    assert kinds(ds) == ["steady"] and "max size 3" in ds[0][1]["reason"]
    assert c.mutations() == [c.set_call]


def test_scale_in_only_idle_workers_past_the_delay(server, cloud):
    c = Cell(server, cloud, "in", 2)
    a, b = c.boot()
    c.submit(1)
    assert [m["type"] for m in a.poll(wait_s=0)] == ["run"]  # a busy, b idle
    ds = c.tick("--scale-down-delay", "1h")
    assert kinds(ds) == ["steady"] and "scale-down delay" in ds[0][1]["reason"]
    assert c.mutations() == []
    ds = c.tick("--scale-down-delay", "0s")
    assert kinds(ds) == ["scale_in"] and ds[0][1]["instance"] == b.hostname
    # The deletion is under way at the next tick (Azure: Deleting, the capacity still 2; GCP:
    # DELETING, the target size 1 already): b is neither capacity nor deleted again.
    assert c.group.instances[b.hostname].action == "deleting"
    ds = c.tick("--scale-down-delay", "0s")
    assert kinds(ds) == (["hold"] if c.azure else ["steady"]), ds
    c.group.settle()
    assert c.group.desired == 1 and list(c.group.instances) == [a.hostname]
    assert c.group.ended[b.hostname].how_ended == "deleted"
    assert c.worker(a.hostname)["state"] == "busy"
    assert c.mutations() == [c.delete_call]
    # Every instance had its worker: no launch time was asked for (GCP: one call per instance).
    assert not [call for call in cloud.calls if call[1] == "instances.get" and call[2] == c.name]


def test_a_busy_worker_that_was_drained_is_undrained_and_kept(server, cloud):
    c = Cell(server, cloud, "race", 2)
    a, b = c.boot()
    c.submit(1)  # pending 1: target 1, capacity 2: the oldest idle worker (a) is the candidate
    # Between the autoscaler's read of the pool and its drain, a takes the run.
    proxy = DrainProxy(server.port, lambda: a.poll(wait_s=0))
    try:
        ds = c.tick("--scale-down-delay", "0s", server_url=proxy.url)
    finally:
        proxy.close()
    assert kinds(ds) == ["undrained_busy"] and ds[0][1]["instance"] == a.hostname
    assert c.worker(a.hostname)["state"] == "busy"  # undrained: it takes runs again
    assert a.hostname in c.group.instances and c.group.desired == 2
    assert c.mutations() == []


def test_a_stray_instance_is_deleted(server, cloud):
    """Launch times from the cloud (Azure's timeCreated, GCE's creationTimestamp in its zone's
    offset): an instance with no worker for 11 minutes goes, a young one is left to boot."""
    c = Cell(server, cloud, "stray", 2)
    old, young = list(c.group.instances.values())
    old.launch_time -= 11 * 60
    ds = c.tick()
    assert kinds(ds) == ["stray"] and ds[0][1]["instance"] == old.id
    c.group.settle()
    assert old.id in c.group.ended and c.group.desired == 1 and young.id in c.group.instances


def test_a_stray_at_min_size_is_replaced_once(server, cloud):
    """At min size a stray is replaced, not removed. Azure: deleted, and the capacity set back
    only once the deletion has ended (it lowers the capacity when it ends: set back before, the
    group would end one short). GCP: recreated; the next tick sees it RECREATING with its old
    creationTimestamp and must not recreate it again."""
    c = Cell(server, cloud, "stray-min", 1, min_size=1)
    (old,) = list(c.group.instances.values())
    old.launch_time -= 11 * 60
    ds = c.tick()
    assert kinds(ds) == ["stray"] and "replaced" in ds[0][1]["reason"]
    ds = c.tick()  # the replacement is starting, with no worker yet
    assert kinds(ds) == ["hold"], ds
    assert c.mutations() == (["delete", "update"] if c.azure else ["recreateInstances"])
    c.group.settle()
    assert c.group.desired == 1 and len(c.group.instances) == 1
    (new,) = list(c.group.instances.values())
    assert (new.id != old.id) if c.azure else (new is old and new.recreated == 1)


def test_azure_a_failed_deletion_is_an_error_and_the_capacity_kept(server, cloud):
    """A replaced stray's deletion that ends Failed: one line, exit 8, and the capacity is not
    set (the VM is still there); the next tick starts over."""
    if cloud.provider != "azure":
        pytest.skip("Azure's operations")
    c = Cell(server, cloud, "delfail", 1, min_size=1)
    (old,) = list(c.group.instances.values())
    old.launch_time -= 11 * 60
    cloud.fail_deletes = True
    try:
        assert c.tick(rc=8) == []
    finally:
        cloud.fail_deletes = False
    (line,) = c.last.stderr.strip().splitlines()
    assert "Azure delete scale set VM: the operation ended Failed: An internal execution error" in line, line
    assert c.mutations() == ["delete"] and list(c.group.instances) == [old.id] and c.group.desired == 1


def test_expired_credentials_change_nothing(server, cloud):
    c = Cell(server, cloud, "expired", 1)
    c.boot()
    c.submit(3)
    before = len(cloud.calls)
    ds = c.tick(token=c.expired, rc=8)
    assert ds == []
    lines = c.last.stderr.strip().splitlines()
    who = "Azure" if c.azure else "GCP"
    code = "ExpiredAuthenticationToken" if c.azure else "UNAUTHENTICATED"
    assert len(lines) == 1 and who + " refused the credentials" in lines[0] and code in lines[0], lines
    assert c.expired not in lines[0]
    assert len(cloud.calls) == before and ("api", 401) in cloud.refused
    assert c.group.desired == 1 and all(w["state"] == "idle" for w in c.scaling()["workers"])


def test_azure_client_credentials(server, cloud):
    """A service principal's secret, exchanged for a token at the (mock) token endpoint; a wrong
    one is refused with one line that does not hold it."""
    if cloud.provider != "azure":
        pytest.skip("Azure's client credentials")
    c = Cell(server, cloud, "sp", 0)
    sp = {"AZURE_TENANT_ID": AZ.TENANT, "AZURE_CLIENT_ID": AZ.SP_CLIENT_ID, "AZURE_AUTHORITY_HOST": cloud.url}
    c.submit(1)
    env = c.environ(token=None)
    env.update(sp, AZURE_CLIENT_SECRET=AZ.CLIENT_SECRET)
    c.environ = lambda **kw: env
    ds = c.tick()
    assert kinds(ds) == ["scale_out"] and c.group.desired == 1
    assert [call for call in cloud.calls if call[1] == "client_credentials"]
    env["AZURE_CLIENT_SECRET"] = "not-the-secret"
    assert c.tick(rc=8) == []
    (line,) = c.last.stderr.strip().splitlines()
    assert "no Azure credentials" in line and "HTTP 401" in line and "not-the-secret" not in line, line
    assert c.mutations() == ["update"]


def test_azure_user_assigned_identity(server, cloud):
    """AZURE_CLIENT_ID without a secret chooses the VM's user-assigned identity at IMDS (as
    Azure's SDKs read it; the boot script's DAVIT_AZURE_CLIENT_ID is the same thing); one IMDS
    does not have is refused with one line."""
    if cloud.provider != "azure":
        pytest.skip("Azure's managed identities")
    c = Cell(server, cloud, "uami", 0)
    c.submit(1)
    env = c.environ(token=None)
    env["AZURE_CLIENT_ID"] = AZ.CLIENT_ID
    c.environ = lambda **kw: env
    assert kinds(c.tick()) == ["scale_out"]
    assert ("GET", "identity", None, AZ.CLIENT_ID) in cloud.calls
    env["AZURE_CLIENT_ID"] = "00000000-0000-4000-8000-00000000dead"
    assert c.tick(rc=8) == []
    (line,) = c.last.stderr.strip().splitlines()
    assert "no Azure credentials" in line and "managed identity" in line, line
    assert ("identity", 400) in cloud.refused
