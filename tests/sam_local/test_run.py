"""A whole run through the built functions in Docker (``sam local start-lambda``).

The API function creates the graph and starts the run (events built from
``api_create_graph.json`` and ``api_start_run.json``); this test then plays the SQS event
source mapping: it receives the step queue on moto, invokes the step function with events
shaped like ``step_sqs.json``, and deletes the messages the function did not report as
failed, until the run has ended.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.sam_local.conftest import Moto
from tests.sam_local.invoking import api_event, body, invoke, sqs_event
from tests.support.events import load_event

pytestmark = pytest.mark.sam_local

MAX_RECEIVES = 200
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}


def get_run(lambda_client: Any, run_id: str) -> dict[str, Any]:
    answer = invoke(lambda_client, "ApiFunction", api_event("api_get_run", path=f"/runs/{run_id}"))
    assert answer["statusCode"] == 200, answer
    run: dict[str, Any] = body(answer)
    return run


def consume_steps(lambda_client: Any, moto: Moto, run_id: str) -> dict[str, Any]:
    """Feed the step queue to the step function until ``run_id`` ends; the ended run."""
    sqs = moto.client("sqs")
    queue = moto.resources.queue_url
    for _ in range(MAX_RECEIVES):
        messages = sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", [])
        if messages:
            answer = invoke(lambda_client, "StepFunction", sqs_event(messages))
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            for message in messages:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        run = get_run(lambda_client, run_id)
        if run["status"] in TERMINAL:
            return run
    pytest.fail(f"run {run_id} still {run['status']} after {MAX_RECEIVES} receives")


def test_a_run_created_through_the_api_succeeds_through_the_step_function(
    lambda_client: Any, moto: Moto
) -> None:
    graph = json.loads(load_event("api_create_graph")["body"])
    created = invoke(lambda_client, "ApiFunction", api_event("api_create_graph", body=graph))
    assert created["statusCode"] == 201, created
    graph_id = body(created)["graph_id"]

    start = json.loads(load_event("api_start_run")["body"])
    start.update(graph_id=graph_id, idempotency_key=f"sam-local-{graph_id}")
    started = invoke(lambda_client, "ApiFunction", api_event("api_start_run", body=start))
    assert started["statusCode"] == 202, started
    run_id = body(started)["run_id"]

    run = consume_steps(lambda_client, moto, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert run["graph_id"] == graph_id
    logs = invoke(lambda_client, "ApiFunction", api_event("api_run_logs", path=f"/runs/{run_id}/logs"))
    assert logs["statusCode"] == 200, logs
    assert "run_succeeded" in json.dumps(body(logs)).lower()
