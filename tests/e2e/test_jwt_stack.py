"""The local stack in JWT mode: bearer tokens from a test issuer, over HTTP, the WebSocket and ``wf``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local import cli
from local.signing import BearerToken
from local.stack import LocalStack
from tests.support.jwt_keys import AUDIENCE, ISSUER, Issuer
from tests.support.tools import LOOP_GRAPH

pytestmark = pytest.mark.e2e

ISSUING = Issuer()


def control_frame(ws: Any) -> dict[str, Any]:
    """The first frame that is not records: live records of a running run may come before the ack."""
    while True:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if frame.get("type") != "records":
            return frame


@pytest.fixture(scope="module")
def jwt_stack() -> Iterator[LocalStack]:
    with LocalStack(
        port=0,
        moto_port=0,
        workers=1,
        tool_modules=["tests.support.tools"],
        log_level="WARNING",
        auth="jwt",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks=ISSUING.jwks(),
    ) as running:
        yield running


def test_tokens_authenticate_and_scope_to_their_subject(
    jwt_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = BearerToken(ISSUING.token("alice"))
    bob = BearerToken(ISSUING.token("bob"))
    url = jwt_stack.http_url
    assert httpx.get(f"{url}/graphs").status_code == 401
    assert httpx.get(f"{url}/graphs", auth=BearerToken(Issuer().token()).http_auth()).status_code == 401

    graph_id = httpx.post(f"{url}/graphs", json=LOOP_GRAPH, auth=alice.http_auth()).json()["graph_id"]
    run_id = httpx.post(f"{url}/runs", json={"graph_id": graph_id}, auth=alice.http_auth()).json()["run_id"]
    assert httpx.get(f"{url}/runs/{run_id}", auth=bob.http_auth()).status_code == 404

    with connect(alice.websocket_url(jwt_stack.ws_url)) as ws:
        ws.send(json.dumps({"action": "subscribe", "run_id": run_id}))
        assert control_frame(ws)["type"] == "subscribed"
    with pytest.raises(InvalidStatus) as refused:
        connect(jwt_stack.ws_url).__enter__()
    assert refused.value.response.status_code == 401

    capsys.readouterr()
    token = ISSUING.token("alice")
    assert cli.main(["--endpoint", url, "--token", token, "--json", "graphs", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert graph_id in json.dumps(listed)
