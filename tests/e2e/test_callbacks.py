"""Callbacks and redrive end to end on the local stack: ``review -> approval (callback) -> publish``.

The test follows the run over the WebSocket, reads the token from the
``callback_waiting`` record it receives, approves over HTTP (or with ``wf``), and
sees the run's records through to ``run_succeeded``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from local import cli
from local.stack import LocalStack
from tests.e2e.conftest import create_graph, run_logs, signer, start_run, wait_for_run
from tests.e2e.test_local_stack import TERMINAL_RECORDS

pytestmark = pytest.mark.e2e

REVIEW: dict[str, Any] = {
    "name": "review",
    "start_node": "review",
    "nodes": {
        "review": "test.tag",
        "approval": {"callback": {"timeout_seconds": 3600, "catch": "expired"}},
        "publish": "test.tag",
        "expired": "test.tag",
    },
    "edges": {"review": "approval", "approval": "publish", "publish": "__end__", "expired": "__end__"},
}


def records_until(
    ws: ClientConnection, done: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Log records received over ``ws`` up to the first one for which ``done`` holds."""
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no such record within {timeout}s; got {[r['type'] for r in records]}")
        frame = json.loads(ws.recv(timeout=remaining))
        if frame["type"] != "records":
            continue
        for record in frame["records"]:
            records.append(record)
            if done(record):
                return records


def waiting_for_callback(api: httpx.Client, ws: ClientConnection) -> tuple[str, str]:
    """A run of :data:`REVIEW` followed over ``ws`` until its ``callback_waiting`` record: ``(run_id, token)``."""
    graph_id = create_graph(api, REVIEW)
    run_id = start_run(api, graph_id)
    ws.send(json.dumps({"action": "subscribe", "run_id": run_id, "after": -1}))
    records = records_until(ws, lambda r: r["type"] == "callback_waiting")
    return run_id, records[-1]["data"]["token"]


def test_approved_over_http_while_following_the_websocket(stack: LocalStack, api: httpx.Client) -> None:
    with connect(signer(stack).websocket_url(stack.ws_url)) as ws:
        run_id, token = waiting_for_callback(api, ws)
        waiting = api.get(f"/runs/{run_id}").json()
        assert (waiting["status"], waiting["waiting"]["kind"], waiting["waiting"]["node"]) == (
            "RUNNING",
            "callback",
            "approval",
        )
        assert token not in json.dumps(waiting)

        approved = api.post(f"/callbacks/{token}", json={"decision": "ship", "data": {"reviewer": "alice"}})
        assert approved.status_code == 200, approved.text

        rest = records_until(ws, lambda r: r["type"] in TERMINAL_RECORDS)
    assert rest[-1]["type"] == "run_succeeded"
    assert "callback_received" in [r["type"] for r in rest]
    assert [r["node"] for r in rest if r["type"] == "step_succeeded"] == ["approval", "publish"]
    run = wait_for_run(api, run_id)
    assert run["status"] == "SUCCEEDED"
    assert (run["state"]["reviewer"], run["state"]["decision"], run["state"]["publish_done"]) == (
        "alice",
        "ship",
        True,
    )
    assert run["waiting"] is None
    again = api.post(f"/callbacks/{token}", json={})
    assert (again.status_code, again.json()["code"]) == (409, "callback_used")
    assert [r["seq"] for r in run_logs(api, run_id)] == list(range(len(run_logs(api, run_id))))


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def wf(stack: LocalStack, capsys: pytest.CaptureFixture[str], developer_env: None) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        capsys.readouterr()
        code = cli.main(["--endpoint", stack.http_url, "--ws-endpoint", stack.ws_url, *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def test_wf_status_reject_redrive_and_approve(
    stack: LocalStack, api: httpx.Client, wf: Callable[..., Result]
) -> None:
    with connect(signer(stack).websocket_url(stack.ws_url)) as ws:
        run_id, first = waiting_for_callback(api, ws)
        status = wf("status", run_id)
        assert status.code == 0, status.err
        assert "a callback at approval; it times out" in status.out
        assert first in status.out

        rejected = wf("reject", first, "--reason", "numbers are off")
        assert rejected.code == 0, rejected.err
        assert "is FAILED (CallbackRejected: numbers are off)" in rejected.out
        records_until(ws, lambda r: r["type"] == "run_failed")

        redriven = wf("redrive", run_id)
        assert redriven.code == 0, redriven.err
        assert "is RUNNING at approval" in redriven.out
        second = records_until(ws, lambda r: r["type"] == "callback_waiting")[-1]["data"]["token"]
        assert second != first

        used = wf("approve", first)
        assert used.code == cli.EXIT_ERROR
        assert "callback_used" in used.err
        approved = wf("approve", second, "--data", '{"reviewer": "bob"}', "--decision", "ship")
        assert approved.code == 0, approved.err
        records_until(ws, lambda r: r["type"] == "run_succeeded")

    run = wait_for_run(api, run_id)
    assert (run["status"], run["state"]["reviewer"], run["state"]["decision"]) == ("SUCCEEDED", "bob", "ship")
    types = [r["type"] for r in run_logs(api, run_id)]
    assert types.count("callback_waiting") == 2
    assert types.index("run_failed") < types.index("run_redriven") < types.index("run_succeeded")
