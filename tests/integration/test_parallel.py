"""Parallel branches and maps through the handlers on moto: HTTP API, step Lambda on SQS events, DLQ consumer.

Graphs are created and runs started over HTTP (the sample events of
``events/``); the step handler is driven by :class:`local.esm.EventSourceMapping`
until the queue is empty, as on AWS.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.model import RunChanges, StepMessage
from functions.dlq import app as dlq_app
from functions.shared import wiring
from functions.shared.observability import metrics
from functions.step import app as step_app
from local.esm import EventSourceMapping
from local.lambda_context import LocalContext
from tests.support.api import Api
from tests.support.events import load_event
from tests.support.moto_env import AwsEnv
from tests.support.tools import map_graph, parallel_graph

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

STEP_TYPES = ("step_started", "step_succeeded", "step_failed", "retry_scheduled")


@pytest.fixture
def api(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "tests.support.tools")
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.queue_url, Attributes={"VisibilityTimeout": "0"})
    wiring.reset()
    return Api(aws)


def steps(aws: AwsEnv) -> EventSourceMapping:
    r = aws.resources
    return EventSourceMapping(aws.sqs, r.queue_url, r.queue_arn, step_app.lambda_handler)


def start(api: Api, graph: dict[str, Any], state: dict[str, Any] | None = None) -> str:
    graph_id = api.create_graph(graph)
    reply = api("api_start_run", body={"graph_id": graph_id, "initial_state": state or {}})
    assert reply.status == 202, reply.text
    return str(reply.json()["run_id"])


def get_run(api: Api, run_id: str) -> dict[str, Any]:
    reply = api("api_get_run", path=f"/runs/{run_id}")
    assert reply.status == 200, reply.text
    return dict(reply.json())


def logs(api: Api, run_id: str) -> list[dict[str, Any]]:
    """The run's log over HTTP, page after page; checked gap-free."""
    records: list[dict[str, Any]] = []
    while True:
        query = {"limit": "200", "after": str(records[-1]["seq"] if records else -1)}
        reply = api("api_run_logs", path=f"/runs/{run_id}/logs", query=query)
        assert reply.status == 200, reply.text
        page = reply.json()["records"]
        if not page:
            break
        records.extend(page)
    assert [r["seq"] for r in records] == list(range(len(records)))
    return records


def queue_empty(aws: AwsEnv) -> bool:
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=aws.resources.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(v) == 0 for v in attributes.values())


def assert_branches_named(records: list[dict[str, Any]], branch_nodes: dict[str, str]) -> None:
    """Records of branch nodes carry their branch (``branch_nodes``: node -> branch name or prefix); others none."""
    for record in records:
        expected = branch_nodes.get(record["node"]) if record["type"] != "joined" else None
        if expected is None:
            assert record["branch"] is None, record
        else:
            assert record["branch"] is not None and record["branch"].startswith(expected), record


# a 2-branch graph


def test_two_branches_run_and_join_once(api: Api, aws: AwsEnv) -> None:
    run_id = start(api, parallel_graph(2))

    steps(aws).drain()

    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert wiring.service().runs.get_run(run_id).fanout is None
    assert run["state"]["path"] == ["b0", "b1"]
    assert run["state"]["count"] == 2
    assert run["state"]["b0_done"] is run["state"]["b1_done"] is True
    records = logs(api, run_id)
    types = Counter(r["type"] for r in records)
    assert types["joined"] == 1
    assert types["fanned_out"] == 1
    assert types["branch_succeeded"] == 2
    assert types["step_succeeded"] == 4
    assert_branches_named(records, {"b0": "b0", "b1": "b1"})
    assert queue_empty(aws)


# a 100-item map, at most 10 at once


@dataclass
class Commits:
    running: list[int] = field(default_factory=list)
    fanout_bytes: list[int] = field(default_factory=list)


@pytest.fixture
def commits(api: Api, monkeypatch: pytest.MonkeyPatch) -> Commits:
    """Wraps the handlers' store: how many branches each commit left running."""
    seen = Commits()
    store = wiring.service().runs
    commit = store.commit

    def recording(run: Any, changes: RunChanges, records: Any) -> Any:
        if changes.fanout is not None:
            seen.running.append(len(changes.fanout.running))
        return commit(run, changes, records)

    monkeypatch.setattr(store, "commit", recording)
    return seen


def test_a_100_item_map_never_runs_more_than_10_items_at_once(
    api: Api, aws: AwsEnv, commits: Commits
) -> None:
    run_id = start(api, map_graph(max_concurrency=10), {"n": 100})

    steps(aws).drain()

    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["state"]["squares"] == [i * i for i in range(100)]
    assert run["state"]["order"] == list(range(100))
    assert run["state"]["total"] == sum(range(100))
    assert max(commits.running) == 10, "the map kept 10 in flight"
    assert len(commits.running) == 100, (
        "the fan-out and the arrivals of the 99 items before the last (the join)"
    )
    records = logs(api, run_id)
    types = Counter(r["type"] for r in records)
    assert (types["branch_succeeded"], types["joined"]) == (100, 1)
    arrived = [r for r in records if r["type"] == "branch_succeeded"]
    assert sorted(r["branch"] for r in arrived) == sorted(f"items[{i}]" for i in range(100))
    assert_branches_named(records, {"square": "items["})
    assert queue_empty(aws)


# a failing branch


def failing_graph(catch: bool) -> dict[str, Any]:
    graph = parallel_graph(3, name="failing")
    graph["nodes"]["b1"] = {"tool": "test.fail", "retry": {"max_attempts": 2, "interval_seconds": 0}}
    if catch:
        graph["nodes"]["split"] = {"tool": "test.noop", "catch": "recover"}
        graph["nodes"]["recover"] = "test.tag"
        graph["edges"]["recover"] = "__end__"
    return graph


def test_a_failing_branch_fails_the_run_naming_it_and_no_step_follows(api: Api, aws: AwsEnv) -> None:
    run_id = start(api, failing_graph(catch=False))

    steps(aws).drain()

    run = get_run(api, run_id)
    assert run["status"] == "FAILED"
    assert run["error"]["type"] == "ValueError"
    assert "branch b1 failed at 'b1'" in run["error"]["message"]
    records = logs(api, run_id)
    failed = next(i for i, r in enumerate(records) if r["type"] == "branch_failed")
    assert records[failed]["branch"] == "b1"
    assert [r["type"] for r in records[failed + 1 :]] == ["run_failed"]
    assert [r["attempt"] for r in records if r["type"] == "step_failed"] == [1, 2]
    assert "joined" not in {r["type"] for r in records}
    assert queue_empty(aws)


def test_a_failing_branch_takes_the_fan_out_nodes_catch(api: Api, aws: AwsEnv) -> None:
    run_id = start(api, failing_graph(catch=True))

    steps(aws).drain()

    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["state"]["error"]["type"] == "ValueError"
    assert "branch b1" in run["state"]["error"]["message"]
    assert run["state"]["recover_done"] is True
    records = logs(api, run_id)
    failed = next(i for i, r in enumerate(records) if r["type"] == "branch_failed")
    after = records[failed + 1 :]
    assert after[0]["type"] == "edge_taken" and after[0]["data"]["to"] == "recover"
    assert {r["node"] for r in after if r["type"] in STEP_TYPES} == {"recover"}
    assert "joined" not in {r["type"] for r in records}
    assert queue_empty(aws)


# cancel during a map


def test_cancel_during_a_map_stops_every_branch(api: Api, aws: AwsEnv) -> None:
    run_id = start(api, map_graph(max_concurrency=3), {"n": 30})
    esm = steps(aws)
    for _ in range(3):
        esm.poll_once()
    under_way = wiring.service().runs.get_run(run_id).fanout
    assert under_way is not None and under_way.arrived > 0, "the map is under way"

    reply = api("api_cancel_run", path=f"/runs/{run_id}/cancel")
    assert reply.status == 200, reply.text
    esm.drain()

    run = get_run(api, run_id)
    assert run["status"] == "CANCELLED"
    records = logs(api, run_id)
    cancelled = [i for i, r in enumerate(records) if r["type"] == "run_cancelled"]
    assert cancelled == [len(records) - 1], "nothing after the cancel record"
    assert sum(1 for r in records if r["type"] == "branch_succeeded") < 30
    assert queue_empty(aws)


# a branch message in the DLQ


def test_a_branch_message_in_the_dlq_fails_the_run(api: Api, aws: AwsEnv) -> None:
    run_id = start(api, parallel_graph(2))
    steps(aws).poll_once()
    messages = api.drain_queue()
    branch = next(m for m in messages if m.branch == 1)
    assert branch.fanout is not None

    stale = load_event("dlq_sqs")
    stale["Records"][0]["body"] = StepMessage(
        run_id=run_id, step=5, attempt=1, fanout=branch.fanout, branch=1
    ).model_dump_json()
    assert dlq_app.lambda_handler(stale, LocalContext()) == {"batchItemFailures": []}
    assert get_run(api, run_id)["status"] == "RUNNING", "a message of no branch's position changes nothing"

    event = load_event("dlq_sqs")
    event["Records"][0]["body"] = branch.model_dump_json()
    assert dlq_app.lambda_handler(event, LocalContext()) == {"batchItemFailures": []}

    run = get_run(api, run_id)
    assert run["status"] == "FAILED"
    assert run["error"]["type"] == "StepDeliveryFailed"
    assert "branch b1" in run["error"]["message"]
    assert "after 5 deliveries" in run["error"]["message"]
    for message in messages:
        aws.sqs.send_message(
            QueueUrl=aws.resources.queue_url,
            MessageBody=message.model_dump_json(),
            MessageGroupId=message.group,
            MessageDeduplicationId=message.dedup_id + ":again",
        )
    steps(aws).drain()
    records = logs(api, run_id)
    assert records[-1]["type"] == "run_failed"
    assert not [r for r in records if r["type"] == "step_started" and r["branch"]]


# requests per branch step


@dataclass
class Requests:
    names: dict[str, list[str]] = field(default_factory=lambda: {"dynamodb": [], "sqs": [], "s3": []})
    recording: bool = False


@pytest.fixture
def requests(api: Api) -> Iterator[Requests]:
    """The requests the handlers' clients send while ``recording`` (the ESM's own receives and deletes not)."""
    seen = Requests()

    def hook(service: str) -> Any:
        def record(model: Any, **_: Any) -> None:
            if seen.recording:
                seen.names[service].append(model.name)

        return record

    for service in seen.names:
        wiring.client(service).meta.events.register(f"before-call.{service}.*", hook(service))
    yield seen
    seen.recording = False


def deliver_one(aws: AwsEnv, pick: Any) -> StepMessage:
    """Receive the queue's messages, hand the first that ``pick`` accepts to the step handler, put back the others."""
    got = aws.sqs.receive_message(
        QueueUrl=aws.resources.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    chosen = next(m for m in got if pick(StepMessage.model_validate_json(m["Body"])))
    esm = steps(aws)
    outcome = esm.deliver([chosen])
    assert outcome.failed == 0
    for other in got:
        if other is not chosen:
            aws.sqs.change_message_visibility(
                QueueUrl=aws.resources.queue_url, ReceiptHandle=other["ReceiptHandle"], VisibilityTimeout=0
            )
    return StepMessage.model_validate_json(chosen["Body"])


def test_requests_per_branch_step(api: Api, aws: AwsEnv, requests: Requests) -> None:
    graph = parallel_graph(2, name="two-step branches")
    graph["nodes"]["b0_next"] = "test.noop"
    graph["edges"]["b0"] = "b0_next"
    graph["edges"]["b0_next"] = "merge"
    run_id = start(api, graph)
    deliver_one(aws, lambda m: m.branch is None)

    def measured(pick: Any) -> dict[str, list[str]]:
        for names in requests.names.values():
            names.clear()
        requests.recording = True
        deliver_one(aws, pick)
        requests.recording = False
        return {k: list(v) for k, v in requests.names.items()}

    moved = measured(lambda m: m.branch == 0 and m.step == 0)
    arrived = measured(lambda m: m.branch == 1)
    joined = measured(lambda m: m.branch == 0)
    one_step = {"dynamodb": ["GetItem", "PutItem", "UpdateItem"], "s3": []}
    assert moved == {**one_step, "sqs": ["SendMessage"]}, "moves on: its next message"
    assert arrived == {**one_step, "sqs": []}, "arrives with a sibling running: no message"
    assert joined == {**one_step, "sqs": ["SendMessage"]}, "the join: the join node's message"
    steps(aws).drain()
    assert get_run(api, run_id)["status"] == "SUCCEEDED"


def test_requests_of_a_100_item_map(api: Api, aws: AwsEnv, requests: Requests) -> None:
    run_id = start(api, map_graph(max_concurrency=10), {"n": 100})
    requests.recording = True
    steps(aws).drain()
    requests.recording = False

    assert get_run(api, run_id)["status"] == "SUCCEEDED"
    dynamodb = Counter(requests.names["dynamodb"])
    sqs = Counter(requests.names["sqs"])
    steps_run = 100 + 2
    assert dynamodb["UpdateItem"] == steps_run, "one conditional update per step, no lost race"
    assert dynamodb["GetItem"] == steps_run
    assert steps_run <= dynamodb["PutItem"] <= 2 * steps_run, (
        "one log item per step, and a value item for a branch's updates once the run item's inline budget is spent"
    )
    assert sqs["SendMessage"] == 100 + 1, "each item's message, and the join node's"
    assert requests.names["s3"] == []
    item = aws.dynamodb.get_item(
        TableName=aws.resources.table_name, Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "RUN"}}
    )["Item"]
    assert "fo" not in item, "the fan-out is gone once joined"


def test_a_map_whose_every_batch_runs_in_a_fresh_environment_joins_from_the_stored_values(
    api: Api, aws: AwsEnv
) -> None:
    run_id = start(api, map_graph(max_concurrency=10), {"n": 60})
    sent: Counter[str] = Counter()

    def record(model: Any, **_: Any) -> None:
        sent[model.name] += 1

    def cold(event: dict[str, Any], context: Any) -> Any:
        wiring.reset()
        wiring.client("dynamodb").meta.events.register("before-call.dynamodb.*", record)
        return step_app.lambda_handler(event, context)

    r = aws.resources
    EventSourceMapping(aws.sqs, r.queue_url, r.queue_arn, cold).drain()

    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["state"]["squares"] == [i * i for i in range(60)]
    assert run["state"]["total"] == sum(range(60))
    assert sent["BatchGetItem"] >= 1, "the join read the branches' value items it did not write"
    logs(api, run_id)
    assert queue_empty(aws)
