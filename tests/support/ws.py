"""moto's WebSocket management API: read what was posted to a connection, make a connection gone."""

from __future__ import annotations

import json
from typing import Any

from moto.apigatewaymanagementapi.models import (
    ApiGatewayManagementApiBackend,
    apigatewaymanagementapi_backends,
)
from moto.core.exceptions import JsonRESTError

ACCOUNT = "123456789012"
REGION = "us-east-1"


def _backend() -> Any:
    return apigatewaymanagementapi_backends[ACCOUNT][REGION]


def frames(connection_id: str) -> list[dict[str, Any]]:
    """Every frame posted to a connection, in order (moto stores them concatenated)."""
    data = _backend().get_connection(connection_id).data.decode()
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    index = 0
    while index < len(data):
        frame, index = decoder.raw_decode(data, index)
        out.append(frame)
    return out


def records(connection_id: str) -> list[dict[str, Any]]:
    """The log records posted to a connection, in the order they were posted."""
    return [r for f in frames(connection_id) if f["type"] == "records" for r in f["records"]]


class GoneError(JsonRESTError):
    code = 410

    def __init__(self) -> None:
        super().__init__("GoneException", "the connection is gone")


def make_gone(monkeypatch: Any, *connection_ids: str) -> None:
    """Posting to these connections answers 410 GoneException, as API Gateway does after a disconnect."""
    original = ApiGatewayManagementApiBackend.post_to_connection

    def post(self: ApiGatewayManagementApiBackend, data: bytes, connection_id: str) -> None:
        if connection_id in connection_ids:
            raise GoneError()
        original(self, data, connection_id)

    monkeypatch.setattr(ApiGatewayManagementApiBackend, "post_to_connection", post)


class ThrottledError(JsonRESTError):
    code = 429

    def __init__(self) -> None:
        super().__init__("LimitExceededException", "rate exceeded")


def make_throttled(monkeypatch: Any, *connection_ids: str) -> None:
    """Posting to these connections answers 429 LimitExceededException, as the account-wide throttle does."""
    original = ApiGatewayManagementApiBackend.post_to_connection

    def post(self: ApiGatewayManagementApiBackend, data: bytes, connection_id: str) -> None:
        if connection_id in connection_ids:
            raise ThrottledError()
        original(self, data, connection_id)

    monkeypatch.setattr(ApiGatewayManagementApiBackend, "post_to_connection", post)


def make_get_gone(monkeypatch: Any, *connection_ids: str) -> None:
    """``GET @connections/{id}`` of these connections answers 410, as for one whose ``$connect`` never completed."""
    original = ApiGatewayManagementApiBackend.get_connection

    def get(self: ApiGatewayManagementApiBackend, connection_id: str) -> Any:
        if connection_id in connection_ids:
            raise GoneError()
        return original(self, connection_id)

    monkeypatch.setattr(ApiGatewayManagementApiBackend, "get_connection", get)
