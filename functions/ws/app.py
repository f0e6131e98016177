"""The WebSocket Lambda: ``$connect``, ``$disconnect``, ``subscribe``, ``unsubscribe`` and ``$default``.

Protocol (see README):

* connect with ``?run_id=...``: the connection follows that run's live records;
* ``{"action": "subscribe", "run_id": "...", "after": N}``: follow the run and
  receive every stored record with ``seq > N`` (default: all), then live ones;
  the server answers ``{"type": "subscribed", ..., "live_from": S}`` first;
* ``{"action": "unsubscribe", "run_id": "..."}``;
* anything else: ``{"type": "error", "code": ..., "message": ...}``.

A run takes at most ``MAX_SUBSCRIBERS_PER_RUN`` connections: the one over is
answered 429 on ``$connect`` and the error frame ``too_many_subscribers`` on ``subscribe``.
The caller (:mod:`functions.shared.identity`) comes with every event: a
``$connect`` without one is refused with 401, and a connection follows only runs
its caller started; another caller's run is ``run_not_found`` (404), as a run
that does not exist.

The subscription is stored before the backlog is read: records committed
after it reach the connection live, records before ``live_from`` come from the
backlog, so none is missed. Records carry ``seq``; while a backlog is being
sent a live frame may overtake it, so clients order by ``seq`` and drop a
``seq`` they have already seen.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayWebSocketEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field, ValidationError

from engine.aws.broadcast import WebSocketBroadcaster
from engine.errors import RunNotFoundError, TooManySubscribersError, UnauthenticatedError
from engine.frames import control_frame, error_frame, record_frames
from functions.shared import wiring
from functions.shared.identity import find_principal, principal
from functions.shared.observability import logger, tracer

REPLAY_PAGE = 1000


class SubscribeRequest(BaseModel):
    action: str
    run_id: str = Field(min_length=1, max_length=128)
    after: int = Field(default=-1, ge=-1)


def _response(status: int, body: str = "") -> dict[str, Any]:
    return {"statusCode": status, "body": body}


def _broadcaster(event: APIGatewayWebSocketEvent) -> WebSocketBroadcaster:
    """The broadcaster for this API's stage: ``WS_MANAGEMENT_ENDPOINT``, else the event's own domain."""
    context = event.request_context
    return wiring.broadcaster(
        wiring.settings().ws_endpoint or f"https://{context.domain_name}/{context.stage}"
    )


def _subscribe(connection_id: str, run_id: str, owner: str) -> int:
    """Register the connection on a run of ``owner``; returns the ``seq`` from which records arrive live."""
    wiring.service().require_run_owner(run_id, owner)
    store = wiring.store()
    run = store.add_subscriber(run_id, connection_id)
    store.add_connection(connection_id, run_id)
    return run.next_seq


def on_connect(event: APIGatewayWebSocketEvent) -> dict[str, Any]:
    owner = find_principal(event.raw_event)
    if owner is None:
        return _response(401, "the request carries no authenticated caller")
    run_id = (event.query_string_parameters or {}).get("run_id")
    if run_id:
        try:
            _subscribe(event.request_context.connection_id, run_id, owner)
        except RunNotFoundError:
            return _response(404, f"no run {run_id}")
        except TooManySubscribersError as exc:
            return _response(429, exc.message)
    return _response(200)


def on_disconnect(event: APIGatewayWebSocketEvent) -> dict[str, Any]:
    _broadcaster(event).forget(event.request_context.connection_id)
    return _response(200)


def on_subscribe(event: APIGatewayWebSocketEvent, body: Any) -> dict[str, Any]:
    connection_id = event.request_context.connection_id
    broadcaster = _broadcaster(event)
    try:
        request = SubscribeRequest.model_validate(body)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        broadcaster.post(connection_id, [error_frame("bad_request", detail)])
        return _response(400)
    logger.append_keys(run_id=request.run_id)
    try:
        owner = principal(event.raw_event)
    except UnauthenticatedError as exc:
        broadcaster.post(connection_id, [error_frame(exc.code, exc.message)])
        return _response(401)
    try:
        live_from = _subscribe(connection_id, request.run_id, owner)
    except RunNotFoundError:
        broadcaster.post(connection_id, [error_frame("run_not_found", f"no run {request.run_id!r}")])
        return _response(404)
    except TooManySubscribersError as exc:
        broadcaster.post(connection_id, [error_frame(exc.code, exc.message)])
        return _response(429)
    service = wiring.service()
    run = service.get_run(request.run_id, owner=owner)
    ack = control_frame(
        "subscribed", run_id=request.run_id, after=request.after, live_from=live_from, status=run.status.value
    )
    if not broadcaster.post(connection_id, [ack]):
        return _response(410)
    after = request.after
    while after < live_from - 1:
        page = [
            r for r in service.list_logs(request.run_id, after, REPLAY_PAGE, owner=owner) if r.seq < live_from
        ]
        if not page:
            break
        if not broadcaster.post(connection_id, record_frames(request.run_id, page)):
            return _response(410)
        after = page[-1].seq
    return _response(200)


def on_unsubscribe(event: APIGatewayWebSocketEvent, body: Any) -> dict[str, Any]:
    run_id = body.get("run_id") if isinstance(body, dict) else None
    if isinstance(run_id, str) and run_id:
        wiring.store().remove_subscriber(run_id, event.request_context.connection_id)
    return _response(200)


def on_default(event: APIGatewayWebSocketEvent, body: Any) -> dict[str, Any]:
    action = body.get("action") if isinstance(body, dict) else None
    message = (
        f"unknown action {action!r}" if action else "send JSON with an 'action': subscribe or unsubscribe"
    )
    _broadcaster(event).post(event.request_context.connection_id, [error_frame("unknown_action", message)])
    return _response(400)


def _body(event: APIGatewayWebSocketEvent) -> Any:
    try:
        return json.loads(event.decoded_body or "null")
    except ValueError:
        return None


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
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
