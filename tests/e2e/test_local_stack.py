"""The local stack end to end: HTTP API, WebSocket API, step and DLQ pollers, real handlers on moto server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from engine.aws.dynamodb import DynamoStore
from local.stack import LocalStack
from tests.e2e.conftest import (
    GATED,
    VISIBILITY_TIMEOUT,
    create_graph,
    run_logs,
    signer,
    start_run,
    wait_for_run,
)
from tests.support.tools import FLAKY_GRAPH

pytestmark = pytest.mark.e2e

TERMINAL_RECORDS = frozenset({"run_succeeded", "run_failed", "run_cancelled", "run_timed_out"})

COUNTER: dict[str, Any] = {
    "name": "counter",
    "start_node": "a",
    "nodes": {"a": {"tool": "test.inc"}, "b": {"tool": "test.noop"}},
    "edges": {"a": "b", "b": [{"when": {"key": "i", "op": "<", "value": 3}, "to": "a"}, {"to": "__end__"}]},
}


def frames_until_end(
    ws: ClientConnection, timeout: float = 30.0, *, replayed: bool = False
) -> list[dict[str, Any]]:
    """Frames received until a record that ends the run (and, if ``replayed``, the ``replayed`` frame)."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    ended = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no terminal record within {timeout}s; got {frames}")
        frame = json.loads(ws.recv(timeout=remaining))
        frames.append(frame)
        if frame["type"] == "records" and any(r["type"] in TERMINAL_RECORDS for r in frame["records"]):
            ended = True
        if ended and (not replayed or any(f["type"] == "replayed" for f in frames)):
            return frames


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [r["seq"] for f in frames if f["type"] == "records" for r in f["records"]]


def wait_until(predicate: Any, timeout: float = 15.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{message} not reached within {timeout}s")
        time.sleep(0.05)


def wait_for_log(api: httpx.Client, run_id: str, node: str, type_: str) -> None:
    wait_until(
        lambda: any(r["node"] == node and r["type"] == type_ for r in run_logs(api, run_id)),
        message=f"{type_} at {node}",
    )


@pytest.fixture(scope="module")
def store(stack: LocalStack) -> DynamoStore:
    """The stack's DynamoDB store, read from the test."""
    assert stack.resources is not None
    return DynamoStore(stack.client("dynamodb"), stack.resources.table_name)


def test_data_quality_run_over_http(api: httpx.Client) -> None:
    response = api.post("/demo/run_data_quality", json={"records": 60, "seed": 3})
    assert response.status_code == 200, response.text
    run_id = response.json()["run_id"]

    run = wait_for_run(api, run_id, timeout=45)

    assert run["status"] == "SUCCEEDED", run
    records = run_logs(api, run_id)
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert records[-1]["type"] == "run_succeeded"
    nodes = {r["node"] for r in records if r["type"] == "step_succeeded"}
    assert {"initialize", "profile", "detect", "evaluate", "report"} <= nodes


def test_subscriber_joining_mid_run_gets_every_record_once(
    api: httpx.Client, stack: LocalStack, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run_id = start_run(api, create_graph(api, GATED), {"gate": str(gate)})
    wait_for_log(api, run_id, "start", "step_succeeded")

    with (
        connect(signer(stack).websocket_url(stack.ws_url)) as replaying,
        connect(signer(stack).websocket_url(f"{stack.ws_url}?run_id={run_id}")) as live,
    ):
        replaying.send(json.dumps({"action": "subscribe", "run_id": run_id, "after": -1}))
        ack = json.loads(replaying.recv(timeout=10))
        gate.touch()
        replayed = frames_until_end(replaying, replayed=True)
        lived = frames_until_end(live, replayed=True)

    assert ack["type"] == "subscribed" and ack["run_id"] == run_id
    received = seqs(replayed)
    assert len(received) == len(set(received)), f"duplicates in {received}"
    assert sorted(received) == list(range(max(received) + 1))
    [done] = [f for f in replayed if f["type"] == "replayed"]
    assert 2 <= done["live_from"] <= max(received), "the subscription came mid-run"
    live_seqs = seqs(lived)
    assert len(live_seqs) == len(set(live_seqs)), f"duplicates in {live_seqs}"
    assert sorted(live_seqs) == list(range(min(live_seqs), max(received) + 1)), "no gap from the connect on"
    final = [r for f in replayed if f["type"] == "records" for r in f["records"] if r["seq"] == max(received)]
    assert final[0]["type"] == "run_succeeded"
    assert wait_for_run(api, run_id)["status"] == "SUCCEEDED"


def test_twenty_concurrent_runs_succeed(api: httpx.Client) -> None:
    graph_id = create_graph(api, COUNTER)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        run_ids = list(pool.map(lambda _: start_run(api, graph_id), range(20)))
        runs = list(pool.map(lambda run_id: wait_for_run(api, run_id, timeout=45), run_ids))
    elapsed = time.monotonic() - started

    assert [r["status"] for r in runs] == ["SUCCEEDED"] * 20
    assert all(r["state"]["i"] == 3 for r in runs)
    for run_id in run_ids:
        records = run_logs(api, run_id)
        assert [r["seq"] for r in records] == list(range(len(records)))
        assert sum(r["type"] == "step_succeeded" for r in records) == 6
    print(f"20 runs x 6 steps in {elapsed:.2f}s: {120 / elapsed:.0f} steps/s")


def test_a_retry_is_handed_back_to_the_queue_until_it_is_due(api: httpx.Client, stack: LocalStack) -> None:
    assert stack.poller is not None
    handed_back = stack.poller.stats["step"].failed

    run_id = start_run(api, create_graph(api, FLAKY_GRAPH))
    run = wait_for_run(api, run_id)

    assert run["status"] == "SUCCEEDED", run
    assert run["state"]["flaky_ok"] == 2
    assert "retry_scheduled" in [r["type"] for r in run_logs(api, run_id)]
    assert stack.poller.stats["step"].failed > handed_back, "reported in batchItemFailures"


def test_a_crashed_invocation_is_redelivered_and_the_run_completes(
    api: httpx.Client, stack: LocalStack, tmp_path: Path
) -> None:
    graph_id = create_graph(
        api,
        {
            "name": "crashing",
            "start_node": "start",
            "nodes": {"start": {"tool": "test.noop"}, "boom": {"tool": "test.crash_once"}},
            "edges": {"start": "boom"},
        },
    )
    assert stack.poller is not None
    crashes_before = stack.poller.stats["step"].invocation_errors

    run_id = start_run(api, graph_id, {"crash_dir": str(tmp_path)})
    run = wait_for_run(api, run_id, timeout=10 * VISIBILITY_TIMEOUT + 20)

    assert run["status"] == "SUCCEEDED", run
    assert (tmp_path / f"{run_id}-1").exists(), "the first delivery crashed"
    assert stack.poller.stats["step"].invocation_errors > crashes_before
    assert run["state"]["recovered_at"] == 1
    boom = [r["type"] for r in run_logs(api, run_id) if r["node"] == "boom"]
    assert boom.count("step_succeeded") == 1, boom


def test_a_tool_that_keeps_crashing_its_invocation_fails_its_run_on_the_redelivery(
    api: httpx.Client, stack: LocalStack
) -> None:
    graph_id = create_graph(
        api,
        {
            "name": "always-crashing",
            "start_node": "start",
            "nodes": {"start": {"tool": "test.noop"}, "boom": {"tool": "test.crash"}},
            "edges": {"start": "boom"},
        },
    )
    assert stack.poller is not None
    crashes_before = stack.poller.stats["step"].invocation_errors

    run_id = start_run(api, graph_id)
    run = wait_for_run(api, run_id, timeout=4 * VISIBILITY_TIMEOUT + 20)

    # The first delivery crashes the invocation; the redelivery runs the tool isolated,
    # where the crash ends only the tool's process.
    assert run["status"] == "FAILED", run
    assert run["error"]["type"] == "ToolProcessDied", run["error"]
    assert "WorkerCrash" in run["error"]["message"]
    assert stack.poller.stats["step"].invocation_errors > crashes_before
    assert run_logs(api, run_id)[-1]["type"] == "run_failed"


def test_a_subscriber_that_disconnects_is_removed_from_the_run(
    api: httpx.Client, stack: LocalStack, store: DynamoStore, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run_id = start_run(api, create_graph(api, GATED), {"gate": str(gate), "gate_timeout": 120})
    wait_for_log(api, run_id, "start", "step_succeeded")

    with connect(signer(stack).websocket_url(stack.ws_url)) as ws:
        ws.send(json.dumps({"action": "subscribe", "run_id": run_id}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        while json.loads(ws.recv(timeout=10))["type"] != "replayed":  # the subscription is stored by then
            pass
        subscribers = store.get_run(run_id).subscribers
        assert len(subscribers) == 1
        (connection_id,) = subscribers
        assert store.runs_of(connection_id) == [run_id]

    # $disconnect follows the subscribe invocation (the gateway runs a connection's invocations in
    # order), so on a loaded machine it may take a while: a bound, not a timing assertion
    wait_until(
        lambda: not store.get_run(run_id).subscribers and not store.runs_of(connection_id),
        timeout=60,
        message="the subscriber's removal",  # from the run, then from the connection index
    )
    gate.touch()
    assert wait_for_run(api, run_id)["status"] == "SUCCEEDED"


def test_the_management_api_answers_gone_for_a_closed_connection(stack: LocalStack) -> None:
    import boto3

    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("apigatewaymanagementapi", endpoint_url=stack.http_url)
    with connect(signer(stack).websocket_url(stack.ws_url)) as ws:
        assert stack.gateway is not None
        wait_until(lambda: len(stack.gateway.connections) >= 1, message="the connection")  # type: ignore[union-attr]
        connection_id = next(iter(stack.gateway.connections))
        client.post_to_connection(ConnectionId=connection_id, Data=b'{"hello": 1}')
        assert json.loads(ws.recv(timeout=5)) == {"hello": 1}
        described = client.get_connection(ConnectionId=connection_id)
        assert described["Identity"]["SourceIp"] == "127.0.0.1"
    wait_until(lambda: connection_id not in stack.gateway.connections, message="the disconnect")  # type: ignore[union-attr]
    with pytest.raises(client.exceptions.GoneException):
        client.post_to_connection(ConnectionId=connection_id, Data=b"late")


@pytest.mark.parametrize("form", ["/logs/{id}", "/execution/{id}", "?run_id={id}&after=-1"])
def test_connecting_for_a_run_delivers_the_ack_then_its_whole_backlog_then_live_records(
    api: httpx.Client, stack: LocalStack, tmp_path: Path, form: str
) -> None:
    gate, reached = tmp_path / "gate", tmp_path / "reached"
    run_id = start_run(api, create_graph(api, GATED), {"gate": str(gate), "gate_reached": str(reached)})
    wait_until(reached.exists, message="the gate")

    with connect(signer(stack).websocket_url(stack.ws_url + form.format(id=run_id))) as ws:
        first = json.loads(ws.recv(timeout=15))
        assert first == {"type": "subscribed", "run_id": run_id, "after": -1, "status": "RUNNING"}
        before_gate = []
        while not any(f["type"] == "replayed" for f in before_gate):
            before_gate.append(json.loads(ws.recv(timeout=15)))
        gate.touch()
        frames = [first, *before_gate, *frames_until_end(ws)]

    backlog = seqs(before_gate)
    assert backlog == list(range(len(backlog))) and len(backlog) >= 3, "the start of the log, in order"
    received = seqs(frames)
    assert sorted(received) == list(range(len(received))), f"every record once: {received}"
    assert frames[-1]["records"][-1]["type"] == "run_succeeded"
    assert len(received) == len(run_logs(api, run_id))


def test_the_first_frame_of_every_subscription_to_a_running_run_is_subscribed(
    api: httpx.Client, stack: LocalStack
) -> None:
    from tests.support.tools import loop_graph

    run_id = start_run(api, create_graph(api, {**loop_graph(40), "max_steps": 200}), {"i": 0})
    wait_for_log(api, run_id, "a", "step_succeeded")
    firsts = []
    for index in range(8):
        if index % 2:
            with connect(signer(stack).websocket_url(f"{stack.ws_url}?run_id={run_id}&after=0")) as ws:
                firsts.append(json.loads(ws.recv(timeout=15)))
        else:
            with connect(signer(stack).websocket_url(stack.ws_url)) as ws:
                ws.send(json.dumps({"action": "subscribe", "run_id": run_id, "after": 0}))
                firsts.append(json.loads(ws.recv(timeout=15)))
    assert [f["type"] for f in firsts] == ["subscribed"] * 8, firsts
    assert wait_for_run(api, run_id, timeout=60)["status"] == "SUCCEEDED"


def test_a_seed_url_for_a_run_the_caller_cannot_read_is_refused_with_404(stack: LocalStack) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        connect(signer(stack).websocket_url(f"{stack.ws_url}/logs/no-such-run"))
    assert refused.value.response.status_code == 404


def test_a_url_presigned_for_one_seed_path_does_not_open_another(stack: LocalStack) -> None:
    from websockets.exceptions import InvalidStatus

    signed = signer(stack).websocket_url(f"{stack.ws_url}/logs/run-a")
    with pytest.raises(InvalidStatus) as refused:
        connect(signed.replace("/logs/run-a", "/logs/run-b"))
    assert refused.value.response.status_code == 403


@pytest.fixture(autouse=True)
def _no_stray_connections(stack: LocalStack) -> Iterator[None]:
    yield
    assert stack.gateway is not None
    wait_until(lambda: not stack.gateway.connections, timeout=10, message="every client's $disconnect")  # type: ignore[union-attr]
