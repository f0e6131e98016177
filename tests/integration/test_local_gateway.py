"""The local gateway with stand-in handlers: API Gateway events in, responses and WebSocket frames out."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from local.gateway import DEFAULT_WS_ROUTES, EventLoopThread, Gateway, select_route


class Handlers:
    """An HTTP handler that echoes its event and a WebSocket handler that answers through the management API."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.management: Any = None

    def http(self, event: dict[str, Any], context: Any) -> Any:
        path = event["rawPath"]
        if path == "/raise":
            raise RuntimeError("boom")
        if path == "/plain":
            return {"plain": True}
        if path == "/binary":
            return {
                "statusCode": 200,
                "body": base64.b64encode(b"\x00\xff").decode(),
                "isBase64Encoded": True,
            }
        return {
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-echo": "yes"},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": json.dumps(event),
        }

    def ws(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.events.append(event)
        route = event["requestContext"]["routeKey"]
        connection_id = event["requestContext"]["connectionId"]
        query = event.get("queryStringParameters") or {}
        if route == "$connect" and query.get("deny"):
            return {"statusCode": 403, "body": "denied"}
        if route == "$connect" and query.get("greet"):
            self.management.post_to_connection(ConnectionId=connection_id, Data=b'{"hello": "early"}')
        if event["requestContext"]["eventType"] == "MESSAGE":
            reply = {"route": route, "body": event["body"]}
            self.management.post_to_connection(ConnectionId=connection_id, Data=json.dumps(reply).encode())
        return {"statusCode": 200}

    def of_route(self, route: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["requestContext"]["routeKey"] == route]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.fixture
def handlers() -> Handlers:
    return Handlers()


@pytest.fixture
def gateway(handlers: Handlers) -> Iterator[Gateway]:
    loop = EventLoopThread()
    gateway = Gateway(handlers.http, handlers.ws, routes=DEFAULT_WS_ROUTES)
    loop.run(gateway.start())
    handlers.management = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("apigatewaymanagementapi", endpoint_url=gateway.url)
    yield gateway
    loop.run(gateway.stop())
    loop.close()


def test_an_http_request_becomes_a_payload_2_event(gateway: Gateway) -> None:
    response = httpx.post(
        f"{gateway.url}/items/42?a=1&a=2&b=x%20y",
        json={"k": "v"},
        headers={"X-Custom": "c", "Cookie": "c1=v1; c2=v2"},
    )

    assert response.status_code == 201
    assert response.headers["x-echo"] == "yes"
    assert response.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2"]
    event = response.json()
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/items/42"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["headers"]["x-custom"] == "c"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/items/42"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "$default"
    assert isinstance(context["timeEpoch"], int) and context["requestId"]
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"k": "v"}


def test_binary_bodies_travel_base64_encoded(gateway: Gateway) -> None:
    echoed = httpx.put(
        f"{gateway.url}/upload", content=b"\x00\x01\xfe", headers={"content-type": "application/octet-stream"}
    ).json()
    assert echoed["isBase64Encoded"] is True
    assert base64.b64decode(echoed["body"]) == b"\x00\x01\xfe"

    binary = httpx.get(f"{gateway.url}/binary")
    assert binary.content == b"\x00\xff"


def test_handler_results_map_as_api_gateway_maps_them(gateway: Gateway) -> None:
    plain = httpx.get(f"{gateway.url}/plain")
    assert plain.status_code == 200
    assert plain.json() == {"plain": True}

    failed = httpx.get(f"{gateway.url}/raise")
    assert failed.status_code == 500
    assert failed.json() == {"message": "Internal Server Error"}


def test_websocket_connect_messages_and_management_api(gateway: Gateway, handlers: Handlers) -> None:
    management = handlers.management
    with connect(f"{gateway.ws_url}?run_id=r1&greet=1") as ws:
        assert json.loads(ws.recv(timeout=5)) == {"hello": "early"}, "posted during $connect, sent after"
        (connected,) = handlers.of_route("$connect")
        assert connected["requestContext"]["eventType"] == "CONNECT"
        assert connected["queryStringParameters"] == {"run_id": "r1", "greet": "1"}
        connection_id = connected["requestContext"]["connectionId"]

        for body, route in [
            (json.dumps({"action": "subscribe", "run_id": "r1"}), "subscribe"),
            (json.dumps({"action": "dance"}), "$default"),
            ("not json", "$default"),
        ]:
            ws.send(body)
            assert json.loads(ws.recv(timeout=5)) == {"route": route, "body": body}
        message = handlers.of_route("subscribe")[0]
        assert message["requestContext"]["eventType"] == "MESSAGE"
        assert message["requestContext"]["connectionId"] == connection_id

        described = management.get_connection(ConnectionId=connection_id)
        assert described["Identity"]["SourceIp"] == "127.0.0.1"
        assert described["ConnectedAt"] <= described["LastActiveAt"]

        management.delete_connection(ConnectionId=connection_id)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)

    wait_until(lambda: bool(handlers.of_route("$disconnect")))
    disconnected = handlers.of_route("$disconnect")[0]["requestContext"]
    assert disconnected["eventType"] == "DISCONNECT"
    assert disconnected["connectionId"] == connection_id
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId=connection_id, Data=b"late")
    with pytest.raises(management.exceptions.GoneException):
        management.get_connection(ConnectionId="NoSuchConnect=")


def test_a_connect_answer_other_than_200_refuses_the_connection(gateway: Gateway, handlers: Handlers) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{gateway.ws_url}?deny=1")
    assert refused.value.response.status_code == 403
    assert not gateway.connections
    assert not handlers.of_route("$disconnect")


def test_a_message_without_a_matching_route_or_default_is_forbidden(handlers: Handlers) -> None:
    loop = EventLoopThread()
    gateway = Gateway(handlers.http, handlers.ws, routes={"$connect", "$disconnect", "subscribe"})
    loop.run(gateway.start())
    try:
        with connect(gateway.ws_url) as ws:
            ws.send(json.dumps({"action": "dance"}))
            assert json.loads(ws.recv(timeout=5))["message"] == "Forbidden"
    finally:
        loop.run(gateway.stop())
        loop.close()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"action": "subscribe"}', "subscribe"),
        ('{"action": "unsubscribe"}', "unsubscribe"),
        ('{"action": "$connect"}', "$default"),
        ('{"action": 3}', "$default"),
        ("[]", "$default"),
        ("", "$default"),
    ],
)
def test_route_selection_follows_the_action_field(body: str, expected: str) -> None:
    assert select_route(body, DEFAULT_WS_ROUTES) == expected


def test_a_path_with_an_encoded_newline_reaches_the_handler(gateway: Gateway) -> None:
    response = httpx.post(f"{gateway.url}/items/a%0Ab", json={})
    assert response.status_code == 201
    assert response.json()["rawPath"] == "/items/a%0Ab"
