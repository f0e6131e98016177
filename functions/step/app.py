"""The step Lambda: consumes the FIFO step queue, one node of one run per message.

Each record is handed to :meth:`WorkflowService.run_step`, which does no work for
duplicate or stale messages and commits each step exactly once. A retry whose
delay has not passed is deferred: its visibility timeout is set to the delay and
the record is reported as failed, so SQS delivers it again when it is due
(FIFO queues cannot delay single messages). Other runs are not held up: with
``skip_group_on_error`` only the failing record's message group (its run) waits.
A record that keeps failing reaches the DLQ, whose consumer marks the run FAILED.

Isolation (``STEP_ISOLATION``): a *suspect* record, one SQS delivered before
(``ApproximateReceiveCount`` > 1: its invocation died or timed out, or it
failed), runs its tool in a forked child with a hard time and memory limit
(:class:`engine.runner.ForkRunner`), so a tool that kills its process or hangs
fails only its own attempt, and the records after it are still processed.
``always`` isolates every record, ``never`` none.

Time budget: each record is offered the invocation's remaining time; a node
whose ``timeout_seconds`` does not fit is handed back at once (visible again,
not run). Every failed record is logged with its reason.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from engine.errors import RunNotFoundError
from engine.model import StepMessage
from engine.service import StepDisposition, StepResult
from functions.shared import wiring
from functions.shared.observability import logger, metrics, tracer

MAX_VISIBILITY_SECONDS = 12 * 60 * 60
MISSING_RUN_BACKOFF = (0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.5, 0.5)
MISSING_RUN_RETRY_SECONDS = 5

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


class StepDeferred(Exception):
    """The record is a retry that is not due yet; SQS redelivers it when it is."""


class StepHandedBack(Exception):
    """The invocation has too little time left for the record's node; it is visible again at once."""


def release(record: SQSRecord) -> None:
    """Make a record visible again now."""
    try:
        wiring.client("sqs").change_message_visibility(
            QueueUrl=wiring.settings().step_queue_url,
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=0,
        )
    except ClientError as exc:
        logger.warning("could not release the record", extra={"error": str(exc)})


def hide(record: SQSRecord, seconds: float) -> None:
    """Make a record due again in ``seconds`` instead of at the end of the queue's visibility timeout."""
    timeout = min(MAX_VISIBILITY_SECONDS, max(1, math.ceil(seconds)))
    try:
        wiring.client("sqs").change_message_visibility(
            QueueUrl=wiring.settings().step_queue_url,
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=timeout,
        )
    except ClientError as exc:
        logger.warning("could not change the record's visibility", extra={"error": str(exc)})


def defer(record: SQSRecord, seconds: float) -> None:
    """Hide a record until it is due and hand it back to SQS."""
    hide(record, seconds)
    raise StepDeferred(f"due in {seconds:.3f}s")


def run_step(
    message: StepMessage,
    *,
    isolate: bool = False,
    time_left: float | None = None,
    receives: int | None = None,
) -> StepResult:
    """Execute a message's step; a first step may overtake the write that creates its run.

    ``start_run`` sends the first message before it stores the run (so a crash
    in between loses nothing), so a fast consumer can find no run yet. The read
    is tried again for up to about 1.5 s; after that the record is handed back
    to SQS, due again in :data:`MISSING_RUN_RETRY_SECONDS`, and a run that never
    appears ends in the DLQ, which drops its message.
    """
    service = wiring.service()
    for delay in (*MISSING_RUN_BACKOFF, None):
        try:
            return service.run_step(message, isolate=isolate, time_left=time_left, receives=receives)
        except RunNotFoundError:
            if message.position != (0, 1) or delay is None:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def time_left(context: LambdaContext | None) -> float | None:
    """Seconds left in the invocation, ``None`` without a context."""
    if context is None:
        return None
    return float(context.get_remaining_time_in_millis()) / 1000


@tracer.capture_method
def handle_record(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    message = StepMessage.model_validate_json(record.body)
    logger.append_keys(
        run_id=message.run_id, step=message.step, attempt=message.attempt, branch=message.branch
    )
    receives = int(record.attributes.approximate_receive_count or 1)
    isolate = wiring.settings().isolates(receives)
    if isolate:
        logger.info("running a redelivered step isolated", extra={"receives": receives})
        metrics.add_metric(name="StepsIsolated", unit=MetricUnit.Count, value=1)
    try:
        result = run_step(message, isolate=isolate, time_left=time_left(lambda_context), receives=receives)
    except RunNotFoundError:
        logger.warning("no run for this step message yet")
        hide(record, MISSING_RUN_RETRY_SECONDS)
        raise
    except Exception as exc:
        logger.exception(
            "step record failed", extra={"receives": receives, "reason": f"{type(exc).__name__}: {exc}"}
        )
        if receives > 1:
            try:
                wiring.service().note_failed_delivery(message, exc, receives)
            except Exception as note_error:
                logger.warning("could not note the failure on the run", extra={"error": str(note_error)})
        raise
    disposition = result.disposition
    node = next((r.node for r in result.records if r.node), None)
    duration = sum(r.duration_ms or 0.0 for r in result.records)
    logger.info(
        "step handled",
        extra={
            "node": node,
            "disposition": disposition.value,
            "duration_ms": round(duration, 1),
            "status": result.run.status.value,
        },
    )
    metrics.add_metric(name=f"Steps_{disposition.value}", unit=MetricUnit.Count, value=1)
    if disposition is StepDisposition.COMMITTED:
        metrics.add_metric(name="StepDuration", unit=MetricUnit.Milliseconds, value=duration)
        if result.run.status.value == "FAILED":
            metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
    elif disposition is StepDisposition.DEFERRED:
        defer(record, result.defer_seconds)
    elif disposition is StepDisposition.HANDED_BACK:
        logger.warning("step handed back", extra={"reason": result.reason})
        release(record)
        raise StepHandedBack(result.reason)


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
