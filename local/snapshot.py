"""What the local stack keeps between runs: DynamoDB items, SQS messages, S3 objects and schedules, as one JSON file.

Runs inside the moto server process (:mod:`local.moto_server` serves
``POST /_local/snapshot`` and ``POST /_local/restore``), where it reads and
writes moto's backends directly, with no other request running: a snapshot is
one consistent moment of the three services, and it includes the SQS messages
that a poller has received but not deleted (invisible ones), which no API can
list.

The file (``snapshot.json`` in the data folder) holds::

    {"format": "graphflow-local-stack", "version": 1, "saved_at": "2026-12-01T20:00:00+00:00",
     "dynamodb": {"<table>": [<item in DynamoDB JSON: {"pk": {"S": "..."}, ...}>, ...]},
     "sqs": {"<queue name>": [{"body": "...", "group_id": "...", "deduplication_id": "...",
                               "message_attributes": {...}, "receive_count": 1}, ...]},
     "s3": {"<bucket>": [{"key": "...", "body_base64": "..."}, ...]},
     "scheduler": {"<schedule group>": [{"name": "...", "schedule_expression": "at(...)", "target": {...}, ...}]}}

Restoring puts every item, message and object back into the table, queue or
bucket of the same name, which the stack has created from ``template.yaml``
beforehand (the schema comes from the template, the data from the file). Every
message is visible again at once, in the order it was sent, whatever its
visibility was: a step that was being executed when the stack stopped is
delivered again, as SQS does when a consumer dies. Receive counts are kept, so a
message still reaches the dead-letter queue after ``maxReceiveCount`` deliveries
in all. Schedules (timers, graph triggers) go back into their schedule group.
Data of a table, queue, bucket or group that does not exist is skipped.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT = "graphflow-local-stack"
VERSION = 1
FILE_NAME = "snapshot.json"
REGION = "us-east-1"


def _backends(region: str) -> tuple[Any, Any, Any]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.s3.models import s3_backends
    from moto.sqs.models import sqs_backends

    return (
        dynamodb_backends[DEFAULT_ACCOUNT_ID][region],
        sqs_backends[DEFAULT_ACCOUNT_ID][region],
        s3_backends[DEFAULT_ACCOUNT_ID]["aws"],
    )


def _scheduler(region: str) -> Any:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.scheduler.models import scheduler_backends

    return scheduler_backends[DEFAULT_ACCOUNT_ID][region]


_SCHEDULE_FIELDS = (
    "description",
    "schedule_expression",
    "schedule_expression_timezone",
    "flexible_time_window",
    "target",
    "state",
    "start_date",
    "end_date",
    "action_after_completion",
)


def dump(region: str = REGION) -> dict[str, Any]:
    """The document of every table's items, every queue's messages and every bucket's objects."""
    dynamodb, sqs, s3 = _backends(region)
    tables = {
        name: [item.to_json()["Attributes"] for item in table.all_items()]
        for name, table in dynamodb.tables.items()
    }
    queues = {
        name: [
            {
                "body": message.body,
                "group_id": message.group_id,
                "deduplication_id": message.deduplication_id,
                "message_attributes": message.message_attributes or {},
                "receive_count": message.approximate_receive_count,
            }
            for message in queue._messages
        ]
        for name, queue in sqs.queues.items()
    }
    buckets = {
        name: [
            {"key": key, "body_base64": base64.b64encode(obj.value).decode("ascii")}
            for key, obj in bucket.keys.items()
            if obj is not None and hasattr(obj, "value")
        ]
        for name, bucket in s3.buckets.items()
    }
    schedules = {
        name: [
            {"name": schedule.name, **{field: getattr(schedule, field) for field in _SCHEDULE_FIELDS}}
            for schedule in group.schedules.values()
        ]
        for name, group in _scheduler(region).schedule_groups.items()
        if group.schedules
    }
    return {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dynamodb": tables,
        "sqs": queues,
        "s3": buckets,
        "scheduler": schedules,
    }


def load(document: dict[str, Any], region: str = REGION) -> dict[str, int]:
    """Put a :func:`dump` document back into the existing tables, queues and buckets; returns the counts."""
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ValueError(f"not a {FORMAT} snapshot of version {VERSION}")
    dynamodb, sqs, s3 = _backends(region)
    counts = {"items": 0, "messages": 0, "objects": 0, "skipped": 0}
    for name, items in document.get("dynamodb", {}).items():
        table = dynamodb.tables.get(name)
        if table is None:
            counts["skipped"] += len(items)
            continue
        for item in items:
            table.put_item(item)
            counts["items"] += 1
    for name, messages in document.get("sqs", {}).items():
        if name not in sqs.queues:
            counts["skipped"] += len(messages)
            continue
        for saved in messages:
            message = sqs.send_message(
                name,
                saved["body"],
                message_attributes=saved.get("message_attributes") or None,
                deduplication_id=saved.get("deduplication_id"),
                group_id=saved.get("group_id"),
                validate_group_id=False,
            )
            message.approximate_receive_count = int(saved.get("receive_count") or 0)
            counts["messages"] += 1
    for name, objects in document.get("s3", {}).items():
        if name not in s3.buckets:
            counts["skipped"] += len(objects)
            continue
        for obj in objects:
            s3.put_object(name, obj["key"], base64.b64decode(obj["body_base64"]))
            counts["objects"] += 1
    scheduler = _scheduler(region)
    counts["schedules"] = 0
    for name, saved_schedules in document.get("scheduler", {}).items():
        if name not in scheduler.schedule_groups:
            counts["skipped"] += len(saved_schedules)
            continue
        for saved in saved_schedules:
            scheduler.create_schedule(
                group_name=name,
                name=saved["name"],
                kms_key_arn=None,
                **{field: saved.get(field) for field in _SCHEDULE_FIELDS},
            )
            counts["schedules"] += 1
    return counts


def write(document: dict[str, Any], path: Path) -> None:
    """Write ``document`` to ``path`` atomically (a reader sees the old file or the new one, whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with partial.open("w") as fh:
        json.dump(document, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)


def read(path: Path) -> dict[str, Any] | None:
    """The document at ``path``, or ``None`` if there is none."""
    try:
        with path.open() as fh:
            document: dict[str, Any] = json.load(fh)
    except FileNotFoundError:
        return None
    return document
