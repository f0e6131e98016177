"""Wires the engine to AWS for the Lambda handlers, once per execution environment.

Nothing here runs at import: the service is built on the first request that
needs it, and each boto3 client when a request first talks to its service (a
``GET`` of a run makes no SQS, S3 or WebSocket client), all from one session.

Configuration (environment):

* ``TABLE_NAME``: the DynamoDB table (graphs, runs, logs, connections).
* ``BLOB_BUCKET``: S3 bucket for state values too large for a DynamoDB item.
* ``STEP_QUEUE_URL``: the FIFO step queue.
* ``WS_MANAGEMENT_ENDPOINT``: the API Gateway management endpoint
  (``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}``) used to
  post log records to WebSocket subscribers; no subscribers are served without it.
* ``WORKFLOW_TOOL_MODULES``: comma-separated modules that register tools
  (default ``engine.tools.dq``).
* ``RUN_TTL_DAYS``: days a finished run and its log are kept (default 30).
* ``AWS_ENDPOINT_URL``: honoured by boto3 itself; the local stack points it at moto.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from engine.registry import DEFAULT_TOOL_MODULES, REGISTRY, load_tool_modules
from engine.service import WorkflowService

if TYPE_CHECKING:
    from engine.aws.broadcast import WebSocketBroadcaster
    from engine.aws.dynamodb import DynamoStore


@dataclass(frozen=True)
class Settings:
    table_name: str
    blob_bucket: str | None
    step_queue_url: str
    ws_endpoint: str | None
    tool_modules: tuple[str, ...]
    ttl_days: float

    @classmethod
    def from_env(cls) -> Settings:
        modules = os.environ.get("WORKFLOW_TOOL_MODULES")
        return cls(
            table_name=os.environ["TABLE_NAME"],
            blob_bucket=os.environ.get("BLOB_BUCKET") or None,
            step_queue_url=os.environ["STEP_QUEUE_URL"],
            ws_endpoint=os.environ.get("WS_MANAGEMENT_ENDPOINT") or None,
            tool_modules=tuple(m for m in modules.split(",") if m.strip())
            if modules
            else DEFAULT_TOOL_MODULES,
            ttl_days=float(os.environ.get("RUN_TTL_DAYS", "30")),
        )


_clients_lock = threading.Lock()


@cache
def session() -> Any:
    """The one boto3 session every client comes from, made on first use.

    A session loads its configuration and data files once; a session per client
    would load them again for each.
    """
    import boto3

    return boto3.session.Session()


@cache
def client(service: str, endpoint_url: str | None = None) -> Any:
    """One boto3 client per service (and endpoint) per execution environment.

    Made under a lock: a boto3 session is not safe for threads that create clients at once.
    """
    with _clients_lock:
        return session().client(service, endpoint_url=endpoint_url)


class LazyClient:
    """Stands for ``client(service, endpoint_url)``, which it makes when an attribute is first asked for."""

    __slots__ = ("_endpoint_url", "_service")

    def __init__(self, service: str, endpoint_url: str | None = None) -> None:
        self._service = service
        self._endpoint_url = endpoint_url

    def __getattr__(self, name: str) -> Any:
        return getattr(client(self._service, self._endpoint_url), name)


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def store() -> DynamoStore:
    """The DynamoDB store: graphs, runs, logs and WebSocket connections, large values in S3."""
    from engine.aws.dynamodb import DynamoStore
    from engine.aws.s3 import S3BlobStore

    config = settings()
    blobs = S3BlobStore(LazyClient("s3"), config.blob_bucket) if config.blob_bucket else None  # type: ignore[arg-type]
    return DynamoStore(client("dynamodb"), config.table_name, blobs=blobs, ttl_days=config.ttl_days)


def broadcaster(endpoint: str) -> WebSocketBroadcaster:
    """The WebSocket broadcaster posting through the management API at ``endpoint``."""
    from engine.aws.broadcast import WebSocketBroadcaster

    return WebSocketBroadcaster(LazyClient("apigatewaymanagementapi", endpoint), store(), store())


@cache
def service() -> WorkflowService:
    """The service on DynamoDB, SQS, S3 and the WebSocket broadcaster, built on first use."""
    from engine.aws.sqs import SqsStepQueue

    config = settings()
    load_tool_modules(config.tool_modules)
    return WorkflowService(
        graphs=store(),
        runs=store(),
        queue=SqsStepQueue(LazyClient("sqs"), config.step_queue_url),  # type: ignore[arg-type]
        registry=REGISTRY,
        sink=broadcaster(config.ws_endpoint) if config.ws_endpoint else None,
    )


def reset() -> None:
    """Forget cached settings, session, clients, store and service (tests change the environment between cases)."""
    settings.cache_clear()
    session.cache_clear()
    client.cache_clear()
    store.cache_clear()
    service.cache_clear()
