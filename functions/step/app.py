"""The step Lambda: consumes the FIFO step queue, one node of one run per message.

Each record is handed to :meth:`WorkflowService.run_step`, which does no work for
duplicate or stale messages and commits each step exactly once. A retry whose
delay has not passed is deferred: its visibility timeout is set to the delay and
the record is reported as failed, so SQS delivers it again when it is due
(FIFO queues cannot delay single messages). Other runs are not held up: with
``skip_group_on_error`` only the failing record's message group (its run) waits.
A record that keeps failing reaches the DLQ, whose consumer marks the run FAILED.
"""

from __future__ import annotations

import math
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from engine.model import StepMessage
from engine.service import StepDisposition
from functions.shared import wiring
from functions.shared.observability import logger, metrics, tracer

MAX_VISIBILITY_SECONDS = 12 * 60 * 60

processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


class StepDeferred(Exception):
    """The record is a retry that is not due yet; SQS redelivers it when it is."""


def defer(record: SQSRecord, seconds: float) -> None:
    """Hide a record until it is due and hand it back to SQS."""
    timeout = min(MAX_VISIBILITY_SECONDS, max(1, math.ceil(seconds)))
    queue_url = wiring.settings().step_queue_url
    wiring.client("sqs").change_message_visibility(
        QueueUrl=queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=timeout
    )
    raise StepDeferred(f"due in {seconds:.3f}s")


@tracer.capture_method
def handle_record(record: SQSRecord) -> None:
    message = StepMessage.model_validate_json(record.body)
    logger.append_keys(run_id=message.run_id, step=message.step, attempt=message.attempt)
    result = wiring.service().run_step(message)
    disposition = result.disposition
    logger.info("step handled", extra={"disposition": disposition.value, "status": result.run.status.value})
    metrics.add_metric(name=f"Steps_{disposition.value}", unit=MetricUnit.Count, value=1)
    if disposition is StepDisposition.COMMITTED:
        duration = sum(r.duration_ms or 0.0 for r in result.records)
        metrics.add_metric(name="StepDuration", unit=MetricUnit.Milliseconds, value=duration)
        if result.run.status.value == "FAILED":
            metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
    elif disposition is StepDisposition.DEFERRED:
        defer(record, result.defer_seconds)


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
