"""The step queue on SQS: the :class:`engine.ports.StepQueue` the step handler consumes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from engine.errors import QueueUnavailableError
from engine.model import StepMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsStepQueue:
    """Sends step messages to a FIFO queue, one message group per run.

    ``MessageGroupId`` is the run id (an inline run's watchdog has a group of its
    own), so a run's steps are delivered in order and one at a time; ``MessageDeduplicationId`` is the message's position, so SQS
    drops a re-sent step within its deduplication window. FIFO queues reject a
    per-message ``DelaySeconds``: a retry's ``not_before`` travels in the body and
    the consumer defers the message itself. A standard queue gets neither id.
    A send that SQS refuses or does not answer is :class:`QueueUnavailableError`.
    """

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")

    def send(self, message: StepMessage) -> None:
        body = message.model_dump_json(exclude_none=True)
        try:
            if self.fifo:
                self.client.send_message(
                    QueueUrl=self.queue_url,
                    MessageBody=body,
                    MessageGroupId=message.group,
                    MessageDeduplicationId=message.dedup_id,
                )
            else:
                self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailableError(
                "the step queue did not take the message; nothing was started: try again",
                reason=type(exc).__name__,
            ) from exc
