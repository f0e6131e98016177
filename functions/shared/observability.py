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
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from aws_lambda_powertools import Logger, Metrics

F = TypeVar("F", bound=Callable[..., Any])

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "graphflow"))


class TracingOff:
    """The Tracer's decorators as no-ops, for when tracing is disabled."""

    @overload
    def capture_lambda_handler(self, func: F) -> F: ...
    @overload
    def capture_lambda_handler(self, func: None = None, **options: Any) -> Callable[[F], F]: ...
    def capture_lambda_handler(self, func: Any = None, **options: Any) -> Any:
        return func if func is not None else _unchanged

    @overload
    def capture_method(self, func: F) -> F: ...
    @overload
    def capture_method(self, func: None = None, **options: Any) -> Callable[[F], F]: ...
    def capture_method(self, func: Any = None, **options: Any) -> Any:
        return func if func is not None else _unchanged

    def put_annotation(self, key: str, value: Any) -> None:
        """Annotations are dropped when tracing is off."""


def _unchanged(func: F) -> F:
    return func


def tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() not in ("true", "1")


def _tracer() -> TracingOff:
    """The Powertools Tracer when tracing is on, typed as the decorators the handlers use."""
    if not tracing_enabled():
        return TracingOff()
    from aws_lambda_powertools import Tracer

    return cast(TracingOff, Tracer())


tracer = _tracer()
