"""``/runs``: start runs (queued, or executed in the request with ``wait``), read them, their logs, cancel,
redrive, delete."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from engine import limits
from engine.errors import ResponseTooLargeError, StateKeyNotFoundError
from engine.model import Run, RunStatus
from functions.api.caller import owner
from functions.api.schemas import (
    CancelRequest,
    LogsPage,
    RunAccepted,
    RunList,
    RunRequest,
    RunView,
    errors,
    ok,
)
from functions.shared import wiring
from functions.shared.observability import logger, metrics, tracer

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

RESPONSE_MARGIN_SECONDS = 2.0

RunId = Annotated[str, Path(min_length=1, max_length=128)]


def bind_run(run_id: str) -> None:
    """Tag this request's log lines and trace with the run it is about."""
    logger.append_keys(run_id=run_id)
    tracer.put_annotation(key="run_id", value=run_id)


def count_started(mode: str) -> None:
    metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="start_mode", value=mode)


def wait_budget_seconds(context: Any) -> float:
    """Seconds a request may spend running steps: ``WAIT_BUDGET_SECONDS`` (default 25).

    Never more than the Lambda invocation has left, less a margin to answer in.
    """
    budget = wiring.settings().wait_budget_seconds
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = min(budget, remaining() / 1000 - RESPONSE_MARGIN_SECONDS)
    return max(0.0, budget)


def run_inline(
    graph_id: str,
    initial_state: dict[str, Any],
    idempotency_key: str | None = None,
    version: int | None = None,
) -> Run:
    """Start a run and execute it in this request for up to the wait budget."""
    run = wiring.service().run_inline(
        graph_id,
        initial_state,
        budget_seconds=wait_budget_seconds(router.lambda_context),
        idempotency_key=idempotency_key,
        version=version,
        owner=owner(router),
    )
    bind_run(run.run_id)
    count_started("wait")
    logger.info("run executed inline", extra={"status": run.status.value, "step": run.step})
    return run


def response_size(body: str) -> int:
    """Bytes ``body`` takes in a Lambda response, where it travels as a JSON string."""
    return len(json.dumps(body))


def view_within_limit(run: Run) -> dict[str, Any]:
    """The run as ``wait``, redrive and callbacks answer it; without its state if that would not fit one response."""
    view = RunView.of(run)
    if response_size(view.model_dump_json()) > limits.MAX_RESPONSE_BYTES:
        view = RunView.of(run, include_state=False)
    return view.model_dump(mode="json")


def accepted(run: Run) -> Response[RunAccepted]:
    body = RunAccepted(
        run_id=run.run_id, status=run.status, graph_id=run.graph_id, graph_version=run.graph_version
    )
    return Response(
        status_code=HTTPStatus.ACCEPTED,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Location": f"/runs/{run.run_id}"},
    )


@router.post(
    "/runs",
    summary="Start a run",
    description="Queues the run's first step and answers 202. With `wait: true` the steps run in this "
    "request for up to `WAIT_BUDGET_SECONDS`: 200 with the run if it ended, else 202 (the queue goes on).",
    tags=["runs"],
    responses={
        **ok(200, "`wait`: the run ended; its final state", RunView),
        **ok(202, "Accepted: the run goes on in the background", RunAccepted),
        **errors(400, 404, 413, 415),
    },
)
def start_run(request: Annotated[RunRequest, Body()]) -> Response[Any]:
    if request.wait:
        run = run_inline(request.graph_id, request.initial_state, request.idempotency_key, request.version)
        if run.status.terminal:
            return Response(
                status_code=HTTPStatus.OK,
                content_type=content_types.APPLICATION_JSON,
                body=view_within_limit(run),
                headers={"Location": f"/runs/{run.run_id}"},
            )
        return accepted(run)
    run = wiring.service().start_run(
        request.graph_id,
        request.initial_state,
        idempotency_key=request.idempotency_key,
        version=request.version,
        owner=owner(router),
    )
    bind_run(run.run_id)
    count_started("queue")
    logger.info("run started", extra={"graph_id": run.graph_id, "graph_version": run.graph_version})
    return accepted(run)


@router.get(
    "/runs",
    summary="List runs",
    description="The caller's runs, newest first, without their states; filtered by `status` and `graph_id`.",
    tags=["runs"],
    responses={**ok(200, "The runs", RunList), **errors()},
)
def list_runs(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
    graph_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> RunList:
    runs = wiring.service().list_runs(limit, status=status, graph_id=graph_id, owner=owner(router))
    return RunList(runs=[RunView.of(run, include_state=False).model_dump(mode="json") for run in runs])


@router.get(
    "/runs/<run_id>",
    summary="Get a run",
    description="Status, current node, step, state, error and timestamps. A run whose answer would not "
    "fit one Lambda response (6 MB) is a 413 `response_too_large`: read it with `include_state=false` "
    "and its state key by key.",
    tags=["runs"],
    responses={**ok(200, "The run", RunView), **errors(404, 413)},
)
def get_run(
    run_id: RunId,
    include_state: Annotated[bool, Query(description="Leave the state out with `false`.")] = True,
) -> Response[str]:
    bind_run(run_id)
    body = RunView.of(
        wiring.service().get_run(run_id, owner=owner(router)), include_state=include_state
    ).model_dump_json()
    size = response_size(body)
    if size > limits.MAX_RESPONSE_BYTES:
        raise ResponseTooLargeError(
            f"run {run_id} is {size} bytes as JSON, more than one response holds ({limits.MAX_RESPONSE_BYTES}); "
            f"read it with ?include_state=false and its state with GET /runs/{run_id}/state/{{key}}",
            size=size,
            limit=limits.MAX_RESPONSE_BYTES,
        )
    return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, body)


@router.get(
    "/runs/<run_id>/state/<key>",
    summary="Get one value of a run's state",
    description="The value of one top-level state key, as JSON: for states too large for one response "
    "(Lambda answers at most 6 MB), read them key by key.",
    tags=["runs"],
    responses={**ok(200, "The value"), **errors(404, 413)},
)
def get_state_value(run_id: RunId, key: Annotated[str, Path(min_length=1, max_length=256)]) -> Response[Any]:
    bind_run(run_id)
    state = wiring.service().get_run(run_id, owner=owner(router)).state
    if key not in state:
        raise StateKeyNotFoundError(f"run {run_id!r} has no state key {key!r}", run_id=run_id, key=key)
    body = json.dumps(state[key], ensure_ascii=False, separators=(",", ":"))
    size = response_size(body)
    if size > limits.MAX_RESPONSE_BYTES:
        raise ResponseTooLargeError(
            f"state key {key!r} is {size} bytes as JSON, more than one response holds ({limits.MAX_RESPONSE_BYTES})",
            size=size,
            limit=limits.MAX_RESPONSE_BYTES,
        )
    return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, body)


@router.get(
    "/runs/<run_id>/logs",
    summary="Read a run's log",
    description="Records with `seq > after`, in order, at most `limit`. Poll with `after=next_after`.",
    tags=["runs"],
    responses={**ok(200, "A page of log records"), **errors(404)},
)
def run_logs(
    run_id: RunId,
    after: Annotated[int, Query(ge=-1, description="The last sequence number already seen.")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LogsPage:
    bind_run(run_id)
    records = wiring.service().list_logs(run_id, after, limit, owner=owner(router))
    return LogsPage(run_id=run_id, records=records, next_after=records[-1].seq if records else after)


@router.post(
    "/runs/<run_id>/cancel",
    summary="Cancel a run",
    description="Moves the run to CANCELLED; 409 `run_finished` if it already ended.",
    tags=["runs"],
    responses={**ok(200, "The cancelled run"), **errors(400, 404, 409, 413, 415)},
)
def cancel_run(
    run_id: RunId,
    request: Annotated[CancelRequest | None, Body(description="Optional: why the run is cancelled.")] = None,
) -> RunView:
    bind_run(run_id)
    reason = (request or CancelRequest()).reason
    run = wiring.service().cancel(run_id, reason, owner=owner(router))
    logger.info("run cancelled", extra={"reason": reason})
    return RunView.of(run)


@router.post(
    "/runs/<run_id>/redrive",
    summary="Redrive a run",
    description="Takes a FAILED or TIMED_OUT run back to the node that failed (a node inside a branch: its "
    "fan-out node), with its last committed state, and queues it: the same run id, its log going on after a "
    "`run_redriven` record, its `timeout_seconds` counted from now. 409 `run_not_redrivable` for a run in "
    "any other state, or whose graph version was deleted.",
    tags=["runs"],
    responses={**ok(202, "Accepted: the run goes on in the background", RunView), **errors(404, 409)},
)
def redrive_run(run_id: RunId) -> Response[Any]:
    bind_run(run_id)
    run = wiring.service().redrive(run_id, owner=owner(router))
    metrics.add_metric(name="RunsRedriven", unit=MetricUnit.Count, value=1)
    logger.info("run redriven", extra={"node": run.current_node, "attempt": run.attempt})
    return Response(
        status_code=HTTPStatus.ACCEPTED,
        content_type=content_types.APPLICATION_JSON,
        body=view_within_limit(run),
        headers={"Location": f"/runs/{run.run_id}"},
    )


@router.delete(
    "/runs/<run_id>",
    summary="Delete a run",
    description="Deletes a run that ended, with its log; 409 `run_active` while it is going (cancel it first).",
    tags=["runs"],
    responses={204: {"description": "Deleted", "content": {}}, **errors(404, 409)},
)
def delete_run(run_id: RunId) -> Response[None]:
    bind_run(run_id)
    wiring.service().delete_run(run_id, owner=owner(router))
    logger.info("run deleted")
    return Response(status_code=HTTPStatus.NO_CONTENT, body=None)
