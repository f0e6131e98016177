"""The trigger Lambda: starts a run of a named graph when a schedule or an event asks.

Its event is a :class:`engine.triggers.TriggerEvent`: ``{"graph_id": ..., "initial_state": {...}}``
with, from a graph's own schedule, the trigger's index and the firing's
``scheduled_time``, or, from an EventBridge rule (``template.yaml``'s
``UploadTriggerRule``: an S3 upload), an ``idempotency_key`` its input
transformer fills in. The run is the graph's latest version, started for the
graph's owner (:meth:`WorkflowService.start_triggered_run`); a delivery repeated
with the same key returns the run the first one started.

A graph that is gone, or a schedule of a trigger its graph no longer has,
starts nothing and is logged, not retried. An event that is not a trigger
event is refused (:class:`pydantic.ValidationError`), which the invoker's retry
policy and dead-letter settings then handle.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from engine.errors import GraphNotFoundError
from engine.triggers import TriggerEvent
from functions.shared import wiring
from functions.shared.observability import logger, metrics, tracer


def start(raw: dict[str, Any]) -> dict[str, Any]:
    """Start the run ``raw`` asks for; what happened, as the function's answer."""
    event = TriggerEvent.model_validate(raw)
    logger.append_keys(graph_id=event.graph_id, trigger=event.trigger)
    try:
        run = wiring.service().start_triggered_run(event)
    except GraphNotFoundError as exc:
        logger.warning("trigger for a graph that is gone ignored", extra={"reason": exc.message})
        metrics.add_metric(name="TriggersIgnored", unit=MetricUnit.Count, value=1)
        return {"started": False, "reason": "graph_not_found"}
    if run is None:
        logger.warning("schedule of a trigger the graph no longer has ignored")
        metrics.add_metric(name="TriggersIgnored", unit=MetricUnit.Count, value=1)
        return {"started": False, "reason": "trigger_removed"}
    logger.info("triggered run started", extra={"run_id": run.run_id, "scheduled_time": event.scheduled_time})
    metrics.add_metric(name="TriggeredRuns", unit=MetricUnit.Count, value=1)
    return {"started": True, "run_id": run.run_id}


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return start(event)
