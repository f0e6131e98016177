"""The Data Quality Pipeline through the handlers on moto: HTTP API, step Lambda on SQS events, WebSocket.

Creates the graph over HTTP, starts three runs, drives the step handler with
SQS events until the queue is empty, and reads each run and its log over HTTP;
a WebSocket client that subscribes mid-run receives every record once, in order.
"""

from __future__ import annotations

import os

import pytest

from engine.graphs import load_graph_json
from functions.shared import wiring
from functions.shared.observability import metrics
from functions.step import app as step_app
from functions.ws import app as ws_app
from local.esm import EventSourceMapping
from local.lambda_context import LocalContext
from tests.support import ws
from tests.support.api import Api
from tests.support.events import load_event
from tests.support.moto_env import AwsEnv

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

RECORDS = (300, 600, 1000)


@pytest.fixture
def api(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "engine.tools.dq")
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.queue_url, Attributes={"VisibilityTimeout": "0"})
    wiring.reset()
    return Api(aws)


def test_three_data_quality_runs_over_http_and_sqs(api: Api, aws: AwsEnv) -> None:
    graph_id = api.create_graph(load_graph_json("data_quality"))
    run_ids = []
    for records in RECORDS:
        reply = api("api_start_run", body={"graph_id": graph_id, "initial_state": {"records": records}})
        assert reply.status == 202, reply.text
        run_ids.append(reply.json()["run_id"])

    steps = EventSourceMapping(
        aws.sqs, aws.resources.queue_url, aws.resources.queue_arn, step_app.lambda_handler
    )
    for _ in range(5):
        steps.poll_once()
    subscribe = load_event("ws_subscribe")
    subscribe["requestContext"]["connectionId"] = "watcher"
    subscribe["body"] = f'{{"action": "subscribe", "run_id": "{run_ids[2]}"}}'
    assert ws_app.lambda_handler(subscribe, LocalContext())["statusCode"] == 200
    steps.drain()
    assert aws.sqs.receive_message(QueueUrl=aws.resources.queue_url).get("Messages") is None

    for run_id, records in zip(run_ids, RECORDS, strict=True):
        reply = api("api_get_run", path=f"/runs/{run_id}")
        assert reply.status == 200
        run = reply.json()
        assert run["status"] == "SUCCEEDED", run.get("error")
        quality = run["state"]["report"]["quality"]
        assert quality["rows_in"] == records
        assert quality["target_met"] is True
        assert quality["score_after"] >= quality["target_score"] > quality["score_before"]
        logs = api("api_run_logs", path=f"/runs/{run_id}/logs", query={"limit": "1000"}).json()["records"]
        assert [r["seq"] for r in logs] == list(range(len(logs)))
        assert logs[0]["type"] == "run_started"
        assert logs[-1]["type"] == "run_succeeded"
        started = [r for r in logs if r["type"] == "step_started"]
        assert len(started) == run["step"]

    watched = ws.frames("watcher")
    assert watched[0]["type"] == "subscribed"
    [replayed] = [f for f in watched if f["type"] == "replayed"]
    assert replayed["live_from"] > 5, "the subscription began mid-run"
    followed = ws.records("watcher")
    total = len(
        api("api_run_logs", path=f"/runs/{run_ids[2]}/logs", query={"limit": "1000"}).json()["records"]
    )
    assert [r["seq"] for r in followed] == list(range(total))
    assert followed[-1]["type"] == "run_succeeded"
