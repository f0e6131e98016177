"""End-to-end fixtures: the whole local stack (moto server, gateway, pollers, real handlers) on free ports.

One stack per test module, authenticating with SigV4 as by default: :func:`signer`
signs with its developer key. Its handlers load ``tests.support.tools`` besides the
built-in tools, and its step queue's visibility timeout is
:data:`VISIBILITY_TIMEOUT` seconds, so that a failed invocation is retried soon.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials

from local.signing import SigV4Signer
from local.stack import LocalStack

VISIBILITY_TIMEOUT = 2
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})


GATED: dict[str, Any] = {
    "name": "gated",
    "start_node": "start",
    "nodes": {
        "start": {"tool": "test.noop"},
        "gate": {"tool": "test.gate"},
        "a": {"tool": "test.inc"},
        "b": {"tool": "test.noop"},
    },
    "edges": {
        "start": "gate",
        "gate": "a",
        "a": "b",
        "b": [{"when": {"key": "i", "op": "<", "value": 3}, "to": "a"}, {"to": "__end__"}],
    },
}
"""Holds at ``gate`` (``test.gate``: until the file ``state["gate"]`` exists), then loops ``a -> b`` while ``i < 3``."""


def create_graph(api: httpx.Client, definition: dict[str, Any]) -> str:
    response = api.post("/graphs", json=definition)
    assert response.status_code == 201, response.text
    return str(response.json()["graph_id"])


def start_run(api: httpx.Client, graph_id: str, state: dict[str, Any] | None = None) -> str:
    response = api.post("/runs", json={"graph_id": graph_id, "initial_state": state or {}})
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


def tool_modules() -> list[str]:
    modules = ["tests.support.tools"]
    if importlib.util.find_spec("engine.tools.dq") is not None:
        modules.insert(0, "engine.tools.dq")
    return modules


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """A running local stack for the module; stopped (moto, environments, gateway) after its last test."""
    with LocalStack(
        port=0,
        moto_port=0,
        workers=4,
        visibility_timeout=VISIBILITY_TIMEOUT,
        tool_modules=tool_modules(),
        log_level="WARNING",
    ) as running:
        yield running


def signer(stack: LocalStack) -> SigV4Signer:
    """Signs with the stack's developer key."""
    assert stack.credential is not None
    return SigV4Signer(Credentials(stack.credential.access_key, stack.credential.secret_key))


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    """An HTTP client for the stack's HTTP API, signing as the developer."""
    with httpx.Client(base_url=stack.http_url, timeout=30.0, auth=signer(stack).http_auth()) as client:
        yield client


@pytest.fixture
def developer_env(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer key in ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, where botocore's chain finds it."""
    assert stack.credential is not None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", stack.credential.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", stack.credential.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def wait_for_run(api: httpx.Client, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll ``GET /runs/{id}`` until the run ends; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        if run["status"] in TERMINAL:
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run['status']} at step {run.get('step')} after {timeout}s")
        time.sleep(0.1)


def run_logs(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """Every log record of a run, through ``GET /runs/{id}/logs``."""
    records: list[dict[str, Any]] = []
    after = -1
    while True:
        response = api.get(f"/runs/{run_id}/logs", params={"after": after, "limit": 1000})
        assert response.status_code == 200, response.text
        page = response.json()
        records.extend(page["records"])
        if not page["records"]:
            return records
        after = page["next_after"]
