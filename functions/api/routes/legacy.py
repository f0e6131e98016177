"""The routes of the earlier FastAPI versions, kept for their users, and the data-quality demo.

``POST /graph/run`` runs inline exactly like ``POST /runs`` with ``wait``: a run
that outlasts the wait budget goes on in the queue and is answered with its
status and state so far. Every route is scoped to the caller as the others are
(:mod:`engine.service`); the demo graph is one per caller (:func:`demo_graph_id`).
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from engine.errors import ConflictError, GraphNotFoundError
from engine.model import Run
from engine.service import WorkflowService
from functions.api.body import graph_definition
from functions.api.caller import owner
from functions.api.routes.graphs import GRAPH_BODY
from functions.api.routes.runs import bind_run, count_started, run_inline
from functions.api.schemas import (
    DemoRequest,
    DemoStarted,
    LegacyCreated,
    LegacyExecution,
    LegacyRunRequest,
    LegacyRunResult,
    LegacyRunStarted,
    errors,
    ok,
)
from functions.shared import wiring
from functions.shared.observability import logger

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

DEMO_GRAPH_PREFIX = "data-quality"
DEMO_GRAPH_FILE = "data_quality"
LOG_LIMIT = 1000

RunId = Annotated[str, Path(min_length=1, max_length=128)]


@router.post(
    "/graph/create",
    summary="Register a graph (FastAPI-era route)",
    description="Same as `POST /graphs`; answers `{graph_id, version}` with 200.",
    tags=["legacy"],
    deprecated=True,
    responses={**ok(200, "The new graph's id"), **errors(400, 413, 415)},
    openapi_extensions=GRAPH_BODY,
)
def create_graph() -> LegacyCreated:
    record = wiring.service().create_graph(graph_definition(router.current_event), owner=owner(router))
    return LegacyCreated(graph_id=record.graph_id, version=record.version)


@router.post(
    "/graph/run",
    summary="Run a graph and wait for it (FastAPI-era route)",
    description="Runs inline for up to `WAIT_BUDGET_SECONDS`; a run still going then continues in the queue.",
    tags=["legacy"],
    deprecated=True,
    responses={**ok(200, "The run with its final (or current) state and log"), **errors(400, 404, 413, 415)},
)
def run_graph(request: Annotated[LegacyRunRequest, Body()]) -> LegacyRunResult:
    run = run_inline(request.graph_id, request.initial_state)
    return LegacyRunResult(
        run_id=run.run_id,
        status=run.status,
        final_state=dict(run.state.items()),
        error=run.error,
        logs=wiring.service().list_logs(run.run_id, limit=LOG_LIMIT, owner=owner(router)),
    )


@router.post(
    "/graph/run/async",
    summary="Start a run (FastAPI-era route)",
    description="Same as `POST /runs` without `wait`; answers 200.",
    tags=["legacy"],
    deprecated=True,
    responses={**ok(200, "The run id"), **errors(400, 404, 413, 415)},
)
def run_graph_async(request: Annotated[LegacyRunRequest, Body()]) -> LegacyRunStarted:
    run = wiring.service().start_run(request.graph_id, request.initial_state, owner=owner(router))
    bind_run(run.run_id)
    count_started("queue")
    return LegacyRunStarted(run_id=run.run_id, status=run.status)


def _execution(run_id: str) -> LegacyExecution:
    bind_run(run_id)
    service = wiring.service()
    caller = owner(router)
    run = service.get_run(run_id, owner=caller)
    return LegacyExecution(
        run_id=run.run_id,
        graph_id=run.graph_id,
        status=run.status,
        current_node=run.current_node,
        step=run.step,
        state=dict(run.state.items()),
        error=run.error,
        logs=service.list_logs(run_id, limit=LOG_LIMIT, owner=caller),
    )


@router.get(
    "/graph/state/<run_id>",
    summary="A run's status, state and log (FastAPI-era route)",
    tags=["legacy"],
    deprecated=True,
    responses={**ok(200, "The run"), **errors(404)},
)
def graph_state(run_id: RunId) -> LegacyExecution:
    return _execution(run_id)


@router.get(
    "/execution/<run_id>",
    summary="A run's status, state and log (FastAPI-era route)",
    tags=["legacy"],
    deprecated=True,
    responses={**ok(200, "The run"), **errors(404)},
)
def execution(run_id: RunId) -> LegacyExecution:
    return _execution(run_id)


def demo_graph_id(caller: str) -> str:
    """The id of a caller's data-quality graph: ``data-quality-`` and a digest of the caller.

    Graph ids are global and graphs are their owner's alone, so each caller gets one.
    """
    return f"{DEMO_GRAPH_PREFIX}-{hashlib.sha256(caller.encode()).hexdigest()[:16]}"


def ensure_demo_graph(service: WorkflowService, caller: str) -> str:
    """Create the caller's data-quality graph (:func:`demo_graph_id`) unless it exists.

    Two cold requests may both find it missing: the loser of the create gets a
    :class:`ConflictError`, which means the graph is there.
    """
    graph_id = demo_graph_id(caller)
    try:
        service.get_graph(graph_id, owner=caller)
    except GraphNotFoundError:
        from engine.graphs import load_graph_json

        try:
            service.create_graph(load_graph_json(DEMO_GRAPH_FILE), graph_id=graph_id, owner=caller)
            logger.info("demo graph created", extra={"graph_id": graph_id})
        except ConflictError:
            logger.info("demo graph created concurrently", extra={"graph_id": graph_id})
    return graph_id


@router.post(
    "/demo/run_data_quality",
    summary="Start the data-quality demo",
    description="Creates the caller's `data-quality-...` graph on first use, then starts a queued run of it. "
    "Follow it with `GET /runs/{run_id}/logs` or the WebSocket API.",
    tags=["demo"],
    responses={**ok(200, "The demo run"), **errors(400, 413, 415)},
)
def run_data_quality(
    request: Annotated[DemoRequest | None, Body(description="Optional settings.")] = None,
) -> DemoStarted:
    service = wiring.service()
    caller = owner(router)
    graph_id = ensure_demo_graph(service, caller)
    state = (request or DemoRequest()).model_dump(exclude_none=True)
    run: Run = service.start_run(graph_id, state, owner=caller)
    bind_run(run.run_id)
    count_started("demo")
    return DemoStarted(run_id=run.run_id, graph_id=graph_id, status=run.status)
