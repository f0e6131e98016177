"""Reading request bodies: size and depth limits, base64, and graph definitions parsed without losing repeated names.

Every JSON body goes through :func:`parse_json`: its nesting is measured on the
text before it is parsed (so no depth can exhaust the stack), numbers JSON cannot
carry are refused, and so are lone surrogates anywhere in it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from engine.errors import BadRequestError, PayloadTooLargeError, TooDeepError
from engine.graph import loads_definition
from engine.limits import MAX_BODY_BYTES, MAX_BODY_DEPTH, NUMBER_HOOKS, has_lone_surrogate, text_depth
from functions.api.errors import MalformedJsonError
from functions.shared.settings import settings

DEFAULT_MAX_BODY_BYTES = MAX_BODY_BYTES


def max_body_bytes() -> int:
    """The largest request body accepted (``MAX_BODY_BYTES``, default 1 MiB)."""
    return settings().max_body_bytes


def _check_size(size: int) -> None:
    limit = max_body_bytes()
    if size > limit:
        raise PayloadTooLargeError(f"request body is {size} bytes; the limit is {limit}", limit=limit)


def parse_json(text: str | bytes, loads: Callable[[str], Any] | None = None) -> Any:
    """Parse a request body's JSON behind the depth limit, refusing huge numbers and lone surrogates."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedJsonError("request body is not UTF-8 text") from None
    depth = text_depth(text)
    if depth > MAX_BODY_DEPTH:
        raise TooDeepError(
            f"request body nests {depth} levels deep; the limit is {MAX_BODY_DEPTH}", limit=MAX_BODY_DEPTH
        )
    value = loads(text) if loads is not None else json.loads(text, **NUMBER_HOOKS)
    if ("\\u" in text or "\\U" in text or has_lone_surrogate(text)) and has_lone_surrogate(
        json.dumps(value, ensure_ascii=False)
    ):
        raise BadRequestError("request body holds a lone surrogate (an unpaired \\ud800-\\udfff escape)")
    return value


def loads_json(text: str) -> Any:
    """:func:`parse_json` behind the size limit: the resolver's deserializer for validated bodies."""
    _check_size(len(text.encode("utf-8", "surrogatepass")))
    try:
        return parse_json(text)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
        raise MalformedJsonError(f"request body is not valid JSON: {exc}") from None


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
        data = body.encode("utf-8", "surrogatepass")
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
        return parse_json(data, loads_definition)
    except ValueError as exc:
        if isinstance(exc, BadRequestError):
            raise
        raise MalformedJsonError(f"request body is not valid JSON: {exc}") from None
