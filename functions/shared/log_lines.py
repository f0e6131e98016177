"""One short line per log record, for people: ``GRAPHFLOW_LOG_FORMAT=text`` (the local stack's default).

Deployed, the handlers log Powertools' JSON, one object per line, which is what
CloudWatch Logs Insights queries. :func:`text_line` is a ``json_serializer``
for Powertools' ``Logger`` that renders the same record as::

    20:01:02 step  3f2a9c1d #3 profile committed 12ms
    20:01:03 api   WARNING no run for this step message yet  run 3f2a9c1d

the time, the function (without the stack's ``graphflow-`` prefix), the level
unless INFO, then the run's short id, step, node, disposition and duration when
the record has them, the message, and the other keys the handler added.
"""

from __future__ import annotations

from typing import Any

FORMAT_VARIABLE = "GRAPHFLOW_LOG_FORMAT"
CONTEXT_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "correlation_id",
        "sampling_rate",
        "exception",
        "exception_name",
        "exception_notes",
        "stack_trace",
    }
)
HEAD_KEYS = ("run_id", "step", "attempt", "node", "disposition", "duration_ms")
SUMMARY_MESSAGES = frozenset({"step handled"})
"""Messages that the head of the line says in full: left out of it."""


def text_line(log: dict[str, Any]) -> str:
    """A Powertools log record (the dict it would serialise) as one line of text, plus its exception if any."""
    when = str(log.get("timestamp", ""))[11:19]
    function = str(log.get("function_name") or log.get("service") or "").removeprefix("graphflow-")
    parts = [when, f"{function:<5}"]
    level = str(log.get("level", "INFO"))
    if level != "INFO":
        parts.append(level)
    parts.extend(_head(log))
    message = str(log.get("message", ""))
    if message not in SUMMARY_MESSAGES or len(parts) == 2:
        parts.append(message)
    rest = {k: v for k, v in log.items() if k not in CONTEXT_KEYS and k not in HEAD_KEYS}
    parts.extend(f"{key}={value}" for key, value in rest.items())
    line = " ".join(part for part in parts if part)
    if log.get("exception"):
        line += "\n" + str(log["exception"])
    return line


def _head(log: dict[str, Any]) -> list[str]:
    head: list[str] = []
    if log.get("run_id"):
        head.append(str(log["run_id"])[:8])
    if log.get("step") is not None:
        head.append(f"#{log['step']}")
    if log.get("attempt") not in (None, 1):
        head.append(f"attempt {log['attempt']}")
    for key in ("node", "disposition"):
        if log.get(key):
            head.append(str(log[key]))
    if isinstance(log.get("duration_ms"), int | float):
        head.append(f"{log['duration_ms']:.0f}ms")
    return head
