"""Posts committed log records to a run's WebSocket subscribers through the API Gateway management API.

Publishing is best effort and never raises: the step that produced the records
has already committed them, and a subscriber that misses a live frame reads it
back over HTTP or by subscribing again with ``after``. A 410 ``GoneException``
unsubscribes the connection; any other failure (throttling, 5xx, a connection
error) is logged and counted in the :class:`PublishResult`.

Subscribers are posted to concurrently, on one thread pool per process
(:data:`POST_WORKERS` threads, created on first use); all the frames of one
connection are posted in order by one worker, and :meth:`WebSocketBroadcaster.publish`
returns only once every post is done, so a connection's frames never overtake
each other across publishes either.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from functools import cache
from typing import Any

from engine.frames import record_frames
from engine.model import LogRecord, PublishResult, Run
from engine.ports import ConnectionStore, RunStore

POST_WORKERS = 16

log = logging.getLogger(__name__)

_pool_lock = threading.Lock()


def post_pool() -> ThreadPoolExecutor:
    """The process's thread pool for posts, created on first use (boto3 clients are thread-safe)."""
    with _pool_lock:
        return _new_pool()


@cache
def _new_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=POST_WORKERS, thread_name_prefix="ws-post")


class Delivery(Enum):
    POSTED = "posted"
    GONE = "gone"
    FAILED = "failed"


class WebSocketBroadcaster:
    """A :class:`engine.ports.ConnectionSink` for API Gateway WebSocket connections.

    Args:
        client: a boto3 ``apigatewaymanagementapi`` client bound to the stage's endpoint.
        runs: where subscriptions live; a connection that is gone is unsubscribed.
        connections: the connection-to-runs index, cleaned for a connection that is gone.
        on_result: called with each publish's :class:`PublishResult` (the handlers log it and
            turn it into metrics; the engine does not depend on Powertools).
    """

    def __init__(
        self,
        client: Any,
        runs: RunStore,
        connections: ConnectionStore,
        *,
        on_result: Callable[[PublishResult], None] | None = None,
    ) -> None:
        self.client = client
        self.runs = runs
        self.connections = connections
        self.on_result = on_result

    def publish(self, run: Run, records: list[LogRecord]) -> PublishResult:
        """Post the records to every subscriber of ``run``; never raises for a failed post."""
        frames = list(record_frames(run.run_id, records))
        subscribers = list(dict.fromkeys(run.subscribers))
        if len(subscribers) <= 1:
            outcomes = [self._deliver(c, frames, run.run_id) for c in subscribers]
        else:
            pool = post_pool()
            outcomes = list(pool.map(lambda c: self._deliver(c, frames, run.run_id), subscribers))
        result = PublishResult(
            posted=outcomes.count(Delivery.POSTED),
            gone=outcomes.count(Delivery.GONE),
            failed=outcomes.count(Delivery.FAILED),
        )
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _deliver(self, connection_id: str, frames: list[str], run_id: str) -> Delivery:
        try:
            return Delivery.POSTED if self.post(connection_id, frames, run_id=run_id) else Delivery.GONE
        except Exception as exc:  # a failed post must not fail the step that committed the records
            log.warning(
                "post to connection %s of run %s failed: %s",
                connection_id,
                run_id,
                _describe(exc),
                extra={"connection_id": connection_id, "run_id": run_id},
            )
            return Delivery.FAILED

    def post(self, connection_id: str, frames: Iterable[str], *, run_id: str | None = None) -> bool:
        """Send frames to one connection, in order; ``False`` (and the connection forgotten) if it is gone.

        Any other failure raises (``publish`` counts it instead).
        """
        gone = self.client.exceptions.GoneException
        try:
            for frame in frames:
                self.client.post_to_connection(ConnectionId=connection_id, Data=frame.encode())
        except gone:
            try:
                self.forget(connection_id, run_id)
            except Exception as exc:  # the subscription stays; the next post finds it gone again
                log.warning("could not unsubscribe gone connection %s: %s", connection_id, _describe(exc))
            return False
        return True

    def connected(self, connection_id: str) -> bool:
        """Whether API Gateway knows the connection (``GET @connections/{id}``); gone (410) is ``False``.

        API Gateway answers gone for a connection whose ``$connect`` has not returned yet.
        Any other failure raises.
        """
        try:
            self.client.get_connection(ConnectionId=connection_id)
        except self.client.exceptions.GoneException:
            return False
        return True

    def forget(self, connection_id: str, run_id: str | None = None) -> None:
        """Unsubscribe a connection from every run it followed and drop its index entries."""
        run_ids = set(self.connections.runs_of(connection_id))
        if run_id is not None:
            run_ids.add(run_id)
        for followed in run_ids:
            self.runs.remove_subscriber(followed, connection_id)
        self.connections.remove_connection(connection_id)


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{error.get('Code', type(exc).__name__)} (HTTP {status}): {error.get('Message', exc)}"
    return f"{type(exc).__name__}: {exc}"
