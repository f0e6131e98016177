"""Powertools Logger, Metrics and Tracer shared by the handlers.

The Tracer imports the X-Ray SDK when it is created, which alone costs more
than ``import boto3``. It is created only when tracing is on
(``POWERTOOLS_TRACE_DISABLED`` is not ``true``; the template's ``EnableTracing``
parameter sets it). When tracing is off, ``tracer`` is :class:`TracingOff`,
whose decorators return the function unchanged, so a cold start does not load
a tracer that would record nothing.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "graphflow"))


class TracingOff:
    """The Tracer's decorators as no-ops, for when tracing is disabled."""

    def capture_lambda_handler(self, func: Any = None, **options: Any) -> Any:
        return func if func is not None else (lambda f: f)

    def capture_method(self, func: Any = None, **options: Any) -> Any:
        return func if func is not None else (lambda f: f)

    def put_annotation(self, key: str, value: Any) -> None:
        """Annotations are dropped when tracing is off."""


def tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() not in ("true", "1")


def _tracer() -> Any:
    if not tracing_enabled():
        return TracingOff()
    from aws_lambda_powertools import Tracer

    return Tracer()


tracer = _tracer()
