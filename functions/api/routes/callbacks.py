"""``/callbacks/{token}``: approve or reject the callback a run waits for (docs/durable.md).

A token is a capability: any authenticated caller holding one may use it, once,
whoever owns the run (docs/security.md). The answer shows the run's state to its
owner only. The token itself is never logged here; the run id, its first part, is.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.metrics import MetricUnit

from engine.model import Run
from functions.api.caller import owner
from functions.api.routes.runs import bind_run, view_within_limit
from functions.api.schemas import CallbackApproval, CallbackRejection, RunView, errors, ok
from functions.shared import wiring
from functions.shared.observability import logger, metrics

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

Token = Annotated[
    str,
    Path(
        min_length=1,
        max_length=512,
        description="The token of the run's `callback_waiting` log record (`data.token`).",
    ),
]

CALLBACK_ERRORS = errors(400, 404, 409, 410, 413, 415)


def _used(run: Run, caller: str, *, approved: bool) -> Response[Any]:
    """Log and count the use; the answer: the run, its state left out unless ``caller`` owns it."""
    bind_run(run.run_id)
    owned = caller == run.owner
    metrics.add_metric(name="CallbacksUsed", unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="approved", value=approved)
    logger.info("callback used", extra={"approved": approved, "caller": caller, "by_owner": owned})
    body = view_within_limit(run) if owned else RunView.of(run, include_state=False).model_dump(mode="json")
    return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, body)


@router.post(
    "/callbacks/<token>",
    summary="Approve a callback",
    description="Resumes the run waiting at the token's callback node: `data` is merged into its state, "
    "`decision` (if given) kept at state key `decision`, and the run moves along the node's edges. A token "
    "is accepted once: 409 `callback_used` after that (or once the run ended), 410 `callback_expired` after "
    "its time-out, 404 `callback_not_found` for a token no run issued.",
    tags=["callbacks"],
    responses={
        **ok(200, "The run, moved on from the callback node (its state for its owner only)", RunView),
        **CALLBACK_ERRORS,
    },
)
def approve(
    token: Token,
    request: Annotated[CallbackApproval | None, Body(description="Optional: the decision and data.")] = None,
) -> Response[Any]:
    caller = owner(router)
    body = request or CallbackApproval()
    run = wiring.service().resolve_callback(token, approved=True, data=body.data, decision=body.decision)
    return _used(run, caller, approved=True)


@router.post(
    "/callbacks/<token>/fail",
    summary="Reject a callback",
    description="Fails the token's callback node with `CallbackRejected` and the reason: the node's retry, "
    "then its `catch`, apply, else the run fails. The same 404, 409 and 410 as approving.",
    tags=["callbacks"],
    responses={
        **ok(200, "The run after the node failed (its state for its owner only)", RunView),
        **CALLBACK_ERRORS,
    },
)
def reject(token: Token, request: Annotated[CallbackRejection, Body()]) -> Response[Any]:
    caller = owner(router)
    run = wiring.service().resolve_callback(token, approved=False, reason=request.reason)
    return _used(run, caller, approved=False)
