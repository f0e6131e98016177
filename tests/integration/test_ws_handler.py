"""The WebSocket Lambda on moto: subscribe with replay, live records, gone and disconnected clients."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.model import RunStatus
from functions.shared import wiring
from functions.step import app as step_app
from functions.ws import app as ws_app
from local.esm import EventSourceMapping
from local.lambda_context import LocalContext
from tests.integration.conftest import AwsEnv
from tests.support import ws
from tests.support.events import CALLER, load_event
from tests.support.tools import LOOP_GRAPH


@pytest.fixture
def env(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "tests.support.tools")
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.queue_url, Attributes={"VisibilityTimeout": "0"})
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.replay_url, Attributes={"DelaySeconds": "0"})
    wiring.reset()
    return aws


def esm(env: AwsEnv) -> EventSourceMapping:
    r = env.resources
    return EventSourceMapping(env.sqs, r.queue_url, r.queue_arn, step_app.lambda_handler, batch_size=1)


def replay(env: AwsEnv) -> int:
    """Serve the subscriptions ``$connect`` queued, as the WebSocket function's SQS event source does."""
    r = env.resources
    return EventSourceMapping(env.sqs, r.replay_url, r.replay_arn, ws_app.lambda_handler).drain()


def ws_event(
    name: str, connection_id: str, body: Any = None, query: dict[str, str] | None = None
) -> dict[str, Any]:
    event = load_event(name)
    event["requestContext"]["connectionId"] = connection_id
    if body is not None:
        event["body"] = json.dumps(body)
    if query is not None:
        event["queryStringParameters"] = query
    return event


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    return ws_app.lambda_handler(event, LocalContext())  # type: ignore[no-any-return]


def start_loop() -> str:
    service = wiring.service()
    graph = service.create_graph(LOOP_GRAPH, owner=CALLER)
    return service.start_run(graph.graph_id, {"i": 0}, owner=CALLER).run_id


def test_subscriber_joining_mid_run_gets_every_record_once_in_order(env: AwsEnv) -> None:
    run_id = start_loop()
    mapping = esm(env)
    for _ in range(4):
        mapping.poll_once()
    assert (
        invoke(ws_event("ws_subscribe", "late", {"action": "subscribe", "run_id": run_id}))["statusCode"]
        == 200
    )
    mapping.drain()
    assert wiring.service().get_run(run_id, owner=CALLER).status is RunStatus.SUCCEEDED
    frames = ws.frames("late")
    assert frames[0]["type"] == "subscribed"
    [replayed] = [f for f in frames if f["type"] == "replayed"]
    assert replayed["live_from"] > 0
    seqs = [r["seq"] for r in ws.records("late")]
    total = len(wiring.service().list_logs(run_id, owner=CALLER))
    assert seqs == list(range(total))
    assert ws.records("late")[-1]["type"] == "run_succeeded"


def test_subscribe_after_n_replays_only_later_records(env: AwsEnv) -> None:
    run_id = start_loop()
    esm(env).drain()
    invoke(ws_event("ws_subscribe", "resume", {"action": "subscribe", "run_id": run_id, "after": 10}))
    seqs = [r["seq"] for r in ws.records("resume")]
    assert seqs == list(range(11, len(wiring.service().list_logs(run_id, owner=CALLER))))


def test_connect_with_run_id_streams_live_records(env: AwsEnv) -> None:
    run_id = start_loop()
    assert invoke(ws_event("ws_connect", "early", query={"run_id": run_id}))["statusCode"] == 200
    assert replay(env) == 1
    esm(env).drain()
    seqs = [r["seq"] for r in ws.records("early")]
    assert seqs == list(range(1, len(wiring.service().list_logs(run_id, owner=CALLER))))


def test_connect_to_unknown_run_is_refused(env: AwsEnv) -> None:
    assert invoke(ws_event("ws_connect", "nobody", query={"run_id": "missing"}))["statusCode"] == 404


def test_gone_connection_is_removed(env: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = start_loop()
    invoke(ws_event("ws_subscribe", "stays", {"action": "subscribe", "run_id": run_id}))
    invoke(ws_event("ws_subscribe", "leaves", {"action": "subscribe", "run_id": run_id}))
    store = wiring.store()
    assert set(store.get_run(run_id).subscribers) == {"stays", "leaves"}
    ws.make_gone(monkeypatch, "leaves")
    esm(env).drain()
    assert store.get_run(run_id).subscribers == ["stays"]
    assert store.runs_of("leaves") == []
    assert ws.records("stays")[-1]["type"] == "run_succeeded"


def test_disconnect_removes_subscriptions(env: AwsEnv) -> None:
    run_id = start_loop()
    invoke(ws_event("ws_subscribe", "Kx1vWcB2IAMCJgw=", {"action": "subscribe", "run_id": run_id}))
    assert wiring.store().runs_of("Kx1vWcB2IAMCJgw=") == [run_id]
    assert invoke(load_event("ws_disconnect"))["statusCode"] == 200
    assert wiring.store().get_run(run_id).subscribers == []
    assert wiring.store().runs_of("Kx1vWcB2IAMCJgw=") == []


def test_unsubscribe_stops_live_records(env: AwsEnv) -> None:
    run_id = start_loop()
    invoke(ws_event("ws_subscribe", "quits", {"action": "subscribe", "run_id": run_id}))
    invoke(ws_event("ws_unsubscribe", "quits", {"action": "unsubscribe", "run_id": run_id}))
    esm(env).drain()
    assert ws.records("quits") == [
        r.model_dump(mode="json", exclude_none=True)
        for r in wiring.service().list_logs(run_id, owner=CALLER)[:1]
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [({"action": "subscribe"}, "bad_request"), ({"action": "subscribe", "run_id": "nope"}, "run_not_found")],
)
def test_bad_subscribe_gets_an_error_frame(env: AwsEnv, body: dict[str, Any], code: str) -> None:
    assert invoke(ws_event("ws_subscribe", "bad", body))["statusCode"] >= 400
    assert ws.frames("bad")[-1]["code"] == code


def test_default_route_answers_with_a_clear_error(env: AwsEnv) -> None:
    event = load_event("ws_default")
    event["requestContext"]["connectionId"] = "default-conn"
    assert invoke(event)["statusCode"] == 400
    [frame] = ws.frames("default-conn")
    assert frame == {"type": "error", "code": "unknown_action", "message": "unknown action 'ping'"}


def test_a_throttled_subscriber_does_not_fail_the_step(env: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = start_loop()
    invoke(ws_event("ws_subscribe", "fine", {"action": "subscribe", "run_id": run_id}))
    invoke(ws_event("ws_subscribe", "throttled", {"action": "subscribe", "run_id": run_id}))
    ws.make_throttled(monkeypatch, "throttled")
    esm(env).drain()
    run = wiring.store().get_run(run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert sorted(run.subscribers) == ["fine", "throttled"]
    assert ws.records("fine")[-1]["type"] == "run_succeeded"


def test_the_subscriber_over_the_cap_is_refused(env: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_SUBSCRIBERS_PER_RUN", "1")
    wiring.reset()
    run_id = start_loop()
    assert invoke(ws_event("ws_connect", "first", query={"run_id": run_id}))["statusCode"] == 200
    assert replay(env) == 1

    assert invoke(ws_event("ws_connect", "second", query={"run_id": run_id}))["statusCode"] == 429
    assert (
        invoke(ws_event("ws_subscribe", "third", {"action": "subscribe", "run_id": run_id}))["statusCode"]
        == 429
    )
    [frame] = ws.frames("third")
    assert frame["type"] == "error"
    assert frame["code"] == "too_many_subscribers"
    assert wiring.store().get_run(run_id).subscribers == ["first"]
    assert wiring.store().runs_of("third") == []


def test_connect_with_after_gets_subscribed_then_the_whole_backlog_then_live_records(env: AwsEnv) -> None:
    run_id = start_loop()
    mapping = esm(env)
    for _ in range(3):
        mapping.poll_once()
    assert (
        invoke(ws_event("ws_connect", "late", query={"run_id": run_id, "after": "-1"}))["statusCode"] == 200
    )
    assert ws.frames("late") == []  # nothing is posted before $connect returns
    assert replay(env) == 1
    mapping.drain()
    frames = ws.frames("late")
    assert frames[0] == {"type": "subscribed", "run_id": run_id, "after": -1, "status": "RUNNING"}
    seqs = [r["seq"] for r in ws.records("late")]
    assert seqs == list(range(len(wiring.service().list_logs(run_id, owner=CALLER))))
    assert ws.records("late")[-1]["type"] == "run_succeeded"


def test_connect_without_after_gets_the_records_committed_since_connect(env: AwsEnv) -> None:
    run_id = start_loop()
    mapping = esm(env)
    for _ in range(2):
        mapping.poll_once()
    committed = len(wiring.service().list_logs(run_id, owner=CALLER))
    assert invoke(ws_event("ws_connect", "now", query={"run_id": run_id}))["statusCode"] == 200
    mapping.poll_once()  # a step commits between $connect and the replay: its records are not lost
    replay(env)
    mapping.drain()
    seqs = [r["seq"] for r in ws.records("now")]
    assert seqs == list(range(committed, len(wiring.service().list_logs(run_id, owner=CALLER))))


@pytest.mark.parametrize("after", ["-2", "x", "1.5"])
def test_connect_with_a_bad_after_is_refused_and_queues_nothing(env: AwsEnv, after: str) -> None:
    run_id = start_loop()
    response = invoke(ws_event("ws_connect", "bad", query={"run_id": run_id, "after": after}))
    assert response["statusCode"] == 400
    assert replay(env) == 0
    assert wiring.store().get_run(run_id).subscribers == []


def test_a_replay_for_a_connection_that_never_opened_is_dropped(
    env: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = start_loop()
    monkeypatch.setattr(ws_app, "CONNECT_WAITS", (0.0,))
    ws.make_get_gone(monkeypatch, "refused")
    assert invoke(ws_event("ws_connect", "refused", query={"run_id": run_id}))["statusCode"] == 200
    assert replay(env) == 1
    assert wiring.store().get_run(run_id).subscribers == []
    assert (
        env.sqs.get_queue_attributes(
            QueueUrl=env.resources.replay_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )
