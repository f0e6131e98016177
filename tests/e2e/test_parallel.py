"""Parallel branches and maps end to end on the local stack: over HTTP, followed over the WebSocket."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from local.stack import LocalStack
from tests.e2e.conftest import create_graph, run_logs, signer, start_run, wait_for_run
from tests.e2e.test_local_stack import frames_until_end
from tests.support.tools import map_graph, parallel_graph

pytestmark = pytest.mark.e2e


def follow(
    stack: LocalStack, api: httpx.Client, graph_id: str, state: dict[str, Any]
) -> tuple[str, list[Any]]:
    """Start a run and follow it from its first record to its last over the WebSocket."""
    with connect(signer(stack).websocket_url(stack.ws_url)) as ws:
        run_id = start_run(api, graph_id, state)
        ws.send(json.dumps({"action": "subscribe", "run_id": run_id, "after": -1}))
        frames = frames_until_end(ws, timeout=60, replayed=True)
    return run_id, [r for f in frames if f["type"] == "records" for r in f["records"]]


def test_a_parallel_run_over_http_followed_over_the_websocket(api: httpx.Client, stack: LocalStack) -> None:
    graph_id = create_graph(api, parallel_graph(3))

    run_id, records = follow(stack, api, graph_id, {})

    run = wait_for_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert sorted(run["state"]["path"]) == ["b0", "b1", "b2"]
    assert run["state"]["path"] == ["b0", "b1", "b2"], (
        "merged in branch order whatever order they finished in"
    )
    assert run["state"]["count"] == 3
    received = [r["seq"] for r in records]
    assert sorted(set(received)) == list(range(len(run_logs(api, run_id)))), "every record, no gap"
    assert len(received) == len(set(received)), "no record twice"
    assert {r["branch"] for r in records if r.get("branch")} == {"b0", "b1", "b2"}
    [joined] = [r for r in records if r["type"] == "joined"]
    assert joined["node"] == "merge"


def test_a_map_run_keeps_item_order_and_its_concurrency_bound(api: httpx.Client, stack: LocalStack) -> None:
    graph_id = create_graph(api, map_graph(max_concurrency=4))

    run_id, records = follow(stack, api, graph_id, {"n": 12})

    run = wait_for_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert run["state"]["squares"] == [i * i for i in range(12)]
    assert run["state"]["order"] == list(range(12))
    assert run["state"]["total"] == sum(range(12))
    begun: set[str] = set()
    arrived: set[str] = set()
    most = 0
    for record in sorted(records, key=lambda r: r["seq"]):
        branch = record.get("branch")
        if branch:
            begun.add(branch)
        if record["type"] == "branch_succeeded":
            arrived.add(branch)
        most = max(most, len(begun - arrived))
    assert len(begun) == 12
    assert most <= 4, f"{most} items ran at once"
    received = sorted(r["seq"] for r in records)
    assert received == list(range(len(run_logs(api, run_id))))


def test_the_parallel_data_quality_variant_over_http_followed_over_the_websocket(
    api: httpx.Client, stack: LocalStack
) -> None:
    from engine.graphs import load_graph_json

    sequential = create_graph(api, load_graph_json("data_quality"))
    parallel = create_graph(api, load_graph_json("data_quality_parallel"))
    state = {"records": 300, "seed": 11}

    run_id, records = follow(stack, api, parallel, {**state, "chunks_count": 4})
    reference = wait_for_run(api, start_run(api, sequential, state), timeout=60)

    run = wait_for_run(api, run_id, timeout=60)
    assert run["status"] == reference["status"] == "SUCCEEDED", run.get("error")
    assert run["state"]["report"] == reference["state"]["report"]
    received = sorted(r["seq"] for r in records)
    assert received == list(range(len(run_logs(api, run_id)))), "every record once, in seq order"
    branches = {r["branch"] for r in records if r.get("branch")}
    assert {"chunks[0]", "chunks[3]"} <= branches
    assert sum(r["type"] == "joined" for r in records) >= 2, "two fan-outs per iteration"
