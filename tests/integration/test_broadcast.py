"""The WebSocket broadcaster on moto: best effort, concurrent, each connection's frames in order."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.config import Config

from engine.aws.broadcast import WebSocketBroadcaster
from engine.aws.dynamodb import DynamoStore
from engine.model import LogRecord, LogType, PublishResult, Run
from tests.integration.conftest import WS_ENDPOINT, AwsEnv
from tests.support import ws


@pytest.fixture
def store(aws: AwsEnv) -> DynamoStore:
    return DynamoStore(aws.dynamodb, aws.resources.table_name)


def broadcaster(store: DynamoStore, results: list[PublishResult] | None = None) -> WebSocketBroadcaster:
    client = boto3.client("apigatewaymanagementapi", endpoint_url=WS_ENDPOINT, region_name="us-east-1")
    return WebSocketBroadcaster(
        client, store, store, on_result=results.append if results is not None else None
    )


def subscribed_run(store: DynamoStore, connections: list[str]) -> Run:
    now = time.time()
    run = Run(run_id="run-b", graph_id="g", graph_version=1, created_at=now, updated_at=now, next_seq=1)
    store.create_run(run, [record(0)])
    for connection_id in connections:
        store.add_subscriber(run.run_id, connection_id)
        store.add_connection(connection_id, run.run_id)
    return store.get_run(run.run_id)


def record(seq: int, size: int = 10) -> LogRecord:
    return LogRecord(run_id="run-b", seq=seq, ts=1.0, type=LogType.STEP_STARTED, step=seq, message="x" * size)


def test_every_subscriber_gets_every_frame_in_order(store: DynamoStore) -> None:
    connections = [f"c{i}" for i in range(40)]
    run = subscribed_run(store, connections)
    records = [record(seq, size=20_000) for seq in range(1, 31)]
    results: list[PublishResult] = []

    result = broadcaster(store, results).publish(run, records)

    assert result == PublishResult(posted=40)
    assert results == [result]
    for connection_id in connections:
        assert len(ws.frames(connection_id)) > 1
        assert [r["seq"] for r in ws.records(connection_id)] == list(range(1, 31))


def test_a_throttled_post_is_counted_not_raised_and_keeps_the_subscriber(
    store: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = subscribed_run(store, ["ok-1", "ok-2", "slow", "left"])
    ws.make_gone(monkeypatch, "left")
    ws.make_throttled(monkeypatch, "slow")

    result = broadcaster(store).publish(run, [record(1)])

    assert result == PublishResult(posted=2, gone=1, failed=1)
    assert sorted(store.get_run(run.run_id).subscribers) == ["ok-1", "ok-2", "slow"]
    assert store.runs_of("left") == []
    assert [r["seq"] for r in ws.records("ok-1")] == [1]


def test_an_unreachable_endpoint_fails_every_post_without_raising(store: DynamoStore) -> None:
    run = subscribed_run(store, ["a", "b"])
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )

    result = WebSocketBroadcaster(client, store, store).publish(run, [record(1)])

    assert result == PublishResult(failed=2)
    assert sorted(store.get_run(run.run_id).subscribers) == ["a", "b"]


def test_150_subscribers_a_third_of_them_throttled_all_get_their_frames_or_are_counted(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DynamoStore(aws.dynamodb, aws.resources.table_name, max_subscribers=150)
    connections = [f"c{i:03d}" for i in range(150)]
    throttled = connections[::3]
    run = subscribed_run(store, connections)
    ws.make_throttled(monkeypatch, *throttled)
    records = [record(seq, size=2_000) for seq in range(1, 21)]

    result = broadcaster(store).publish(run, records)

    assert result == PublishResult(posted=100, failed=50)
    assert sorted(store.get_run(run.run_id).subscribers) == connections
    for connection_id in connections:
        expected = [] if connection_id in throttled else list(range(1, 21))
        assert [r["seq"] for r in ws.records(connection_id)] == expected
