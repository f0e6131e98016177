"""The DLQ consumer: a step message that kept failing marks its run FAILED with the reason.

Only the message of the run's current position ``(step, attempt)`` fails it
(:meth:`WorkflowService.dead_letter`); a stale duplicate, a message for a run
that does not exist (its start never completed) or that already ended is
acknowledged and logged. The reason names the step, the number of receives
and what the step handler noted on the run about that position: the tool's
process died, the function's time ran out, the state is too large, or the
message kept failing with its last error.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from engine.model import StepMessage
from engine.service import DeadLetterDisposition
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
    count = record.attributes.approximate_receive_count
    result = wiring.service().dead_letter(message, int(count) if count else None)
    if result.disposition is DeadLetterDisposition.FAILED:
        assert result.error is not None
        metrics.add_metric(name="RunsFailedFromDLQ", unit=MetricUnit.Count, value=1)
        logger.error(
            "run failed from the DLQ", extra={"error": result.error.type, "reason": result.error.message}
        )
        return
    position = result.run.position if result.run is not None else None
    logger.warning(
        "DLQ message acknowledged without failing its run",
        extra={"disposition": result.disposition.value, "run_position": position},
    )


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
