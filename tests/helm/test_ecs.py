"""deploy/ecs/task-definition.json, offline: it is a valid RegisterTaskDefinition
request by botocore's ECS API model (Debian's python3-botocore), and it holds
what docs/deploy-ecs.md promises: the EC2 launch type, the host's Docker
socket, the state directory at the same path on both sides, credentials from
secrets only, and a stop timeout that covers the run timeout."""
import json
import os
import re

import botocore.session
from botocore.validate import ParamValidator

import chart

TASK = os.path.join(chart.SOURCE, "deploy", "ecs", "task-definition.json")


def load():
    with open(TASK) as f:
        return json.load(f)


def validate(task):
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    return ParamValidator().validate(task, shape).generate_report()


def test_task_definition_is_a_valid_register_request():
    assert validate(load()) == ""
    # The check is not vacuous: a misspelled field is caught.
    bad = load()
    bad["containerDefinitions"][0]["mountpoints"] = []
    assert 'Unknown parameter in containerDefinitions[0]: "mountpoints"' in validate(bad)


def test_task_definition_holds_what_the_docs_promise():
    task = load()
    assert task["requiresCompatibilities"] == ["EC2"]
    (c,) = task["containerDefinitions"]
    volumes = {v["name"]: v["host"]["sourcePath"] for v in task["volumes"]}
    mounts = {m["sourceVolume"]: m["containerPath"] for m in c["mountPoints"]}
    assert volumes["docker-socket"] == mounts["docker-socket"] == "/var/run/docker.sock"
    env = {e["name"]: e["value"] for e in c["environment"]}
    # The Engine bind-mounts run directories by their path: the same on both sides.
    assert volumes["launcher-state"] == mounts["launcher-state"] == env["DAVIT_STATE_DIR"]
    assert {s["name"] for s in c["secrets"]} == {"DAVIT_TOKEN", "DAVIT_POOL_PRIVATE_KEY"}
    assert not {"DAVIT_TOKEN", "DAVIT_POOL_PRIVATE_KEY"} & set(env)
    # The stop timeout covers a run that started just before the stop: its image pull (outside
    # the run timeout, default 15m) and its run timeout, plus a minute for the last report.
    m = re.fullmatch(r"(\d+)m", env["DAVIT_LAUNCHER_RUN_TIMEOUT"])
    p = re.fullmatch(r"(\d+)m", env.get("DAVIT_DOCKER_PULL_TIMEOUT", "15m"))
    assert m and p and c["stopTimeout"] >= (int(m.group(1)) + int(p.group(1))) * 60 + 60
    assert "privileged" not in c
