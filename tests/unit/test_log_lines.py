"""The local stack's short log lines: handler records as text, and one line per HTTP request."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from functions.shared.log_lines import text_line
from local.request_log import RequestLog, request_line

EVENTS = Path(__file__).resolve().parents[2] / "events"

STEP_RECORD = {
    "level": "INFO",
    "location": "handle_record:93",
    "message": "step handled",
    "timestamp": "2026-12-01 20:09:05,123+0000",
    "service": "graphflow",
    "cold_start": False,
    "function_name": "graphflow-step",
    "function_memory_size": 512,
    "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:graphflow-step",
    "function_request_id": "8bfc202c-abe3-4df8-b4e9-111d148146e8",
    "run_id": "76a69ae5d03a46eabb9b4e3a901faa44",
    "step": 3,
    "attempt": 1,
    "node": "profile",
    "disposition": "committed",
    "duration_ms": 12.4,
    "status": "RUNNING",
}


def test_a_step_record_is_one_short_line() -> None:
    line = text_line(STEP_RECORD)
    assert line == "20:09:05 step  76a69ae5 #3 profile committed 12ms status=RUNNING"
    assert len(line) < 80 < len(json.dumps(STEP_RECORD))


def test_a_warning_keeps_its_level_message_and_retry_attempt() -> None:
    record = {**STEP_RECORD, "level": "WARNING", "message": "no run for this step message yet", "attempt": 2}
    for key in ("node", "disposition", "duration_ms", "status"):
        del record[key]
    assert (
        text_line(record) == "20:09:05 step  WARNING 76a69ae5 #3 attempt 2 no run for this step message yet"
    )


def test_an_exception_follows_its_line() -> None:
    record = {
        "level": "ERROR",
        "message": "unhandled error",
        "timestamp": "2026-12-01 20:09:05,1+0000",
        "function_name": "graphflow-api",
        "exception": "Traceback ...\nValueError: x",
    }
    assert text_line(record) == "20:09:05 api   ERROR unhandled error\nTraceback ...\nValueError: x"


def test_the_request_line_has_method_path_status_and_duration() -> None:
    event: dict[str, Any] = json.loads((EVENTS / "api_list_graphs.json").read_text())
    out = io.StringIO()
    handler = RequestLog(lambda event, context: {"statusCode": 200, "body": "{}"}, out)
    assert handler(event, None)["statusCode"] == 200
    line = out.getvalue()
    method = event["requestContext"]["http"]["method"]
    assert re.fullmatch(rf"\d\d:\d\d:\d\d http  {method} {re.escape(event['rawPath'])}\S* 200 \d+ms\n", line)


def test_a_handler_that_raises_is_logged_as_500() -> None:
    out = io.StringIO()

    def broken(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("boom")

    handler = RequestLog(broken, out)
    with pytest.raises(RuntimeError):
        handler({"rawPath": "/graphs", "requestContext": {"http": {"method": "POST"}}}, None)
    assert out.getvalue().split()[1:5] == ["http", "POST", "/graphs", "500"]
    assert request_line({"rawPath": "/runs", "rawQueryString": "limit=2"}, 200, 3).endswith(
        "? /runs?limit=2 200 3ms"
    )
