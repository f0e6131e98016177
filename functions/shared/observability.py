"""Powertools Logger, Metrics and Tracer shared by the handlers.

The Tracer imports the X-Ray SDK when it is created, which alone costs more
than ``import boto3``. It is created only when tracing is on
(``POWERTOOLS_TRACE_DISABLED`` is not ``true``; the template's ``EnableTracing``
parameter sets it). When tracing is off, ``tracer`` is :class:`TracingOff`,
whose decorators return the function unchanged, so a cold start does not load
a tracer that would record nothing.

``metrics`` publishes at the end of an invocation only when the invocation
added a metric: one that had nothing to count (a stale step message, a DLQ
drop) prints nothing, where Powertools would warn ``No application metrics to
publish``.

``logger`` writes Powertools' JSON lines, or one short line of text per record
when ``GRAPHFLOW_LOG_FORMAT`` is ``text`` (:mod:`functions.shared.log_lines`).

These variables (:class:`functions.shared.environment.ObservabilitySettings`) are
read once, at import, where the three objects are made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from functions.shared import log_lines
from functions.shared.environment import ObservabilitySettings

F = TypeVar("F", bound=Callable[..., Any])


class PublishWhenAdded(AmazonCloudWatchEMFProvider):
    """The EMF provider, publishing only when metrics were added (an empty flush just clears metadata)."""

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        if self.metric_set or raise_on_empty_metrics:
            super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)
        else:
            self.clear_metrics()


def _metrics(namespace: str) -> Metrics:
    """Powertools ``Metrics`` on :class:`PublishWhenAdded`, sharing the sets every ``Metrics`` shares."""
    provider = PublishWhenAdded(
        namespace=namespace,
        metric_set=Metrics._metrics,
        dimension_set=Metrics._dimensions,
        metadata_set=Metrics._metadata,
        default_dimensions=Metrics._default_dimensions,
    )
    return Metrics(namespace=namespace, provider=provider)


def _logger() -> Logger:
    if _settings.log_format == "text":
        return Logger(json_serializer=log_lines.text_line)
    return Logger()


_settings = ObservabilitySettings.from_env()
logger = _logger()
metrics = _metrics(_settings.metrics_namespace)


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
    return not _settings.trace_disabled


def _tracer() -> TracingOff:
    """The Powertools Tracer when tracing is on, typed as the decorators the handlers use."""
    if not tracing_enabled():
        return TracingOff()
    from aws_lambda_powertools import Tracer

    return cast(TracingOff, Tracer())


tracer = _tracer()
