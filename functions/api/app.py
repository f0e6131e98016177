"""The HTTP API Lambda (API Gateway HTTP API, payload format 2.0).

Routes live in :mod:`functions.api.routes`, one Powertools router per resource;
errors are mapped in :mod:`functions.api.errors`. ``GET /openapi.json`` serves
the OpenAPI document and ``GET /docs`` Swagger UI with its assets inlined (no
CDN). The Swagger route is registered on the first request for it: it pulls in
Powertools' OpenAPI models, which no other request needs, so cold starts skip them.

Responses are not recorded in traces: Swagger UI alone is 1.7 MB, X-Ray's
segment limit 64 KB, and run states can be large.

Configuration (environment), besides :mod:`functions.shared.wiring`'s:
``WAIT_BUDGET_SECONDS`` (default 25): how long ``wait`` runs execute in the
request; ``MAX_BODY_BYTES`` (default 1 MiB): larger bodies get a 413.
"""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.api import errors
from functions.api.body import loads_json
from functions.api.routes import callbacks, dashboard, graphs, legacy, runs, tools
from functions.shared.observability import logger, metrics, tracer

TITLE = "graphflow"
API_VERSION = "1.0.0"
DESCRIPTION = (
    "A graph workflow engine: register tools, describe workflows as JSON graphs, start runs and follow "
    "their logs. Errors are JSON `{code, message, details?}` with a stable `code`."
)
DOCS_PATH = "/docs"

app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=loads_json)
app.configure_openapi(title=TITLE, version=API_VERSION, description=DESCRIPTION)
errors.register(app)
app.include_router(graphs.router)
app.include_router(runs.router)
app.include_router(callbacks.router)
app.include_router(tools.router)
app.include_router(legacy.router)
app.include_router(dashboard.router)


@cache
def openapi_document() -> str:
    return app.get_openapi_json_schema()


@app.get("/openapi.json", include_in_schema=False)
def openapi_json() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_document())


@app.get("/", include_in_schema=False)
def index() -> Response[Any]:
    """The dashboard to a browser, the API's name and links as JSON to other clients."""
    if dashboard.wants_html(app.current_event.headers.get("accept")):
        return dashboard.page()
    body = {"name": TITLE, "version": API_VERSION, "docs": DOCS_PATH, "openapi": "/openapi.json"}
    body["dashboard"] = "/dashboard"
    return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, body)


@cache
def enable_docs() -> None:
    """Register Swagger UI at :data:`DOCS_PATH` (once per execution environment)."""
    app.enable_swagger(path=DOCS_PATH, compress=True)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if str(event.get("rawPath", "")).endswith(DOCS_PATH):
        enable_docs()
    refused = refuse_unreadable(event)
    if refused is not None:
        return refused
    json_despite_form_type(event)
    return app.resolve(event, context)


def refuse_unreadable(event: dict[str, Any]) -> dict[str, Any] | None:
    """The answer to a request that cannot be routed or read; ``None`` for any other.

    The path is routed percent-decoded, segment by segment (an encoded ``/`` stays
    encoded), so path parameters are checked and used as decoded: a path that is
    not UTF-8 is a 400. A body labelled as anything but JSON (or a form, see
    :func:`json_despite_form_type`), or in a charset other than UTF-8, is a 415.
    """
    raw_path = str(event.get("rawPath") or "/")
    if "%" in raw_path:
        segments = []
        for segment in raw_path.split("/"):
            try:
                decoded = unquote(segment, errors="strict")
            except UnicodeDecodeError:
                return errors.direct_error(
                    400, "bad_request", "the request path is not UTF-8 once percent-decoded"
                )
            segments.append(segment if "/" in decoded else decoded)
        event["rawPath"] = "/".join(segments)
    headers = event.get("headers") or {}
    media_type, *params = (p.strip().lower() for p in str(headers.get("content-type", "")).split(";"))
    charsets = [p.partition("=")[2].strip('"') for p in params if p.startswith("charset=")]
    readable = media_type in _READABLE_TYPES
    method = str((event.get("requestContext") or {}).get("http", {}).get("method", "")).upper()
    takes_body = method in ("POST", "PUT", "PATCH")
    if (
        takes_body
        and event.get("body")
        and (not readable or any(c not in ("utf-8", "utf8") for c in charsets))
    ):
        return errors.direct_error(415, "unsupported_media_type", "send the body as application/json (UTF-8)")
    return None


_READABLE_TYPES = frozenset({"", content_types.APPLICATION_JSON, "application/x-www-form-urlencoded"})


def json_despite_form_type(event: dict[str, Any]) -> None:
    """Read a JSON object body sent as ``application/x-www-form-urlencoded`` as JSON.

    ``curl -d '{...}'`` labels its body as a form; every body this API takes is a
    JSON object, so a body that starts with ``{`` is read as one rather than
    failing validation as form fields.
    """
    headers = event.get("headers") or {}
    content_type = str(headers.get("content-type", ""))
    body = event.get("body")
    if (
        content_type.startswith("application/x-www-form-urlencoded")
        and isinstance(body, str)
        and not event.get("isBase64Encoded")
        and body.lstrip().startswith("{")
    ):
        headers["content-type"] = content_types.APPLICATION_JSON
