"""``make dev``'s line per HTTP request: ``20:01:02 http  POST /runs 202 15ms``.

:class:`RequestLog` wraps the HTTP API's handler as the gateway calls it, so
the line gives the status the handler answered and the time it took (the
invocation, as API Gateway's integration latency would).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

Handler = Callable[[dict[str, Any], Any], Any]


def request_line(event: dict[str, Any], status: int | str, milliseconds: float) -> str:
    """The line for one HTTP API event: time (UTC), method, path with its query, status, duration."""
    method = event.get("requestContext", {}).get("http", {}).get("method", "?")
    path = str(event.get("rawPath", "/"))
    if event.get("rawQueryString"):
        path += f"?{event['rawQueryString']}"
    return f"{datetime.now(UTC):%H:%M:%S} http  {method} {path} {status} {milliseconds:.0f}ms"


class RequestLog:
    """An HTTP API handler that prints :func:`request_line` for each invocation to ``out``."""

    def __init__(self, handler: Handler, out: TextIO | None = None) -> None:
        self.handler = handler
        self.out = out
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any = None) -> Any:
        started = time.monotonic()
        status: int | str = 500
        try:
            result = self.handler(event, context)
            status = result.get("statusCode", 200) if isinstance(result, dict) else 200
            return result
        finally:
            line = request_line(event, status, (time.monotonic() - started) * 1000)
            out = self.out or sys.stdout
            with self._lock:
                print(line, file=out, flush=True)
