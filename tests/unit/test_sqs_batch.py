"""functions.shared.sqs_batch: FIFO order per message group, partial failures, crashes that escape."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from functions.shared.sqs_batch import SqsRecord, process_fifo_batch
from tests.support.events import load_event

ROOT = Path(__file__).resolve().parents[2]


def batch(*records: tuple[str, str | None]) -> dict[str, Any]:
    """The sample step event with one record per ``(message id, group)``, group ``None`` for none."""
    [template] = load_event("step_sqs")["Records"]
    out = []
    for message_id, group in records:
        record = copy.deepcopy(template)
        record["messageId"] = message_id
        record["body"] = message_id
        if group is None:
            del record["attributes"]["MessageGroupId"]
        else:
            record["attributes"]["MessageGroupId"] = group
        out.append(record)
    return {"Records": out}


class Recorder:
    """A record handler that fails the message ids in ``failing`` and notes every record it ran."""

    def __init__(self, *failing: str) -> None:
        self.failing = set(failing)
        self.ran: list[str] = []

    def __call__(self, record: SqsRecord) -> None:
        self.ran.append(record.message_id)
        if record.message_id in self.failing:
            raise RuntimeError(f"{record.message_id} failed")


def failed(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_the_sample_event_reads_as_its_record() -> None:
    [raw] = load_event("step_sqs")["Records"]
    seen: list[SqsRecord] = []
    assert process_fifo_batch({"Records": [raw]}, seen.append) == {"batchItemFailures": []}
    [record] = seen
    assert record.message_id == raw["messageId"]
    assert record.body == raw["body"]
    assert record.receipt_handle == raw["receiptHandle"]
    assert record.receive_count == 1
    assert record.group_id == raw["attributes"]["MessageGroupId"]


def test_a_record_without_a_receive_count_counts_as_its_first_delivery() -> None:
    [raw] = load_event("step_sqs")["Records"]
    del raw["attributes"]["ApproximateReceiveCount"]
    assert SqsRecord(raw).receive_count == 1
    raw["attributes"]["ApproximateReceiveCount"] = "3"
    assert SqsRecord(raw).receive_count == 3
    assert SqsRecord({"messageId": "m"}).group_id is None


def test_a_failure_skips_the_rest_of_its_group_and_not_the_other_groups() -> None:
    handler = Recorder("a1")
    response = process_fifo_batch(batch(("a1", "a"), ("b1", "b"), ("a2", "a"), ("b2", "b")), handler)
    assert failed(response) == ["a1", "a2"]
    assert handler.ran == ["a1", "b1", "b2"]


def test_records_without_a_group_fail_alone() -> None:
    handler = Recorder("x")
    response = process_fifo_batch(batch(("x", None), ("y", None)), handler)
    assert failed(response) == ["x"]
    assert handler.ran == ["x", "y"]


def test_a_batch_whose_every_record_fails_is_reported_not_raised() -> None:
    handler = Recorder("a1", "b1")
    response = process_fifo_batch(batch(("a1", "a"), ("b1", "b"), ("a2", "a")), handler)
    assert failed(response) == ["a1", "b1", "a2"]
    assert handler.ran == ["a1", "b1"]


class Crash(BaseException):
    pass


def test_a_base_exception_escapes_the_batch() -> None:
    def crash(record: SqsRecord) -> None:
        raise Crash(record.message_id)

    with pytest.raises(Crash, match="a1"):
        process_fifo_batch(batch(("a1", "a"), ("b1", "b")), crash)


def test_an_event_without_records_is_refused() -> None:
    with pytest.raises(ValueError, match="no Records list"):
        process_fifo_batch({"body": "{}"}, Recorder())


def test_the_step_handler_imports_neither_the_batch_utility_nor_asyncio_nor_event_data_classes() -> None:
    code = (
        "import sys, functions.step.app\n"
        "print(sorted(m for m in sys.modules if m == 'asyncio' "
        "or m.startswith(('aws_lambda_powertools.utilities.batch', 'aws_lambda_powertools.utilities.data_classes.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
