"""Reading request bodies: size limit, base64, and graph definitions parsed without losing repeated names."""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from engine.errors import BadRequestError, PayloadTooLargeError
from engine.graph import loads_definition
from functions.api.errors import MalformedJsonError

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def max_body_bytes() -> int:
    """The largest request body accepted (``MAX_BODY_BYTES``, default 1 MiB)."""
    return int(os.environ.get("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))


def _check_size(size: int) -> None:
    limit = max_body_bytes()
    if size > limit:
        raise PayloadTooLargeError(f"request body is {size} bytes; the limit is {limit}", limit=limit)


def loads_json(text: str) -> Any:
    """``json.loads`` behind the size limit: the resolver's deserializer for validated bodies."""
    _check_size(len(text.encode()))
    return json.loads(text)


def raw_body(event: APIGatewayProxyEventV2) -> bytes:
    """The request body as bytes, base64-decoded if API Gateway encoded it; b"" if there is none."""
    body = event.body
    if not body:
        return b""
    if event.is_base64_encoded:
        _check_size(len(body) * 3 // 4)
        try:
            data = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise MalformedJsonError("request body is not valid base64") from None
    else:
        data = body.encode()
    _check_size(len(data))
    return data


def graph_definition(event: APIGatewayProxyEventV2) -> Any:
    """The graph definition in the body, parsed with :func:`engine.graph.loads_definition`.

    Repeated node names survive the parse, so validation reports them instead of
    keeping the last one silently (as ``json.loads``, and so Powertools'
    ``json_body``, would).
    """
    data = raw_body(event)
    if not data.strip():
        raise BadRequestError("the request body must be a graph definition (JSON)")
    try:
        return loads_definition(data)
    except ValueError as exc:
        raise MalformedJsonError(f"request body is not valid JSON: {exc}") from None
