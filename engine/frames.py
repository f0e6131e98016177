"""WebSocket frames: how log records travel to subscribers, each frame under API Gateway's 32 KB.

Frames are JSON objects with a ``type``:

* ``{"type": "subscribed", "run_id", "after", "status"}``: the first frame of a
  subscription, before any ``records`` frame of it (see :mod:`engine.subscriptions`).
* ``{"type": "replayed", "run_id", "live_from", "status"}``: the backlog (records
  ``after < seq < live_from``) is sent; records with ``seq >= live_from`` arrive live.
* ``{"type": "records", "run_id", "records": [...]}``: log records in ``seq`` order.
* ``{"type": "error", "code", "message"}``: a request the server could not serve.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from engine.model import LogRecord

FRAME_LIMIT = 32 * 1024
_BUDGET = FRAME_LIMIT - 512


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def record_json(record: LogRecord) -> str:
    """A record as compact JSON, its ``data`` dropped if the record alone would not fit a frame."""
    text = record.model_dump_json(exclude_none=True)
    if len(text.encode()) > _BUDGET:
        text = record.model_copy(update={"data": {"truncated": True}}).model_dump_json(exclude_none=True)
    return text


def record_frames(run_id: str, records: Iterable[LogRecord]) -> Iterator[str]:
    """Pack records into as few ``records`` frames as fit under :data:`FRAME_LIMIT` bytes each."""
    head = f'{{"type":"records","run_id":{_dumps(run_id)},"records":['
    parts: list[str] = []
    size = len(head.encode()) + 2
    for record in records:
        text = record_json(record)
        length = len(text.encode()) + 1
        if parts and size + length > _BUDGET:
            yield head + ",".join(parts) + "]}"
            parts, size = [], len(head.encode()) + 2
        parts.append(text)
        size += length
    if parts:
        yield head + ",".join(parts) + "]}"


def control_frame(type_: str, **fields: Any) -> str:
    return _dumps({"type": type_, **fields})


def error_frame(code: str, message: str) -> str:
    return control_frame("error", code=code, message=message)
