"""A local API Gateway on one ``127.0.0.1`` port: the HTTP API, the WebSocket API and its management endpoint.

* Any path except the two below: the HTTP API. Each request becomes an HTTP
  API payload format 2.0 event (route ``$default``, stage ``$default``) for
  the HTTP handler; its result becomes the response, as API Gateway maps it.
* ``/ws``: the WebSocket API (and ``/ws/logs/{run_id}``, ``/ws/execution/{run_id}``,
  the earlier versions' URLs, each the same ``$connect`` as ``/ws?run_id={run_id}&after=-1``;
  a presigned one is signed for its own path). Opening, each message and closing become
  ``$connect``, route and ``$disconnect`` events for the WebSocket handler. A
  message's route comes from the API's route selection expression
  (``$request.body.action``): the value names a route if one exists, else the
  message goes to ``$default``. A ``$connect`` answer other than 200 refuses the
  connection with that status. Route responses are not sent back: the handler
  answers through the management API, as this project's does.
* ``/_local/clock`` (local only, when the stack gives a clock): ``POST`` with
  ``{"advance": seconds}`` moves the stack's clock on (the handlers' and the
  scheduler emulator's, :mod:`local.scheduler`), ``GET`` reads it; both answer
  ``{"now": ..., "offset": ...}``. Not authenticated, like the management API.
* ``/@connections/{id}`` (also under a ``/{stage}`` prefix): the management
  API that boto3's ``apigatewaymanagementapi`` client calls; ``POST`` sends the
  body as one frame, ``GET`` describes the connection, ``DELETE`` closes it. An
  unknown or closed connection answers 410 ``GoneException``, and so does ``GET``
  of one whose ``$connect`` is still running, as API Gateway's. Requests are not
  authenticated.

Authentication (``authenticator``, :mod:`local.auth`): each HTTP request and
each WebSocket handshake is checked before any handler runs; one that fails gets
API Gateway's 403 (or 401) and reaches no handler; one that passes carries its
caller in ``requestContext``, and so does every later event of that WebSocket
connection. CORS preflights (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) are answered by the gateway from the HTTP
API's ``CorsConfiguration`` in ``template.yaml``, without authentication, as the
HTTP API does; responses to requests with an ``Origin`` get
``Access-Control-Allow-Origin``. Without an authenticator nothing is checked and
no caller is filled in.

Routes the template opens with ``Auth: Authorizer: NONE`` (the dashboard's page and
files, :func:`public_routes`) are not authenticated and carry no caller, as on AWS.
Their responses never get ``Access-Control-Allow-Origin``. With ``page_config``, an
HTML page they answer to a request for a loopback host (``127.0.0.1``,
``localhost``, ``[::1]``) gets that configuration merged into its
``<script id="graphflow-config">`` (the local stack puts its developer key there, so
the dashboard needs no set-up: docs/dashboard.md says why only there).

Handlers are called as ``handler(event, context)`` in a thread pool: plain
Lambda handlers, or :class:`local.runtime.LocalFunction` objects that run them
in their own processes. Messages of one connection are handled one at a time,
in order. Frames posted to a connection whose ``$connect`` is still running are
held and sent once the handshake completes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from local.auth import Authenticator, Rejection
from local.lambda_context import LocalContext
from local.resources import load_template

CLOCK_PATH = "/_local/clock"

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
T = TypeVar("T")

HTTP_PAYLOAD_LIMIT = 10 * 1024 * 1024
WS_MESSAGE_LIMIT = 128 * 1024
POST_LIMIT = 128 * 1024
DEFAULT_WS_ROUTES = frozenset({"$connect", "$disconnect", "$default", "subscribe", "unsubscribe"})
DEFAULT_ROUTE_SELECTION = "$request.body.action"
SEED_WS_PATHS = ("logs", "execution")
"""``{ws_path}/logs/{run_id}`` and ``{ws_path}/execution/{run_id}``: the earlier versions' WebSocket URLs."""
ACCOUNT_ID = "123456789012"
_ID_ALPHABET = string.ascii_letters + string.digits
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")
_FORM = "application/x-www-form-urlencoded"
_SKIP_RESPONSE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


def new_id() -> str:
    """An id shaped like API Gateway's connection and request ids (``Kx1vWcB2IAMCJgw=``)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(15)) + "="


def websocket_routes(template: dict[str, Any] | None = None) -> tuple[frozenset[str], str]:
    """The WebSocket API's route keys and route selection expression, as ``template.yaml`` declares them.

    Falls back to the routes ``functions/ws/app.py`` serves when the template declares none.
    """
    resources = (template if template is not None else load_template()).get("Resources", {})
    routes: set[str] = set()
    selection = DEFAULT_ROUTE_SELECTION
    for spec in resources.values():
        props = spec.get("Properties") or {}
        if spec.get("Type") == "AWS::ApiGatewayV2::Route" and isinstance(props.get("RouteKey"), str):
            routes.add(props["RouteKey"])
        elif spec.get("Type") == "AWS::ApiGatewayV2::Api" and props.get("ProtocolType") == "WEBSOCKET":
            expression = props.get("RouteSelectionExpression")
            if isinstance(expression, str):
                selection = expression
    return (frozenset(routes) if routes else DEFAULT_WS_ROUTES), selection


def select_route(body: str | None, routes: Iterable[str], expression: str = DEFAULT_ROUTE_SELECTION) -> str:
    """The route key API Gateway picks for a message: the selected value if it is a route, else ``$default``."""
    prefix = "$request.body."
    if body is None or not expression.startswith(prefix):
        return "$default"
    try:
        value: Any = json.loads(body)
    except ValueError:
        return "$default"
    for part in expression[len(prefix) :].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str) and value in routes and not value.startswith("$"):
        return value
    return "$default"


def cors_configuration(template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The HTTP API's ``CorsConfiguration`` in the template (the first ``AWS::Serverless::HttpApi`` with one)."""
    resources = (template if template is not None else load_template()).get("Resources", {})
    for spec in resources.values():
        if spec.get("Type") == "AWS::Serverless::HttpApi":
            cors = (spec.get("Properties") or {}).get("CorsConfiguration")
            if isinstance(cors, dict):
                return cors
    return {}


def public_routes(template: dict[str, Any] | None = None) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The HTTP API routes the template opens with ``Auth: Authorizer: NONE``: ``(method, path pattern)``.

    A ``{name}`` path part matches one segment, ``{name+}`` the rest of the path.
    """
    resources = (template if template is not None else load_template()).get("Resources", {})
    routes: dict[tuple[str, str], re.Pattern[str]] = {}
    for spec in resources.values():
        if spec.get("Type") != "AWS::Serverless::Function":
            continue
        for event in ((spec.get("Properties") or {}).get("Events") or {}).values():
            props = event.get("Properties") or {}
            auth = props.get("Auth") or {}
            if event.get("Type") != "HttpApi" or auth.get("Authorizer") != "NONE":
                continue
            method, path = str(props.get("Method", "ANY")).upper(), str(props.get("Path", "/"))
            pattern = re.sub(
                r"\\\{[^/{}]+\\\}",
                lambda m: ".+" if m.group(0).endswith("+\\}") else "[^/]+",
                re.escape(path),
            )
            routes[(method, path)] = re.compile(f"^{pattern}$")
    return tuple((method, pattern) for (method, _), pattern in routes.items())


_CONFIG_SCRIPT = re.compile(r'(<script type="application/json" id="graphflow-config">)(.*?)(</script>)', re.S)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def is_loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (not a name an attacker's DNS could point here)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.lower() in _LOOPBACK_HOSTS


def merge_page_config(html: str, extra: dict[str, Any]) -> str:
    """``html`` with ``extra`` merged into its config script's JSON (``<`` escaped)."""

    def merged(match: re.Match[str]) -> str:
        try:
            config = json.loads(match.group(2) or "{}")
        except ValueError:
            config = {}
        text = json.dumps({**config, **extra}, separators=(",", ":")).replace("<", "\\u003c")
        return match.group(1) + text + match.group(3)

    return _CONFIG_SCRIPT.sub(merged, html, count=1)


def _request_time(now: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_text(content_type: str) -> bool:
    content_type = content_type.split(";", 1)[0].strip().lower()
    return content_type == _FORM or any(
        content_type.startswith(t) or content_type.endswith(t) for t in _TEXT_TYPES
    )


def _encode_body(data: bytes, content_type: str) -> tuple[str, bool]:
    if not content_type or _is_text(content_type):
        try:
            return data.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii"), True


def http_event(
    request: web.BaseRequest,
    body: bytes,
    *,
    request_id: str | None = None,
    now: float | None = None,
    api_id: str = "local",
) -> dict[str, Any]:
    """The HTTP API payload format 2.0 event for a request (route ``$default``, stage ``$default``)."""
    now = time.time() if now is None else now
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        lower = key.lower()
        headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    host = headers.get("host", "")
    if request.remote:
        headers.setdefault("x-forwarded-for", request.remote)
    headers.setdefault("x-forwarded-proto", request.scheme)
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if sockname:
        headers.setdefault("x-forwarded-port", str(sockname[1]))
    raw_path = request.rel_url.raw_path
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": request.rel_url.raw_query_string,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api_id,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": raw_path,
                "protocol": f"HTTP/{request.version.major}.{request.version.minor}",
                "sourceIp": request.remote or "",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id or new_id(),
            "routeKey": "$default",
            "stage": "$default",
            "time": _request_time(now),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if request.query:
        event["queryStringParameters"] = {key: ",".join(request.query.getall(key)) for key in request.query}
    if body:
        event["body"], event["isBase64Encoded"] = _encode_body(body, headers.get("content-type", ""))
    return event


def http_response(result: Any) -> web.Response:
    """The response API Gateway makes of a payload format 2.0 handler result."""
    if not (isinstance(result, dict) and "statusCode" in result):
        text = result if isinstance(result, str) else json.dumps(result)
        return web.Response(status=200, body=text.encode(), headers={"Content-Type": "application/json"})
    body = result.get("body")
    if body is None:
        data = b""
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(body)
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    response = web.Response(status=int(result["statusCode"]), body=data)
    for key, values in (result.get("multiValueHeaders") or {}).items():
        if key.lower() not in _SKIP_RESPONSE_HEADERS:
            for value in values:
                response.headers.add(key, str(value))
    for key, value in (result.get("headers") or {}).items():
        if key.lower() not in _SKIP_RESPONSE_HEADERS:
            response.headers[key] = str(value)
    for cookie in result.get("cookies") or []:
        response.headers.add("Set-Cookie", cookie)
    return response


def _gone(connection_id: str) -> web.Response:
    return _error(410, "GoneException", f"connection {connection_id} is gone")


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status, headers={"x-amzn-ErrorType": error_type})


@dataclass(eq=False)
class Connection:
    """A WebSocket client as API Gateway tracks it."""

    connection_id: str
    source_ip: str
    user_agent: str
    connected_at: float = field(default_factory=time.time)
    last_active_at: float = field(default_factory=time.time)
    state: str = "connecting"
    ws: web.WebSocketResponse | None = None
    pending: list[bytes] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    request_time_ms: int = 0
    auth_context: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "connectedAt": _iso(self.connected_at),
            "identity": {"sourceIp": self.source_ip, "userAgent": self.user_agent},
            "lastActiveAt": _iso(self.last_active_at),
        }

    async def send(self, data: bytes) -> None:
        assert self.ws is not None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(text)


class Gateway:
    """The local API Gateway (see the module docstring).

    Args:
        http_handler: the HTTP API's handler (``$default`` route); ``None`` answers 404.
        ws_handler: the WebSocket API's handler for every route; ``None`` refuses WebSocket clients.
        host: the address to bind; keep it on loopback.
        port: 0 picks a free port (see :attr:`port` once started).
        ws_path: where WebSocket clients connect.
        ws_stage: the WebSocket API's stage name in events (``requestContext.stage``).
        routes: the WebSocket route keys; default: :func:`websocket_routes` from the template.
        max_workers: threads that wait on handler invocations.
        page_config: merged into the dashboard page's configuration on loopback hosts (see the module docstring).
        public: the ``(method, path pattern)`` routes served without authentication; default: :func:`public_routes`.
    """

    def __init__(
        self,
        http_handler: Handler | None,
        ws_handler: Handler | None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_path: str = "/ws",
        ws_stage: str = "local",
        routes: Iterable[str] | None = None,
        route_selection: str | None = None,
        max_workers: int = 32,
        api_id: str = "local",
        authenticator: Authenticator | None = None,
        cors: dict[str, Any] | None = None,
        page_config: dict[str, Any] | None = None,
        public: Iterable[tuple[str, re.Pattern[str]]] | None = None,
        clock_handler: Callable[[float], dict[str, float]] | None = None,
    ) -> None:
        self.http_handler = http_handler
        self.clock_handler = clock_handler
        self.ws_handler = ws_handler
        self.host = host
        self.requested_port = port
        self.ws_path = ws_path
        self.ws_stage = ws_stage
        template_routes, template_selection = websocket_routes()
        self.routes = frozenset(routes) if routes is not None else template_routes
        self.route_selection = route_selection or template_selection
        self.api_id = api_id
        self.authenticator = authenticator
        self.cors = cors if cors is not None else cors_configuration()
        self.page_config = page_config
        self.public = tuple(public) if public is not None else public_routes()
        self.connections: dict[str, Connection] = {}
        self.port: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="gateway")
        self._runner: web.AppRunner | None = None
        self._ws_tasks: set[asyncio.Task[Any]] = set()
        self.app = self._make_app()

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the gateway is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.ws_path}"

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=HTTP_PAYLOAD_LIMIT)
        for prefix in ("", "/{stage}"):
            path = prefix + "/@connections/{connection_id}"
            app.router.add_post(path, self._post_to_connection)
            app.router.add_get(path, self._get_connection, allow_head=False)
            app.router.add_delete(path, self._delete_connection)
        if self.clock_handler is not None:
            app.router.add_post(CLOCK_PATH, self._move_clock)
            app.router.add_get(CLOCK_PATH, self._move_clock, allow_head=False)
        app.router.add_get(self.ws_path, self._websocket_or_http, allow_head=False)
        for seed in SEED_WS_PATHS:
            app.router.add_get(f"{self.ws_path}/{seed}/{{run_id}}", self._websocket_or_http, allow_head=False)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._http)  # also paths with a %0A
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Close every WebSocket client (each gets its ``$disconnect``), then stop serving."""
        for connection in list(self.connections.values()):
            if connection.ws is not None and not connection.ws.closed:
                await connection.ws.close(code=1001, message=b"Going away")
        if self._ws_tasks:
            await asyncio.wait(self._ws_tasks, timeout=10.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _invoke(self, handler: Handler, event: dict[str, Any], request_id: str, name: str) -> Any:
        context = LocalContext(function_name=name, aws_request_id=request_id)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, handler, event, context)

    # HTTP API

    def _preflight(self, request: web.Request) -> web.Response:
        cors = self.cors
        headers = {
            "Access-Control-Allow-Origin": ",".join(cors.get("AllowOrigins") or ["*"]),
            "Access-Control-Allow-Methods": ",".join(cors.get("AllowMethods") or ["*"]),
            "Access-Control-Allow-Headers": ",".join(cors.get("AllowHeaders") or []),
        }
        if cors.get("MaxAge") is not None:
            headers["Access-Control-Max-Age"] = str(cors["MaxAge"])
        return web.Response(status=204, headers=headers)

    def _url(self, request: web.Request) -> str:
        host = request.headers.get("Host", f"{self.host}:{self.port}")
        return f"http://{host}{request.rel_url.raw_path_qs}"

    async def _move_clock(self, request: web.Request) -> web.StreamResponse:
        """``POST /_local/clock {"advance": seconds}`` moves the stack's clock on; ``GET`` reads it."""
        assert self.clock_handler is not None
        advance = 0.0
        if request.method == "POST":
            try:
                body = await request.json()
                advance = float(body.get("advance", 0)) if isinstance(body, dict) else float("nan")
            except (ValueError, TypeError):
                advance = float("nan")
            if not (0 <= advance < float("inf")):
                return web.json_response(
                    {"message": 'send {"advance": seconds}, a number of seconds of at least 0'}, status=400
                )
        answer = await asyncio.get_running_loop().run_in_executor(self._executor, self.clock_handler, advance)
        return web.json_response(answer)

    async def _http(self, request: web.Request) -> web.StreamResponse:
        if (
            self.cors
            and request.method == "OPTIONS"
            and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers
        ):
            return self._preflight(request)
        if self.http_handler is None:
            return web.json_response({"message": "Not Found"}, status=404)
        body = await request.read()
        event = http_event(request, body, api_id=self.api_id)
        public = self._is_public(request.method, request.rel_url.path)
        if self.authenticator is not None and not public:
            caller = self.authenticator.http(request.method, self._url(request), request.headers, body)
            if isinstance(caller, Rejection):
                return web.json_response({"message": caller.message}, status=caller.status)
            event["requestContext"].update(caller.http_context)
        request_id = event["requestContext"]["requestId"]
        try:
            result = await self._invoke(self.http_handler, event, request_id, "api")
        except Exception:
            log.exception("HTTP handler failed on %s %s", request.method, request.rel_url)
            return web.json_response({"message": "Internal Server Error"}, status=500)
        try:
            response = http_response(result)
        except (TypeError, ValueError, KeyError):
            log.exception("HTTP handler returned a malformed response: %r", result)
            return web.json_response({"message": "Internal Server Error"}, status=500)
        response.headers["apigw-requestid"] = request_id
        if public:
            return self._page(request, response)
        if self.cors and "Origin" in request.headers:
            response.headers["Access-Control-Allow-Origin"] = ",".join(self.cors.get("AllowOrigins") or ["*"])
        return response

    def _is_public(self, method: str, path: str) -> bool:
        return any(m in (method.upper(), "ANY") and pattern.match(path) for m, pattern in self.public)

    def _page(self, request: web.Request, response: web.Response) -> web.Response:
        """A public route's response: no CORS header; an HTML page gets ``page_config`` on a loopback host."""
        host = request.headers.get("Host", "")
        html = response.content_type == "text/html" and response.status == 200
        if self.page_config is None or not html or not is_loopback_host(host) or response.body is None:
            return response
        assert isinstance(response.body, bytes)
        extra = {**self.page_config, "ws_url": f"ws://{host}{self.ws_path}"}
        response.body = merge_page_config(response.body.decode("utf-8"), extra).encode("utf-8")
        response.headers["Cache-Control"] = "no-store"
        return response

    # WebSocket API

    def _ws_event(
        self, connection: Connection, route: str, event_type: str, request_id: str, **extra: Any
    ) -> dict[str, Any]:
        now = time.time()
        context: dict[str, Any] = {
            "routeKey": route,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": _request_time(now),
            "messageDirection": "IN",
            "stage": self.ws_stage,
            "connectedAt": int(connection.connected_at * 1000),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            "requestId": request_id,
            "domainName": f"{self.host}:{self.port}",
            "connectionId": connection.connection_id,
            "apiId": self.api_id,
        }
        for key, value in connection.auth_context.items():
            context[key] = {**value, **context[key]} if key == "identity" else value
        context.update(extra.pop("context", {}))
        return {"requestContext": context, "isBase64Encoded": False, **extra}

    async def _websocket_or_http(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return await self._http(request)
        if self.ws_handler is None:
            return web.json_response({"message": "Forbidden"}, status=403)
        task = asyncio.current_task()
        assert task is not None
        self._ws_tasks.add(task)
        try:
            return await self._websocket(request, self.ws_handler)
        finally:
            self._ws_tasks.discard(task)

    async def _websocket(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = Connection(new_id(), request.remote or "", request.headers.get("User-Agent", ""))
        if self.authenticator is not None:
            caller = self.authenticator.websocket(self._url(request), request.headers)
            if isinstance(caller, Rejection):
                return web.json_response({"message": caller.message}, status=caller.status)
            connection.auth_context = caller.ws_context
        self.connections[connection.connection_id] = connection
        headers = dict(request.headers)
        connect: dict[str, Any] = {
            "headers": headers,
            "multiValueHeaders": {k: request.headers.getall(k) for k in headers},
        }
        if request.query:
            connect["queryStringParameters"] = {k: request.query.getall(k)[-1] for k in request.query}
            connect["multiValueQueryStringParameters"] = {k: request.query.getall(k) for k in request.query}
        run_id = request.match_info.get("run_id")
        if run_id is not None:  # a seed URL: the same $connect as ?run_id={run_id}&after=-1
            query = {**connect.get("queryStringParameters", {}), "run_id": run_id}
            query.setdefault("after", "-1")
            connect["queryStringParameters"] = query
            connect["multiValueQueryStringParameters"] = {
                **connect.get("multiValueQueryStringParameters", {}),
                **{k: [v] for k, v in query.items() if k in ("run_id", "after")},
            }
        request_id = new_id()
        event = self._ws_event(connection, "$connect", "CONNECT", request_id, **connect)
        try:
            result = await self._invoke(handler, event, request_id, "ws")
        except Exception:
            log.exception("$connect failed")
            self.connections.pop(connection.connection_id, None)
            return web.json_response({"message": "Internal server error"}, status=500)
        status = int(result.get("statusCode", 200)) if isinstance(result, dict) else 200
        if status != 200:
            self.connections.pop(connection.connection_id, None)
            body = result.get("body") if isinstance(result, dict) else None
            return web.Response(status=status, text=body if isinstance(body, str) else None)
        response_headers = (result.get("headers") or {}) if isinstance(result, dict) else {}
        protocol = {k.lower(): v for k, v in response_headers.items()}.get("sec-websocket-protocol")
        if connection.state == "closed":
            self.connections.pop(connection.connection_id, None)
            return _error(410, "GoneException", "the connection was deleted during $connect")
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), max_msg_size=WS_MESSAGE_LIMIT)
        try:
            await ws.prepare(request)
        except Exception:
            self.connections.pop(connection.connection_id, None)
            raise
        try:
            async with connection.lock:
                connection.ws = ws
                for data in connection.pending:
                    await connection.send(data)
                connection.pending.clear()
                connection.state = "open"
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    connection.last_active_at = time.time()
                    await self._on_message(connection, handler, message.data)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            connection.state = "closed"
            self.connections.pop(connection.connection_id, None)
            await self._disconnect(connection, handler, ws.close_code)
        return ws

    async def _on_message(self, connection: Connection, handler: Handler, data: str | bytes) -> None:
        request_id = new_id()
        if isinstance(data, bytes):
            body, is_base64 = base64.b64encode(data).decode("ascii"), True
            route = "$default"
        else:
            body, is_base64 = data, False
            route = select_route(data, self.routes, self.route_selection)
        if route not in self.routes:
            await self._reply(connection, {"message": "Forbidden", "connectionId": connection.connection_id})
            return
        event = self._ws_event(
            connection,
            route,
            "MESSAGE",
            request_id,
            context={"messageId": new_id()},
            body=body,
        )
        event["isBase64Encoded"] = is_base64
        try:
            await self._invoke(handler, event, request_id, "ws")
        except Exception:
            log.exception("WebSocket route %s failed", route)
            await self._reply(
                connection,
                {
                    "message": "Internal server error",
                    "connectionId": connection.connection_id,
                    "requestId": request_id,
                },
            )

    async def _reply(self, connection: Connection, payload: dict[str, Any]) -> None:
        async with connection.lock:
            if connection.state == "open":
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await connection.send(json.dumps(payload).encode())

    async def _disconnect(self, connection: Connection, handler: Handler, code: int | None) -> None:
        request_id = new_id()
        event = self._ws_event(
            connection,
            "$disconnect",
            "DISCONNECT",
            request_id,
            context={"disconnectStatusCode": code if code is not None else 1006, "disconnectReason": ""},
            headers={"Host": f"{self.host}:{self.port}"},
        )
        try:
            await self._invoke(handler, event, request_id, "ws")
        except Exception:
            log.exception("$disconnect failed for %s", connection.connection_id)

    # management API

    def _connection(self, request: web.Request) -> Connection | None:
        connection = self.connections.get(request.match_info["connection_id"])
        if connection is None or connection.state == "closed":
            return None
        return connection

    async def _post_to_connection(self, request: web.Request) -> web.Response:
        connection_id = request.match_info["connection_id"]
        data = await request.read()
        if len(data) > POST_LIMIT:
            return _error(413, "PayloadTooLargeException", f"payload over {POST_LIMIT} bytes")
        connection = self._connection(request)
        if connection is None:
            return _gone(connection_id)
        async with connection.lock:
            if connection.state == "connecting":
                connection.pending.append(data)
                return web.Response(status=200)
            if connection.state != "open" or connection.ws is None or connection.ws.closed:
                return _gone(connection_id)
            try:
                await connection.send(data)
            except (ConnectionError, RuntimeError):
                return _gone(connection_id)
        return web.Response(status=200)

    async def _get_connection(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is None or connection.state == "connecting":
            return _gone(request.match_info["connection_id"])
        return web.json_response(connection.describe())

    async def _delete_connection(self, request: web.Request) -> web.Response:
        connection = self._connection(request)
        if connection is None:
            return _gone(request.match_info["connection_id"])
        if connection.ws is not None:
            await connection.ws.close(code=1000, message=b"")
        else:
            connection.state = "closed"
        return web.Response(status=204)


class EventLoopThread:
    """An asyncio loop in a daemon thread, for running the gateway next to blocking code."""

    def __init__(self, name: str = "local-stack-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()
