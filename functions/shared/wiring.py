"""Wires the engine to AWS for the Lambda handlers, once per execution environment.

Nothing here runs at import: the service is built on the first request that
needs it, and each boto3 client when a request first talks to its service (a
``GET`` of a run makes no SQS, S3 or WebSocket client), all from one botocore
session: the clients are the ones boto3 makes, without importing boto3, which
loads s3transfer and its resource layer that the handlers do not use.

Configuration: the environment variables of :class:`functions.shared.settings.Settings`
(the table, bucket, queue, WebSocket endpoint, tool modules, TTL, isolation,
step timeout, memory, subscriber cap, WebSocket replay queue, scheduler group and roles, the
local stack's clock file), read once by :func:`settings`. Without the scheduler's variables
the service has no timers (a long delay is held by the step queue's consumer) and no trigger
schedules.
``AWS_ENDPOINT_URL`` is honoured by boto3 itself; the local stack points it at moto.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from engine.model import PublishResult, Run
from engine.registry import REGISTRY, load_tool_modules
from engine.runner import ForkRunner
from engine.service import WorkflowService, max_node_timeout
from functions.shared.clock import handler_clock
from functions.shared.observability import logger, metrics
from functions.shared.settings import settings as settings  # noqa: PLC0414 (re-exported: wiring.settings())

if TYPE_CHECKING:
    from engine.aws.broadcast import WebSocketBroadcaster
    from engine.aws.dynamodb import DynamoStore
    from engine.subscriptions import ReplayRequest, Subscriptions


_clients_lock = threading.Lock()


@cache
def session() -> Any:
    """The one botocore session every client comes from, made on first use.

    A session loads its configuration and data files once; a session per client
    would load them again for each.
    """
    import botocore.session

    return botocore.session.get_session()


def client(service: str, endpoint_url: str | None = None, max_pool_connections: int | None = None) -> Any:
    """One boto3 client per service (and endpoint) per execution environment.

    ``max_pool_connections`` raises botocore's default of 10 HTTP connections for a
    client that several threads share. Made under a lock: a botocore session is not
    safe for threads that create clients at once.
    """
    return _client(service, endpoint_url, max_pool_connections)


@cache
def _client(service: str, endpoint_url: str | None, max_pool_connections: int | None) -> Any:
    """:func:`client`, cached on all three arguments however they were passed."""
    from botocore.config import Config

    config = Config(max_pool_connections=max_pool_connections) if max_pool_connections else None
    with _clients_lock:
        return session().create_client(service, endpoint_url=endpoint_url, config=config)


class LazyClient:
    """Stands for ``client(service, endpoint_url, ...)``, which it makes when an attribute is first asked for."""

    __slots__ = ("_endpoint_url", "_max_pool_connections", "_service")

    def __init__(
        self, service: str, endpoint_url: str | None = None, max_pool_connections: int | None = None
    ) -> None:
        self._service = service
        self._endpoint_url = endpoint_url
        self._max_pool_connections = max_pool_connections

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self._service, self._endpoint_url, self._max_pool_connections), name)


@cache
def store() -> DynamoStore:
    """The DynamoDB store: graphs, runs, logs and WebSocket connections, large values in S3."""
    from engine.aws.dynamodb import DynamoStore
    from engine.aws.s3 import S3BlobStore

    config = settings()
    blobs = S3BlobStore(LazyClient("s3"), config.blob_bucket) if config.blob_bucket else None  # type: ignore[arg-type]
    return DynamoStore(
        client("dynamodb"),
        config.table_name,
        blobs=blobs,
        ttl_days=config.ttl_days,
        max_subscribers=config.max_subscribers,
    )


def broadcaster(endpoint: str) -> WebSocketBroadcaster:
    """The WebSocket broadcaster posting through the management API at ``endpoint``."""
    from engine.aws.broadcast import POST_WORKERS, WebSocketBroadcaster

    return WebSocketBroadcaster(
        LazyClient("apigatewaymanagementapi", endpoint, POST_WORKERS),
        store(),
        store(),
        on_result=report_publish,
    )


def subscriptions(endpoint: str) -> Subscriptions:
    """The subscription use case on the store, posting through the management API at ``endpoint``."""
    from engine.subscriptions import Subscriptions

    return Subscriptions(store(), store(), broadcaster(endpoint), max_subscribers=settings().max_subscribers)


def send_replay(request: ReplayRequest) -> None:
    """Queue a ``$connect`` subscription on ``WS_REPLAY_QUEUE_URL`` (the queue delays it)."""
    queue_url = settings().replay_queue_url
    if queue_url is None:
        raise RuntimeError("WS_REPLAY_QUEUE_URL is not set: a $connect with ?run_id= cannot be served")
    client("sqs").send_message(QueueUrl=queue_url, MessageBody=request.model_dump_json())


def report_publish(result: PublishResult) -> None:
    """Log a publish that lost subscribers and count them (``WebSocketPostsFailed``, ``WebSocketSubscribersGone``)."""
    if result.failed:
        metrics.add_metric(name="WebSocketPostsFailed", unit=MetricUnit.Count, value=result.failed)
    if result.gone:
        metrics.add_metric(name="WebSocketSubscribersGone", unit=MetricUnit.Count, value=result.gone)
    if result.failed or result.gone:
        logger.warning(
            "live frames not delivered to every subscriber",
            extra={"posted": result.posted, "gone": result.gone, "failed": result.failed},
        )


@cache
def service() -> WorkflowService:
    """The service on DynamoDB, SQS, S3 and the WebSocket broadcaster, built on first use."""
    from engine.aws.sqs import SqsStepQueue

    config = settings()
    load_tool_modules(config.tool_modules)
    step_timeout = config.step_function_timeout_seconds
    timers = triggers = None
    if config.timers_configured or config.triggers_configured:
        from engine.aws.scheduler import SchedulerTimers, SchedulerTriggers

        scheduler = LazyClient("scheduler")
        group = str(config.scheduler_group)
        if config.timers_configured:
            timers = SchedulerTimers(
                scheduler,  # type: ignore[arg-type]
                group,
                str(config.step_queue_arn),
                str(config.scheduler_role_arn),
            )
        if config.triggers_configured:
            triggers = SchedulerTriggers(
                scheduler,  # type: ignore[arg-type]
                group,
                str(config.trigger_function_arn),
                str(config.trigger_role_arn),
            )
    return WorkflowService(
        graphs=store(),
        runs=store(),
        queue=SqsStepQueue(LazyClient("sqs"), config.step_queue_url),  # type: ignore[arg-type]
        registry=REGISTRY,
        sink=broadcaster(config.ws_endpoint) if config.ws_endpoint else None,
        isolated_runner=ForkRunner(function_memory_mb=config.function_memory_mb),
        max_node_timeout_seconds=max_node_timeout(step_timeout) if step_timeout else None,
        on_publish_error=publish_failed,
        clock=handler_clock(config.local_clock_file),
        timers=timers,
        triggers=triggers,
    )


def publish_failed(run: Run, exc: Exception) -> None:
    """Log and count a failed post to a run's subscribers; the step it follows stays committed."""
    logger.warning(
        "could not publish log records to subscribers",
        extra={"run_id": run.run_id, "error": f"{type(exc).__name__}: {exc}"},
    )
    metrics.add_metric(name="PublishFailed", unit=MetricUnit.Count, value=1)


def reset() -> None:
    """Forget cached settings, session, clients, store and service (tests change the environment between cases)."""
    settings.cache_clear()
    session.cache_clear()
    _client.cache_clear()
    store.cache_clear()
    service.cache_clear()
