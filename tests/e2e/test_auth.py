"""Authentication and ownership end to end, on the local stack with SigV4 (its default)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local.signing import SigV4Signer
from local.stack import LocalStack
from tests.e2e.conftest import signer
from tests.support.tools import LOOP_GRAPH

pytestmark = pytest.mark.e2e


def control_frame(ws: Any) -> dict[str, Any]:
    """The first frame that is not records: live records of a running run may come before the ack."""
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if frame.get("type") != "records":
            return frame


@pytest.fixture(scope="module")
def bob(stack: LocalStack) -> httpx.Client:
    credential = stack.credentials.first_of("bob") or stack.credentials.add("bob")
    auth = SigV4Signer(Credentials(credential.access_key, credential.secret_key))
    return httpx.Client(base_url=stack.http_url, timeout=30.0, auth=auth.http_auth())


def bob_signer(stack: LocalStack) -> SigV4Signer:
    credential = stack.credentials.first_of("bob")
    assert credential is not None
    return SigV4Signer(Credentials(credential.access_key, credential.secret_key))


def test_unsigned_and_wrongly_signed_requests_are_refused(stack: LocalStack) -> None:
    assert httpx.get(f"{stack.http_url}/graphs").status_code == 403
    assert stack.credential is not None
    forged = SigV4Signer(Credentials(stack.credential.access_key, "guessed"))
    assert httpx.get(f"{stack.http_url}/graphs", auth=forged.http_auth()).status_code == 403
    for url in (stack.ws_url, forged.websocket_url(stack.ws_url)):
        with pytest.raises(InvalidStatus) as refused:
            connect(url).__enter__()
        assert refused.value.response.status_code == 403


def test_a_preflight_needs_no_credentials(stack: LocalStack) -> None:
    reply = httpx.options(
        f"{stack.http_url}/runs",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert reply.status_code == 204
    assert "x-amz-security-token" in reply.headers["access-control-allow-headers"].lower()


def test_another_callers_graphs_and_runs_are_invisible(
    api: httpx.Client, bob: httpx.Client, stack: LocalStack
) -> None:
    graph_id = api.post("/graphs", json=LOOP_GRAPH).json()["graph_id"]
    run = api.post("/runs", json={"graph_id": graph_id, "initial_state": {"i": 0}, "idempotency_key": "k-1"})
    run_id = run.json()["run_id"]

    assert bob.get(f"/graphs/{graph_id}").json()["code"] == "graph_not_found"
    assert graph_id not in [g["graph_id"] for g in bob.get("/graphs").json()["graphs"]]
    assert bob.put(f"/graphs/{graph_id}", json=LOOP_GRAPH).status_code == 404
    assert bob.get(f"/runs/{run_id}").json()["code"] == "run_not_found"
    assert bob.get(f"/runs/{run_id}/logs").status_code == 404
    assert bob.post(f"/runs/{run_id}/cancel").json()["code"] == "run_not_found"
    same_key = bob.post("/runs", json={"graph_id": "no-such-graph", "idempotency_key": "k-1"})
    assert same_key.json()["code"] == "graph_not_found"

    with connect(bob_signer(stack).websocket_url(stack.ws_url)) as ws:
        ws.send(json.dumps({"action": "subscribe", "run_id": run_id}))
        assert control_frame(ws)["code"] == "run_not_found"
    with pytest.raises(InvalidStatus) as refused:
        connect(bob_signer(stack).websocket_url(f"{stack.ws_url}?run_id={run_id}")).__enter__()
    assert refused.value.response.status_code == 404

    assert api.get(f"/runs/{run_id}").status_code == 200
    with connect(signer(stack).websocket_url(stack.ws_url)) as ws:
        ws.send(json.dumps({"action": "subscribe", "run_id": run_id}))
        assert control_frame(ws)["type"] == "subscribed"
