"""The WebSocket Lambda: ``$connect``, ``$disconnect``, ``subscribe``, ``unsubscribe``, ``$default``, and the replay queue.

The protocol is in docs/websocket.md; the subscription itself (ack, store,
backlog, and why ``subscribed`` comes before any ``records`` frame) is
:mod:`engine.subscriptions`. This module parses events and shapes responses:

* ``$connect`` with ``?run_id=...[&after=N]``: refused with 404 if the caller may
  not read the run (or it does not exist), 429 if the run is full, 400 for a bad
  ``after``; else a :class:`ReplayRequest` goes to ``WS_REPLAY_QUEUE_URL``, since API
  Gateway lets nothing be posted to a connection before ``$connect`` returns. Without
  ``after``, the records committed from the ``$connect`` on are sent.
* an SQS event (the replay queue): for each request, wait until the connection is
  open (``GET @connections/{id}``, a few short retries), then subscribe with its ``after``.
* ``{"action": "subscribe", "run_id": "...", "after": N}`` and ``{"action": "unsubscribe", "run_id": "..."}``.
* anything else: ``{"type": "error", "code": "unknown_action", ...}``.

The caller (:mod:`functions.shared.identity`) comes with every event: a
``$connect`` without one is refused with 401; another caller's run is
``run_not_found``, as a run that does not exist.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field, ValidationError

from engine.errors import RunNotFoundError, TooManySubscribersError, UnauthenticatedError
from engine.model import Run
from engine.subscriptions import ReplayRequest, Subscriptions
from functions.shared import wiring
from functions.shared.identity import find_principal, principal
from functions.shared.observability import logger, tracer

CONNECT_WAITS = (0.2, 0.5, 1.0, 2.0)
"""Seconds between the replay's checks that its connection is open (API Gateway opens it once ``$connect`` returns)."""


class SubscribeRequest(BaseModel):
    action: str
    run_id: str = Field(min_length=1, max_length=128)
    after: int = Field(default=-1, ge=-1)


def _response(status: int, body: str = "") -> dict[str, Any]:
    return {"statusCode": status, "body": body}


def _endpoint(event: APIGatewayWebSocketEvent) -> str:
    """The management endpoint for this API's stage: ``WS_MANAGEMENT_ENDPOINT``, else the event's own domain."""
    context = event.request_context
    return wiring.settings().ws_endpoint or f"https://{context.domain_name}/{context.stage}"


def _subscriptions(event: APIGatewayWebSocketEvent) -> Subscriptions:
    return wiring.subscriptions(_endpoint(event))


def _connect_after(query: dict[str, str], run: Run) -> int | None:
    """``after`` from the query; without it, the records committed from now on (``None``: not an integer >= -1)."""
    raw = query.get("after")
    if raw is None:
        return run.next_seq - 1
    try:
        after = int(raw)
    except ValueError:
        return None
    return after if after >= -1 else None


def on_connect(event: APIGatewayWebSocketEvent) -> dict[str, Any]:
    owner = find_principal(event.raw_event)
    if owner is None:
        return _response(401, "the request carries no authenticated caller")
    query = event.query_string_parameters or {}
    run_id = query.get("run_id")
    if not run_id:
        return _response(200)
    connection_id = event.request_context.connection_id
    try:
        run = _subscriptions(event).check(run_id, owner, connection_id)
    except RunNotFoundError:
        return _response(404, f"no run {run_id}")
    except TooManySubscribersError as exc:
        return _response(429, exc.message)
    after = _connect_after(query, run)
    if after is None:
        return _response(400, "after must be an integer >= -1")
    wiring.send_replay(
        ReplayRequest(
            connection_id=connection_id, run_id=run_id, after=after, owner=owner, endpoint=_endpoint(event)
        )
    )
    return _response(200)


def on_disconnect(event: APIGatewayWebSocketEvent) -> dict[str, Any]:
    _subscriptions(event).forget(event.request_context.connection_id)
    return _response(200)


def on_subscribe(event: APIGatewayWebSocketEvent, body: Any) -> dict[str, Any]:
    connection_id = event.request_context.connection_id
    subscriptions = _subscriptions(event)
    try:
        request = SubscribeRequest.model_validate(body)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        subscriptions.error(connection_id, "bad_request", detail)
        return _response(400)
    logger.append_keys(run_id=request.run_id)
    try:
        owner = principal(event.raw_event)
    except UnauthenticatedError as exc:
        subscriptions.error(connection_id, exc.code, exc.message)
        return _response(401)
    return _serve(subscriptions, connection_id, request.run_id, owner, request.after)


def _serve(
    subscriptions: Subscriptions, connection_id: str, run_id: str, owner: str, after: int
) -> dict[str, Any]:
    try:
        outcome = subscriptions.subscribe(connection_id, run_id, owner=owner, after=after)
    except RunNotFoundError:
        subscriptions.error(connection_id, "run_not_found", f"no run {run_id!r}")
        return _response(404)
    except TooManySubscribersError as exc:
        subscriptions.error(connection_id, exc.code, exc.message)
        return _response(429)
    return _response(200 if outcome.delivered else 410)


def on_replay(event: dict[str, Any]) -> dict[str, Any]:
    """Serve the subscriptions ``$connect`` queued, each once its connection is open.

    A connection that never opens (refused, or closed at once) is dropped; a
    message that fails otherwise is reported in ``batchItemFailures`` and retried.
    """
    failures = []
    for record in event.get("Records", []):
        try:
            request = ReplayRequest.model_validate_json(record["body"])
        except ValidationError:
            logger.warning(
                "dropping a malformed replay message", extra={"message_id": record.get("messageId")}
            )
            continue
        logger.append_keys(run_id=request.run_id, connection_id=request.connection_id)
        try:
            subscriptions = wiring.subscriptions(request.endpoint)
            if not _wait_open(subscriptions, request.connection_id):
                logger.info("the connection never opened; its replay is dropped")
                continue
            _serve(subscriptions, request.connection_id, request.run_id, request.owner, request.after)
        except Exception:
            logger.exception("replay failed")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def _wait_open(subscriptions: Subscriptions, connection_id: str) -> bool:
    for wait in (0.0, *CONNECT_WAITS):
        time.sleep(wait)
        if subscriptions.sink.connected(connection_id):
            return True
    return False


def on_unsubscribe(event: APIGatewayWebSocketEvent, body: Any) -> dict[str, Any]:
    run_id = body.get("run_id") if isinstance(body, dict) else None
    if isinstance(run_id, str) and run_id:
        _subscriptions(event).unsubscribe(event.request_context.connection_id, run_id)
    return _response(200)


def on_default(event: APIGatewayWebSocketEvent, body: Any) -> dict[str, Any]:
    action = body.get("action") if isinstance(body, dict) else None
    message = (
        f"unknown action {action!r}" if action else "send JSON with an 'action': subscribe or unsubscribe"
    )
    _subscriptions(event).error(event.request_context.connection_id, "unknown_action", message)
    return _response(400)


def _body(event: APIGatewayWebSocketEvent) -> Any:
    try:
        return json.loads(event.decoded_body or "null")
    except ValueError:
        return None


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return on_replay(event)
    ws = APIGatewayWebSocketEvent(event)
    route = ws.request_context.route_key
    logger.append_keys(connection_id=ws.request_context.connection_id, route=route)
    if route == "$connect":
        return on_connect(ws)
    if route == "$disconnect":
        return on_disconnect(ws)
    body = _body(ws)
    if route == "subscribe":
        return on_subscribe(ws, body)
    if route == "unsubscribe":
        return on_unsubscribe(ws, body)
    return on_default(ws, body)
