"""The DLQ consumer: a step message that kept failing marks its run FAILED with the reason.

The reason names the step, the number of receives and, when the step handler
left one, the run's last error. A message for a run that does not exist (its
start never completed) or that already ended is acknowledged and logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from engine.model import RunError, StepMessage
from functions.shared import wiring
from functions.shared.observability import logger, metrics, tracer

processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def handle_record(record: SQSRecord) -> None:
    try:
        message = StepMessage.model_validate_json(record.body)
    except ValidationError:
        logger.error("unreadable message in the DLQ dropped", extra={"body": record.body[:1000]})
        return
    logger.append_keys(run_id=message.run_id, step=message.step, attempt=message.attempt)
    receives = record.attributes.approximate_receive_count
    error = RunError(
        type="StepDeliveryFailed",
        message=(
            f"step {message.step} attempt {message.attempt} failed {receives} deliveries "
            "and was moved to the dead-letter queue"
        ),
    )
    run = wiring.service().fail_run(message.run_id, error)
    if run is None:
        logger.warning("DLQ message for a run that is missing or already ended")
        return
    metrics.add_metric(name="RunsFailedFromDLQ", unit=MetricUnit.Count, value=1)
    logger.error("run failed from the DLQ", extra={"reason": error.message})


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
