"""The trigger Lambda on moto: the sample events start a run of the named graph for its owner, once."""

from __future__ import annotations

import json

import pytest

from engine.model import RunStatus
from functions.shared import wiring
from functions.trigger import app as trigger_app
from local.lambda_context import LocalContext
from tests.integration.conftest import AwsEnv
from tests.support.events import load_event

OWNER = "arn:aws:iam::123456789012:user/alice"


@pytest.fixture
def graph_id(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "engine.tools.dq,tests.support.tools")
    wiring.reset()
    graph = json.loads(load_event("api_create_graph")["body"])
    return (
        wiring.service()
        .create_graph(graph, graph_id=load_event("trigger_upload")["graph_id"], owner=OWNER)
        .graph_id
    )


def test_an_upload_event_starts_one_run_for_the_graphs_owner(aws: AwsEnv, graph_id: str) -> None:
    answer = trigger_app.lambda_handler(load_event("trigger_upload"), LocalContext())
    assert answer["started"] is True
    run = wiring.service().get_run(answer["run_id"], owner=OWNER)
    assert run.graph_id == graph_id
    assert run.status is RunStatus.PENDING or run.status is RunStatus.RUNNING
    assert run.state == load_event("trigger_upload")["initial_state"]
    [queued] = aws.sqs.receive_message(QueueUrl=aws.resources.queue_url)["Messages"]
    assert json.loads(queued["Body"])["run_id"] == run.run_id

    again = trigger_app.lambda_handler(load_event("trigger_upload"), LocalContext())
    assert again == answer, "the same event delivered twice starts one run"


def test_a_schedule_of_a_trigger_the_graph_does_not_have_starts_nothing(aws: AwsEnv, graph_id: str) -> None:
    answer = trigger_app.lambda_handler(load_event("trigger_schedule"), LocalContext())
    assert answer == {"started": False, "reason": "trigger_removed"}
    assert aws.sqs.receive_message(QueueUrl=aws.resources.queue_url).get("Messages", []) == []


def test_a_graph_that_is_gone_starts_nothing(aws: AwsEnv, graph_id: str) -> None:
    wiring.service().delete_graph(graph_id, owner=OWNER)
    answer = trigger_app.lambda_handler(load_event("trigger_upload"), LocalContext())
    assert answer == {"started": False, "reason": "graph_not_found"}


def test_an_event_that_is_not_a_trigger_event_is_refused(aws: AwsEnv, graph_id: str) -> None:
    with pytest.raises(ValueError, match="graph_id"):
        trigger_app.lambda_handler({"Records": []}, LocalContext())
