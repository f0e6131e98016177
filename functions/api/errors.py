"""Exceptions to HTTP answers: JSON ``{"code", "message", "details"?}`` with a stable ``code``.

The status comes from the exception's type (its MRO is walked through
:data:`STATUS_BY_TYPE`), never from its message. Anything not mapped is a 500
``internal_error`` whose body tells nothing about the internals; it is logged
with its traceback instead.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from engine.errors import (
    BadRequestError,
    ConditionError,
    ConflictError,
    EngineError,
    GoneError,
    InvalidGraphError,
    NotFoundError,
    PayloadTooLargeError,
    QueueUnavailableError,
    TooManySubscribersError,
    UnauthenticatedError,
)
from functions.shared.observability import logger


class MalformedJsonError(BadRequestError):
    """The request body is not JSON (or not UTF-8 text)."""

    code = "malformed_json"


STATUS_BY_TYPE: dict[type[Exception], HTTPStatus] = {
    InvalidGraphError: HTTPStatus.BAD_REQUEST,
    BadRequestError: HTTPStatus.BAD_REQUEST,
    UnauthenticatedError: HTTPStatus.UNAUTHORIZED,
    NotFoundError: HTTPStatus.NOT_FOUND,
    ConflictError: HTTPStatus.CONFLICT,
    GoneError: HTTPStatus.GONE,
    PayloadTooLargeError: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    TooManySubscribersError: HTTPStatus.TOO_MANY_REQUESTS,
    ConditionError: HTTPStatus.BAD_REQUEST,
    QueueUnavailableError: HTTPStatus.SERVICE_UNAVAILABLE,
}


def direct_error(status: int, code: str, message: str) -> dict[str, Any]:
    """An error answer in the HTTP API's payload 2.0 shape, for requests turned away before routing."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"code": code, "message": message}),
        "isBase64Encoded": False,
    }


def status_for(exc: BaseException) -> HTTPStatus | None:
    """The status of the nearest mapped type in ``exc``'s MRO; ``None`` if no type is mapped."""
    for cls in type(exc).__mro__:
        status = STATUS_BY_TYPE.get(cls)
        if status is not None:
            return status
    return None


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def engine_error(exc: EngineError) -> Response[dict[str, Any]]:
    status = status_for(exc)
    if status is None:
        return internal_error(exc)
    details: dict[str, Any] = dict(exc.details)
    if isinstance(exc, InvalidGraphError):
        details["problems"] = [{"where": p.where, "message": p.message} for p in exc.problems]
    return error_response(status, exc.code, exc.message, details)


def _location(loc: Any) -> list[Any]:
    return list(loc) if isinstance(loc, (list, tuple)) else [loc]


def request_validation_error(exc: RequestValidationError) -> Response[dict[str, Any]]:
    """422 with every failed field; a body that is not JSON at all is a 400 ``malformed_json``.

    Powertools raises this type for responses that fail their route's schema too
    (unless the resolver sets ``response_validation_error_http_code``, which also
    replaces every route's documented 500 answer): those are our bug, a 500.
    """
    problems = list(exc.errors())
    if any(_location(e.get("loc"))[:1] == ["response"] for e in problems):
        return internal_error(exc)
    invalid_json = [e for e in problems if e.get("type") == "json_invalid"]
    if invalid_json:
        reason = (invalid_json[0].get("ctx") or {}).get("error", "invalid JSON")
        return error_response(
            HTTPStatus.BAD_REQUEST, MalformedJsonError.code, f"request body is not valid JSON: {reason}"
        )
    details = [{"loc": _location(e.get("loc")), "type": e.get("type"), "msg": e.get("msg")} for e in problems]
    return error_response(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "validation_error",
        "the request failed validation",
        {"errors": details},
    )


def undecodable_body(exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
    return error_response(HTTPStatus.BAD_REQUEST, MalformedJsonError.code, "request body is not UTF-8 text")


def unsupported_media_type(exc: RequestUnsupportedContentType) -> Response[dict[str, Any]]:
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json"
    )


def service_error(exc: ServiceError) -> Response[dict[str, Any]]:
    status = HTTPStatus(exc.status_code)
    message = exc.msg if isinstance(exc.msg, str) else status.phrase
    return error_response(status, status.phrase.lower().replace(" ", "_"), message)


def internal_error(exc: BaseException) -> Response[dict[str, Any]]:
    logger.exception("unhandled error", extra={"error_type": type(exc).__name__})
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error")


def register(app: APIGatewayHttpResolver) -> None:
    """Install the handlers on ``app``: one per exception family, plus the unknown-route answer."""

    @app.not_found
    def route_not_found(exc: RouteNotFound) -> Response[dict[str, Any]]:
        """404 ``route_not_found``; 405 ``method_not_allowed`` with ``Allow`` if the path has other methods."""
        event = app.current_event
        path = event.path
        allowed = sorted(
            {route.method for route in (*app._static_routes, *app._dynamic_routes) if route.rule.match(path)}
        )
        if allowed:
            response = error_response(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"{path} does not take {event.http_method}; it takes {', '.join(allowed)}",
                {"allowed": allowed},
            )
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return error_response(
            HTTPStatus.NOT_FOUND, "route_not_found", f"no route for {event.http_method} {event.path}"
        )

    app.exception_handler(EngineError)(engine_error)
    app.exception_handler(RequestValidationError)(request_validation_error)
    app.exception_handler(UnicodeDecodeError)(undecodable_body)
    app.exception_handler(RequestUnsupportedContentType)(unsupported_media_type)
    app.exception_handler(ServiceError)(service_error)
    app.exception_handler(Exception)(internal_error)
