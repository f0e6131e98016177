from __future__ import annotations

import json

from engine.frames import FRAME_LIMIT, error_frame, record_frames, record_json
from engine.model import LogRecord, LogType


def record(seq: int, message: str = "m", data: dict[str, object] | None = None) -> LogRecord:
    return LogRecord(
        run_id="r", seq=seq, ts=1.5, type=LogType.STEP_SUCCEEDED, step=seq, message=message, data=data
    )


def test_frames_stay_under_the_limit_and_keep_order() -> None:
    records = [record(i, "x" * 400) for i in range(500)]
    frames = list(record_frames("r", records))
    assert len(frames) > 1
    assert all(len(f.encode()) <= FRAME_LIMIT for f in frames)
    decoded = [json.loads(f) for f in frames]
    assert all(f["type"] == "records" and f["run_id"] == "r" for f in decoded)
    assert [r["seq"] for f in decoded for r in f["records"]] == list(range(500))


def test_a_record_too_large_for_a_frame_loses_its_data_not_its_place() -> None:
    huge = record(7, data={"blob": "y" * (FRAME_LIMIT * 2)})
    [frame] = list(record_frames("r", [huge]))
    assert len(frame.encode()) <= FRAME_LIMIT
    assert json.loads(frame)["records"][0] == {**json.loads(record_json(huge)), "data": {"truncated": True}}


def test_no_records_no_frames() -> None:
    assert list(record_frames("r", [])) == []


def test_error_frame() -> None:
    assert json.loads(error_frame("c", "m")) == {"type": "error", "code": "c", "message": "m"}
