"""SQS FIFO batches with partial failure responses, for the step handler.

What the step handler used of Powertools' batch utility (``SqsFifoPartialProcessor``
with ``skip_group_on_error``, entire-batch failures reported rather than raised),
without importing that package: it loads the data classes of every event source
and ``asyncio``, and builds Powertools' pydantic parser models when pydantic is
imported before it, all at every cold start, for records that are plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict


class ItemFailure(TypedDict):
    itemIdentifier: str


class BatchResponse(TypedDict):
    """What Lambda reads back from an SQS event source's handler (``ReportBatchItemFailures``)."""

    batchItemFailures: list[ItemFailure]


class SqsRecord:
    """One record of an SQS event, read by name."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    @property
    def message_id(self) -> str:
        return str(self.raw["messageId"])

    @property
    def body(self) -> str:
        return str(self.raw["body"])

    @property
    def receipt_handle(self) -> str:
        return str(self.raw["receiptHandle"])

    @property
    def receive_count(self) -> int:
        """``ApproximateReceiveCount``; 1 when the record does not carry it."""
        return int(self._attributes.get("ApproximateReceiveCount") or 1)

    @property
    def group_id(self) -> str | None:
        """The FIFO message group (``MessageGroupId``); ``None`` for a standard queue's record."""
        group = self._attributes.get("MessageGroupId")
        return None if group is None else str(group)

    @property
    def _attributes(self) -> Mapping[str, Any]:
        attributes = self.raw.get("attributes")
        return attributes if isinstance(attributes, Mapping) else {}


def process_fifo_batch(event: Mapping[str, Any], handle: Callable[[SqsRecord], object]) -> BatchResponse:
    """Run ``handle`` on each record of an SQS FIFO event, in order, and report the failed ones.

    A record whose ``handle`` raises an :class:`Exception` is reported in
    ``batchItemFailures`` (SQS delivers it again), and so is every later record of
    its message group, which is not run, so that a group's messages keep their
    order. Records of other groups still run; a record without a group fails only
    itself. A batch whose every record failed is reported the same way. A
    :class:`BaseException` that is not an :class:`Exception` propagates: the
    invocation fails and SQS delivers the whole batch again.

    Raises :class:`ValueError` for an event without a ``Records`` list.
    """
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError("not an SQS event: it has no Records list")
    failed_groups: set[str] = set()
    failures: list[ItemFailure] = []
    for raw in records:
        record = SqsRecord(raw)
        group = record.group_id
        if group is None or group not in failed_groups:
            try:
                handle(record)
                continue
            except Exception:
                if group is not None:
                    failed_groups.add(group)
        failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}
