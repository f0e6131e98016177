"""A client for the graphflow API: every HTTP route, and a WebSocket follower for a run's log.

The same client works against the local stack and a deployed one;
:func:`resolve_endpoints` finds the URLs (arguments, environment, a live local
stack, then the CloudFormation stack's outputs).

Following a log (:meth:`WorkflowClient.follow`) yields each record once, in
``seq`` order, with no gap, until the run's terminal record (the last one: a
redriven run's log goes on after a ``run_redriven`` record):

* a :class:`ReorderBuffer` holds records that arrive ahead of a missing one (a
  live frame can overtake the backlog) and drops ``seq`` values already yielded;
* a gap that stays open longer than ``gap_wait`` seconds, or a connection quiet
  for ``idle_poll`` seconds, is filled from ``GET /runs/{id}/logs`` (a record
  whose broadcast was lost is read from the store);
* a dropped connection is reopened with exponential backoff and resubscribed
  with ``after`` = the last ``seq`` yielded;
* without a WebSocket URL the log is polled over HTTP.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
from websockets.exceptions import WebSocketException

from engine.model import LogRecord
from local.signing import ClientAuth
from local.state_file import pid_alive

TERMINAL_TYPES = frozenset({"run_succeeded", "run_failed", "run_cancelled", "run_timed_out"})
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})
DEFAULT_STACK_NAME = "graphflow"
STACK_FILE = Path(".local-stack") / "stack.json"
LOG_PAGE = 1000

Clock = Callable[[], float]


class ClientError(Exception):
    """Anything the client could not do; the CLI prints it and exits non-zero."""

    code = "client_error"


class ApiError(ClientError):
    """An error answer of the API: its HTTP status, stable ``code``, ``message`` and optional ``details``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class UnreachableError(ClientError):
    """The API did not answer (connection refused, DNS, timeout)."""

    code = "unreachable"


class FollowError(ClientError):
    """The WebSocket could not be (re)opened after repeated tries."""

    code = "websocket_unavailable"


class EndpointError(ClientError):
    """No API endpoint could be found."""

    code = "no_endpoint"


def is_terminal(record: LogRecord) -> bool:
    return record.type.value in TERMINAL_TYPES


@dataclass(frozen=True)
class LogPage:
    """One page of ``GET /runs/{id}/logs``: records with ``seq > after``, and where the next page starts."""

    run_id: str
    records: list[LogRecord]
    next_after: int


class ReorderBuffer:
    """Releases log records in ``seq`` order, each once, holding those that arrive ahead of a gap.

    Args:
        after: the last ``seq`` already seen; the next record released is ``after + 1``.
    """

    def __init__(self, after: int = -1) -> None:
        self.last = after
        self._pending: dict[int, LogRecord] = {}
        self._gap_since: float | None = None

    def add(self, records: Iterable[LogRecord], now: float) -> list[LogRecord]:
        """Take records in any order; return those now releasable, in order. Duplicates are dropped."""
        for record in records:
            if record.seq > self.last:
                self._pending.setdefault(record.seq, record)
        ready: list[LogRecord] = []
        while self.last + 1 in self._pending:
            self.last += 1
            ready.append(self._pending.pop(self.last))
        if not self._pending:
            self._gap_since = None
        elif self._gap_since is None or ready:
            self._gap_since = now
        return ready

    @property
    def pending(self) -> int:
        """How many records wait for a missing one."""
        return len(self._pending)

    @property
    def missing(self) -> tuple[int, int] | None:
        """The gap as ``(after, first_held)``: records ``after + 1 .. first_held - 1`` are missing."""
        if not self._pending:
            return None
        return self.last, min(self._pending)

    def gap_deadline(self, wait: float) -> float | None:
        """When the current gap should be filled some other way; ``None`` without a gap."""
        return None if self._gap_since is None else self._gap_since + wait


class WsConnection(Protocol):
    """The part of a synchronous WebSocket connection the follower uses."""

    def send(self, message: str) -> None: ...

    def recv(self, timeout: float | None = None) -> str | bytes: ...

    def close(self) -> None: ...


Connector = Callable[[str], WsConnection]


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def websocket_connect(url: str) -> WsConnection:
    """Open a WebSocket with the ``websockets`` sync client (no proxy for loopback URLs)."""
    from websockets.sync.client import connect

    opened = connect(url, open_timeout=10, close_timeout=2, proxy=None if _is_loopback(url) else True)
    # Entering gives the open connection with every websockets version: older ones return it from
    # connect(), newer ones a context manager that opens it (17 warns about a bare connection).
    conn: WsConnection = opened.__enter__()
    return conn


_CONNECT_ERRORS = (OSError, TimeoutError, WebSocketException)


class WorkflowClient:
    """The graphflow HTTP API, plus log following over its WebSocket API.

    Args:
        http_url: base URL of the HTTP API (a stage path such as ``/prod`` is kept).
        ws_url: the WebSocket API URL; without it :meth:`follow` polls over HTTP.
        timeout: seconds per HTTP request.
        transport: an ``httpx`` transport (tests pass ``httpx.MockTransport``).
        connect: opens a WebSocket connection (tests pass a fake).
        auth: signs requests and the WebSocket URL (:mod:`local.signing`); ``None`` sends them unsigned.
    """

    def __init__(
        self,
        http_url: str,
        ws_url: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        connect: Connector = websocket_connect,
        auth: ClientAuth | None = None,
    ) -> None:
        self.http_url = http_url.rstrip("/")
        self.ws_url = ws_url or None
        self.connect = connect
        self.auth = auth
        self._http = httpx.Client(
            auth=auth.http_auth() if auth is not None else None,
            base_url=self.http_url,
            timeout=timeout,
            transport=transport,
            trust_env=not _is_loopback(self.http_url),
            headers={"accept": "application/json"},
        )

    def websocket_url(self, url: str | None = None) -> str:
        """A WebSocket URL to open now (default :attr:`ws_url`): presigned (SigV4) or with ``?token=`` (JWT) by :attr:`auth`."""
        url = url or self.ws_url
        assert url is not None
        return self.auth.websocket_url(url) if self.auth is not None else url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WorkflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """Send one request; return its decoded JSON (or text), raise :class:`ApiError` on an error answer."""
        try:
            response = self._http.request(
                method,
                path,
                json=json_body,
                params={k: v for k, v in (params or {}).items() if v is not None},
            )
        except httpx.TransportError as exc:
            raise UnreachableError(f"cannot reach {self.http_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _api_error(response)
        if not response.content:
            return None
        if "json" in response.headers.get("content-type", "json"):
            return response.json()
        return response.text

    def run_url(self, run_id: str) -> str:
        return f"{self.http_url}/runs/{quote(run_id, safe='')}"

    def create_graph(self, definition: Mapping[str, Any], graph_id: str | None = None) -> dict[str, Any]:
        """``POST /graphs``: validate and store a graph as version 1 (``graph_id`` chooses its id)."""
        result: dict[str, Any] = self.request(
            "POST", "/graphs", json_body=definition, params={"graph_id": graph_id}
        )
        return result

    def add_graph_version(self, graph_id: str, definition: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /graphs/{id}``: store the definition as the graph's next version."""
        result: dict[str, Any] = self.request(
            "PUT", f"/graphs/{quote(graph_id, safe='')}", json_body=definition
        )
        return result

    def list_graphs(self) -> list[dict[str, Any]]:
        graphs: list[dict[str, Any]] = self.request("GET", "/graphs")["graphs"]
        return graphs

    def get_graph(self, graph_id: str, version: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", f"/graphs/{quote(graph_id, safe='')}", params={"version": version}
        )
        return result

    def diagram(self, graph_id: str) -> dict[str, Any]:
        """``GET /graphs/{id}/diagram``: ``{graph_id, version, mermaid}``."""
        result = self.request("GET", f"/graphs/{quote(graph_id, safe='')}/diagram")
        if isinstance(result, str):
            return {"graph_id": graph_id, "mermaid": result}
        return dict(result)

    def start_run(
        self,
        graph_id: str,
        initial_state: Mapping[str, Any] | None = None,
        *,
        wait: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /runs``; with ``wait`` the answer may be the finished run (else it is still going)."""
        body: dict[str, Any] = {"graph_id": graph_id, "initial_state": dict(initial_state or {})}
        if wait:
            body["wait"] = True
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        result: dict[str, Any] = self.request("POST", "/runs", json_body=body)
        return result

    def get_run(self, run_id: str, *, include_state: bool = True) -> dict[str, Any]:
        params = None if include_state else {"include_state": "false"}
        result: dict[str, Any] = self.request("GET", f"/runs/{quote(run_id, safe='')}", params=params)
        return result

    def get_state_value(self, run_id: str, key: str) -> Any:
        """One top-level value of the run's state (``GET /runs/{id}/state/{key}``)."""
        return self.request("GET", f"/runs/{quote(run_id, safe='')}/state/{quote(key, safe='')}")

    def logs(self, run_id: str, after: int = -1, limit: int | None = None) -> LogPage:
        """One page of the run's log: records with ``seq > after``."""
        body = self.request(
            "GET", f"/runs/{quote(run_id, safe='')}/logs", params={"after": after, "limit": limit}
        )
        records = [LogRecord.model_validate(r) for r in body.get("records", [])]
        next_after = body.get("next_after")
        if next_after is None:
            next_after = records[-1].seq if records else after
        return LogPage(run_id, records, int(next_after))

    def all_logs(self, run_id: str, after: int = -1) -> Iterator[LogRecord]:
        """Every stored record with ``seq > after``, page by page."""
        while True:
            page = self.logs(run_id, after, LOG_PAGE)
            fresh = [r for r in page.records if r.seq > after]
            yield from fresh
            if not fresh:
                return
            after = fresh[-1].seq

    def cancel_run(self, run_id: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else None
        result: dict[str, Any] = self.request(
            "POST", f"/runs/{quote(run_id, safe='')}/cancel", json_body=body
        )
        return result

    def redrive_run(self, run_id: str) -> dict[str, Any]:
        """``POST /runs/{id}/redrive``: a FAILED or TIMED_OUT run goes on from the node that failed."""
        result: dict[str, Any] = self.request("POST", f"/runs/{quote(run_id, safe='')}/redrive")
        return result

    def approve_callback(
        self, token: str, *, data: Mapping[str, Any] | None = None, decision: Any = None
    ) -> dict[str, Any]:
        """``POST /callbacks/{token}``: resume the run waiting for it, ``data`` merged into its state."""
        body: dict[str, Any] = {}
        if data is not None:
            body["data"] = dict(data)
        if decision is not None:
            body["decision"] = decision
        result: dict[str, Any] = self.request(
            "POST", f"/callbacks/{quote(token, safe='')}", json_body=body or None
        )
        return result

    def reject_callback(self, token: str, reason: str) -> dict[str, Any]:
        """``POST /callbacks/{token}/fail``: the callback node fails with ``reason``."""
        result: dict[str, Any] = self.request(
            "POST", f"/callbacks/{quote(token, safe='')}/fail", json_body={"reason": reason}
        )
        return result

    def list_tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = self.request("GET", "/tools")["tools"]
        return tools

    def run_data_quality_demo(
        self,
        *,
        records: int | None = None,
        seed: int | None = None,
        target_score: float | None = None,
        max_iterations: int | None = None,
    ) -> dict[str, Any]:
        """``POST /demo/run_data_quality``: ``{run_id, graph_id}``."""
        body = {
            k: v
            for k, v in {
                "records": records,
                "seed": seed,
                "target_score": target_score,
                "max_iterations": max_iterations,
            }.items()
            if v is not None
        }
        result: dict[str, Any] = self.request("POST", "/demo/run_data_quality", json_body=body)
        return result

    def follow(self, run_id: str, after: int = -1, **options: Any) -> LogFollower:
        """Iterate over the run's log records with ``seq > after`` until its terminal record.

        ``options`` are those of :class:`LogFollower`.
        """
        return LogFollower(self, run_id, after, **options)

    def wait(self, run_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run ends (following its log); return the run."""
        for _ in self.follow(run_id, timeout=timeout):
            pass
        return self.get_run(run_id)


def _api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return ApiError(response.status_code, body["code"], str(body.get("message", "")), body.get("details"))
    if isinstance(body, dict) and "message" in body:
        return ApiError(response.status_code, f"http_{response.status_code}", str(body["message"]))
    text = response.text.strip()[:500] or response.reason_phrase
    return ApiError(response.status_code, f"http_{response.status_code}", text)


@dataclass
class LogFollower:
    """An iterator over one run's log records: each once, in ``seq`` order, until the terminal record.

    Args:
        client: where to read the log.
        run_id: the run to follow.
        after: yield records with ``seq > after``.
        gap_wait: seconds a gap may stay open before it is read over HTTP.
        idle_poll: seconds without a frame after which the log is read over HTTP (a lost broadcast).
        poll_interval: seconds between HTTP reads when there is no WebSocket URL.
        backoff: first reconnection delay in seconds; doubles per failure up to ``max_backoff``.
        max_failures: consecutive failed connections before :class:`FollowError`.
        timeout: overall seconds before ``TimeoutError``; ``None`` waits as long as the run goes on.
        notify: called with a short message when the connection drops or a gap is read over HTTP.
    """

    client: WorkflowClient
    run_id: str
    after: int = -1
    gap_wait: float = 0.5
    idle_poll: float = 5.0
    poll_interval: float = 0.5
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_failures: int = 8
    timeout: float | None = None
    clock: Clock = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    notify: Callable[[str], None] | None = None
    connections: int = field(default=0, init=False)
    http_reads: int = field(default=0, init=False)
    last_seq: int = field(default=-1, init=False)

    def __post_init__(self) -> None:
        self.last_seq = self.after
        self._buffer = ReorderBuffer(self.after)
        self._failures = 0
        self._over = False
        self._deadline = None if self.timeout is None else self.clock() + self.timeout
        self._ended: dict[int, bool] = {}

    def __iter__(self) -> Iterator[LogRecord]:
        source = self._stream() if self.client.ws_url else self._poll()
        for record in source:
            self.last_seq = record.seq
            yield record
            if self._ends(record):
                return

    def _ends(self, record: LogRecord) -> bool:
        """Whether ``record`` ends the run's log: a terminal record no ``run_redriven`` follows.

        A redriven run's log goes on after its terminal record, so one is
        checked once: by the page of the log it was read in (:meth:`_read_http`),
        else by one read of the log after it (if that read fails, it ends the log).
        """
        if not is_terminal(record):
            return False
        if record.seq not in self._ended:
            try:
                later = self.client.logs(self.run_id, record.seq, 1).records
            except UnreachableError:
                later = []
            self._ended[record.seq] = not later or later[0].type.value != "run_redriven"
        return self._ended[record.seq]

    def _check_deadline(self) -> None:
        if self._deadline is not None and self.clock() >= self._deadline:
            raise TimeoutError(f"run {self.run_id} did not end within {self.timeout:g}s")

    def _poll(self) -> Iterator[LogRecord]:
        while True:
            self._check_deadline()
            ready = self._read_http()
            yield from ready
            if not ready:
                self.sleep(self.poll_interval)

    def _read_http(self) -> list[LogRecord]:
        """Every stored record after the last released one, through the buffer."""
        ready: list[LogRecord] = []
        while True:
            self.http_reads += 1
            page = self.client.logs(self.run_id, self._buffer.last, LOG_PAGE)
            released = self._buffer.add(page.records, self.clock())
            for at, found in enumerate(released):
                if is_terminal(found) and found.seq not in self._ended:
                    if at + 1 < len(released):
                        self._ended[found.seq] = released[at + 1].type.value != "run_redriven"
                    elif len(page.records) < LOG_PAGE:
                        self._ended[found.seq] = True
            ready.extend(released)
            if not released or any(self._ends(r) for r in released):
                return ready

    def _stream(self) -> Iterator[LogRecord]:
        assert self.client.ws_url is not None
        while True:
            self._check_deadline()
            try:
                conn = self.client.connect(self.client.websocket_url())
            except _CONNECT_ERRORS as exc:
                self._failed(exc)
                continue
            self.connections += 1
            try:
                conn.send(
                    json.dumps({"action": "subscribe", "run_id": self.run_id, "after": self._buffer.last})
                )
                done = yield from self._session(conn)
            except _CONNECT_ERRORS as exc:
                self._failed(exc)
                continue
            finally:
                conn.close()
            if done:
                return

    def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        if self._failures > self.max_failures:
            raise FollowError(
                f"WebSocket {self.client.ws_url} failed {self._failures} times in a row: {exc!r}"
            ) from exc
        delay = min(self.max_backoff, self.backoff * 2 ** (self._failures - 1)) * random.uniform(0.5, 1.0)
        self._notify(f"WebSocket lost ({exc!r}); resuming after seq {self._buffer.last} in {delay:.1f}s")
        self.sleep(delay)

    def _notify(self, message: str) -> None:
        if self.notify is not None:
            self.notify(message)

    def _session(self, conn: WsConnection) -> Generator[LogRecord, None, bool]:
        """Read frames until the terminal record (returns ``True``); connection errors propagate."""
        quiet_since = self.clock()
        while True:
            self._check_deadline()
            now = self.clock()
            gap_at = self._buffer.gap_deadline(self.gap_wait)
            if (gap_at is not None and now >= gap_at) or now - quiet_since >= self.idle_poll:
                if gap_at is not None and now >= gap_at:
                    self._notify(f"gap after seq {self._buffer.last}: reading it over HTTP")
                ready = self._catch_up()
                quiet_since = self.clock()
                yield from ready
                if any(self._ends(r) for r in ready):
                    return True
                continue
            wake = quiet_since + self.idle_poll
            if gap_at is not None:
                wake = min(wake, gap_at)
            if self._deadline is not None:
                wake = min(wake, self._deadline)
            try:
                raw = conn.recv(timeout=max(wake - now, 0.01))
            except TimeoutError:
                continue
            quiet_since = self.clock()
            ready = self._on_frame(raw)
            yield from ready
            if self._over or any(self._ends(r) for r in ready):
                return True

    def _catch_up(self) -> list[LogRecord]:
        try:
            return self._read_http()
        except UnreachableError:
            return []

    def _run_over(self, frame: dict[str, Any]) -> bool:
        """Whether the run had ended when ``frame`` was sent and every record up to ``live_from - 1`` is released."""
        live_from = frame.get("live_from")
        return (
            frame.get("status") in TERMINAL_STATUSES
            and isinstance(live_from, int)
            and live_from - 1 <= self._buffer.last
        )

    def _on_frame(self, raw: str | bytes) -> list[LogRecord]:
        try:
            frame = json.loads(raw)
        except ValueError:
            return []
        if not isinstance(frame, dict):
            return []
        kind = frame.get("type")
        if kind == "subscribed":
            self._failures = 0
            self._over = self._run_over(frame)  # earlier servers put live_from in the ack
        elif kind == "replayed":
            self._over = self._run_over(frame)
        elif kind == "error":
            code = str(frame.get("code", "error"))
            raise ApiError(404 if code.endswith("not_found") else 400, code, str(frame.get("message", "")))
        elif kind == "records" and frame.get("run_id", self.run_id) == self.run_id:
            records = [LogRecord.model_validate(r) for r in frame.get("records", [])]
            return self._buffer.add(records, self.clock())
        return []


@dataclass(frozen=True)
class Endpoints:
    """Where the API is: the HTTP base URL, the WebSocket URL (if any) and where they came from."""

    http_url: str
    ws_url: str | None
    source: str
    credential: dict[str, str] | None = None
    """A local stack's SigV4 key (``access_key``, ``secret_key``, ``arn``), from its ``stack.json``."""


def find_stack_file(start: Path) -> Path | None:
    """``.local-stack/stack.json`` in ``start`` or the nearest parent that has one."""
    for directory in (start, *start.parents):
        candidate = directory / STACK_FILE
        if candidate.is_file():
            return candidate
    return None


def local_stack_endpoints(start: Path, alive: Callable[[int], bool] = pid_alive) -> Endpoints | None:
    """The endpoints of the local stack whose ``stack.json`` is nearest ``start``, if its process lives."""
    path = find_stack_file(start)
    if path is None:
        return None
    try:
        info = json.loads(path.read_text())
        pid = int(info["pid"])
        http_url = str(info["http_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not alive(pid):
        return None
    credential = info.get("credential")
    return Endpoints(
        http_url,
        info.get("ws_url") or None,
        f"local stack ({path})",
        credential if isinstance(credential, dict) else None,
    )


def cloudformation_endpoints(stack_name: str, region: str | None = None) -> Endpoints | None:
    """The ``HttpApiUrl`` and ``WebSocketUrl`` outputs of a deployed stack; ``None`` if it cannot be read."""
    try:
        import boto3

        cfn = boto3.session.Session(region_name=region).client("cloudformation")
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception:
        return None
    if not stacks:
        return None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    http_url = outputs.get("HttpApiUrl")
    if not http_url:
        return None
    return Endpoints(http_url, outputs.get("WebSocketUrl") or None, f"CloudFormation stack {stack_name}")


def resolve_endpoints(
    endpoint: str | None = None,
    ws_endpoint: str | None = None,
    *,
    stack_name: str | None = None,
    region: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    alive: Callable[[int], bool] = pid_alive,
    cloudformation: Callable[[str, str | None], Endpoints | None] = cloudformation_endpoints,
) -> Endpoints:
    """Find the API: ``endpoint``, else ``WF_ENDPOINT``, else a live local stack, else CloudFormation.

    The WebSocket URL is ``ws_endpoint``, else ``WF_WS_ENDPOINT``, else the one
    that came with the HTTP URL (a local stack or a deployed stack has both; an
    explicit HTTP URL has none, and logs are then polled over HTTP).

    Raises:
        EndpointError: when no source gives an HTTP URL.
    """
    env = os.environ if env is None else env
    ws_explicit = ws_endpoint or env.get("WF_WS_ENDPOINT") or None
    if endpoint:
        return Endpoints(endpoint, ws_explicit, "--endpoint")
    if env.get("WF_ENDPOINT"):
        return Endpoints(env["WF_ENDPOINT"], ws_explicit, "WF_ENDPOINT")
    found = local_stack_endpoints(cwd or Path.cwd(), alive)
    name = stack_name or env.get("WF_STACK_NAME") or DEFAULT_STACK_NAME
    if found is None:
        found = cloudformation(name, region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
    if found is None:
        raise EndpointError(
            "no API endpoint: pass --endpoint URL or set WF_ENDPOINT, start the local stack with "
            f"`make dev`, or deploy the stack {name!r} (outputs HttpApiUrl, WebSocketUrl)"
        )
    if ws_explicit:
        return Endpoints(found.http_url, ws_explicit, found.source, found.credential)
    return found
