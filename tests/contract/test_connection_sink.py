"""The ConnectionSink contract (publish, post, connected) and the subscription use case over each sink.

``memory`` is :class:`engine.memory.InMemoryLogSink` on the in-memory stores; ``aws`` is
:class:`engine.aws.broadcast.WebSocketBroadcaster` on moto's management API and the
DynamoDB store. A connection is made gone as API Gateway does after a disconnect: the
management API answers 410 (moto, patched by :mod:`tests.support.ws`), or ``mark_gone``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from engine.aws.broadcast import WebSocketBroadcaster
from engine.aws.dynamodb import DynamoStore
from engine.frames import control_frame
from engine.memory import InMemoryConnectionStore, InMemoryLogSink, InMemoryRunStore
from engine.ports import ConnectionSink, ConnectionStore, RunStore
from engine.subscriptions import Subscriptions
from tests.contract.factories import OWNER, new_run, step
from tests.support import ws
from tests.support.moto_env import AwsEnv


@dataclass
class SinkCase:
    kind: str
    sink: ConnectionSink
    runs: RunStore
    connections: ConnectionStore
    frames: Callable[[str], list[dict[str, Any]]]
    make_gone: Callable[[str], None]


@pytest.fixture(params=["memory", "aws"])
def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> SinkCase:
    if request.param == "memory":
        runs, connections = InMemoryRunStore(), InMemoryConnectionStore()
        memory = InMemoryLogSink(runs, connections)
        return SinkCase("memory", memory, runs, connections, lambda c: memory.frames[c], memory.mark_gone)
    env: AwsEnv = request.getfixturevalue("moto")
    store = DynamoStore(env.dynamodb, env.resources.table_name)
    client = boto3.client(
        "apigatewaymanagementapi",
        region_name="us-east-1",
        endpoint_url="https://ws.example.execute-api.us-east-1.amazonaws.com/prod",
    )
    gone: set[str] = set()

    def make_gone(connection_id: str) -> None:
        gone.add(connection_id)
        ws.make_gone(monkeypatch, *gone)
        ws.make_get_gone(monkeypatch, *gone)

    sink = WebSocketBroadcaster(client, store, store)
    return SinkCase("aws", sink, store, store, _posted, make_gone)


def _posted(connection_id: str) -> list[dict[str, Any]]:
    try:
        return ws.frames(connection_id)
    except KeyError:
        return []


def test_post_sends_frames_in_order(case: SinkCase) -> None:
    frames = [control_frame("one", n=1), control_frame("two", n=2)]
    assert case.sink.post("conn-1", frames) is True
    assert [f["type"] for f in case.frames("conn-1")] == ["one", "two"]
    assert case.sink.connected("conn-1") is True


def test_publish_reaches_every_subscriber_and_drops_the_gone_ones(case: SinkCase) -> None:
    run, records = new_run()
    case.runs.create_run(run, records)
    for connection_id in ("alive", "gone"):
        case.runs.add_subscriber(run.run_id, connection_id)
        case.connections.add_connection(connection_id, run.run_id)
    case.make_gone("gone")
    committed = step(case.runs, case.runs.get_run(run.run_id), count=2)
    later = step(case.runs, committed, count=2)
    result = case.sink.publish(later, case.runs.list_logs(run.run_id, committed.next_seq - 1))
    assert (result.posted, result.gone, result.failed) == (1, 1, 0)
    assert case.runs.get_run(run.run_id).subscribers == ["alive"]
    assert case.connections.runs_of("gone") == []
    assert case.sink.connected("gone") is False
    assert [r["seq"] for f in case.frames("alive") for r in f["records"]] == [3, 4]


def test_post_to_a_gone_connection_is_false_and_forgets_it(case: SinkCase) -> None:
    run, records = new_run()
    case.runs.create_run(run, records)
    case.runs.add_subscriber(run.run_id, "conn-1")
    case.connections.add_connection("conn-1", run.run_id)
    case.make_gone("conn-1")
    assert case.sink.post("conn-1", [control_frame("hello")]) is False
    assert case.runs.get_run(run.run_id).subscribers == []
    assert case.connections.runs_of("conn-1") == []


def test_subscribe_acks_first_then_the_backlog_then_replayed(case: SinkCase) -> None:
    run, records = new_run()
    case.runs.create_run(run, records)
    current = step(case.runs, case.runs.get_run(run.run_id), count=3)
    subscriptions = Subscriptions(case.runs, case.connections, case.sink, max_subscribers=10, page=2)

    outcome = subscriptions.subscribe("conn-1", run.run_id, owner=OWNER, after=0)
    assert (outcome.delivered, outcome.live_from, outcome.replayed) == (True, current.next_seq, 3)
    frames = case.frames("conn-1")
    assert frames[0] == {"type": "subscribed", "run_id": run.run_id, "after": 0, "status": "RUNNING"}
    assert [r["seq"] for f in frames if f["type"] == "records" for r in f["records"]] == [1, 2, 3]
    assert frames[-1] == {"type": "replayed", "run_id": run.run_id, "live_from": 4, "status": "RUNNING"}
    assert case.runs.get_run(run.run_id).subscribers == ["conn-1"]
    assert case.connections.runs_of("conn-1") == [run.run_id]

    subscriptions.forget("conn-1")
    assert case.runs.get_run(run.run_id).subscribers == []
    assert case.connections.runs_of("conn-1") == []


def test_subscribe_to_a_gone_connection_stores_nothing(case: SinkCase) -> None:
    run, records = new_run()
    case.runs.create_run(run, records)
    case.make_gone("conn-1")
    subscriptions = Subscriptions(case.runs, case.connections, case.sink, max_subscribers=10)
    assert subscriptions.subscribe("conn-1", run.run_id, owner=OWNER).delivered is False
    assert case.runs.get_run(run.run_id).subscribers == []
