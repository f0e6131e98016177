"""Plays the Lambda SQS event source mapping: receive a batch, invoke the handler, delete what succeeded.

Used by the local stack's poller (in threads, long polling) and by the tests
(draining a queue synchronously). Records reported in ``batchItemFailures``, and
all records of a batch whose invocation raised, stay in the queue: SQS makes
them visible again when their visibility timeout ends, and moves them to the
DLQ after the redrive policy's ``maxReceiveCount``, as on AWS.

Lambda refuses a mapping whose queue's visibility timeout is shorter than the
function's timeout, so on AWS a message never becomes visible again while an
invocation may still be working on it. The local stack lowers the step queue's
visibility timeout so that a failed invocation is retried soon; ``hold_seconds``
keeps that guarantee anyway: each receive hides its batch for that long (at least
the function's timeout), and once an invocation has failed its messages are made
visible again after ``retry_seconds``. Without the hold, a batch whose invocation
outlasts the queue's visibility timeout (a loaded machine) is received again by
the other pollers while it runs, each receive counts towards ``maxReceiveCount``,
and the message can reach the DLQ before any delivery got to run it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.lambda_context import LocalContext

Handler = Callable[[dict[str, Any], Any], Any]
log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    received: int
    failed: int
    error: BaseException | None = None


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda builds from ``ReceiveMessage`` results."""
    records = []
    for m in messages:
        body = m["Body"]
        records.append(
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": body,
                "attributes": dict(m.get("Attributes", {})),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody")
                or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


class EventSourceMapping:
    """One SQS queue feeding one handler."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        wait_seconds: int = 0,
        region: str = "us-east-1",
        function_name: str = "local",
        hold_seconds: int | None = None,
        retry_seconds: int | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.region = region
        self.function_name = function_name
        self.hold_seconds = hold_seconds
        """``VisibilityTimeout`` of each receive (``None``: the queue's)."""
        self.retry_seconds = retry_seconds
        """With ``hold_seconds``: a failed invocation's messages are visible again after this (``None``: at the hold's end)."""
        self.stopping = False
        """Set by the poller when it stops: a delivery that fails then was cut short, not broken."""

    def poll_once(self) -> BatchOutcome:
        """Receive up to one batch and deliver it; returns what happened."""
        hold = {} if self.hold_seconds is None else {"VisibilityTimeout": self.hold_seconds}
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            **hold,
        )
        messages = response.get("Messages", [])
        if not messages:
            return BatchOutcome(0, 0)
        return self.deliver(messages)

    def deliver(self, messages: list[dict[str, Any]]) -> BatchOutcome:
        event = sqs_event(messages, self.queue_arn, self.region)
        try:
            result = self.handler(event, LocalContext(function_name=self.function_name))
        except Exception as exc:
            if self.stopping:
                log.info(
                    "%s: %d message(s) in flight at the stop stay in the queue, delivered again on the next start",
                    self.function_name,
                    len(messages),
                )
            else:
                log.warning("handler raised on a batch of %d: %r", len(messages), exc)
            self._retry(messages)
            return BatchOutcome(len(messages), len(messages), exc)
        failed_ids = {
            item["itemIdentifier"]
            for item in (result or {}).get("batchItemFailures", [])
            if isinstance(item, dict)
        }
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return BatchOutcome(len(messages), len(failed_ids))

    def _retry(self, messages: list[dict[str, Any]]) -> None:
        """Make a failed invocation's messages visible again after ``retry_seconds`` instead of the hold."""
        if self.hold_seconds is None or self.retry_seconds is None:
            return
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            try:
                self.sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {
                            "Id": str(i),
                            "ReceiptHandle": m["ReceiptHandle"],
                            "VisibilityTimeout": self.retry_seconds,
                        }
                        for i, m in enumerate(chunk)
                    ],
                )
            except Exception as exc:  # the messages come back when the hold ends
                log.warning("could not make %d failed message(s) visible again: %r", len(chunk), exc)

    def drain(self, max_batches: int = 10_000) -> int:
        """Deliver batches until a receive comes back empty; returns how many messages were received."""
        total = 0
        for _ in range(max_batches):
            outcome = self.poll_once()
            if outcome.received == 0:
                break
            total += outcome.received
        return total
