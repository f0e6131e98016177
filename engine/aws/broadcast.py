"""Posts committed log records to a run's WebSocket subscribers through the API Gateway management API."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.frames import record_frames
from engine.model import LogRecord, Run
from engine.ports import ConnectionStore, RunStore


class WebSocketBroadcaster:
    """A :class:`engine.ports.LogSink` for API Gateway WebSocket connections.

    Args:
        client: a boto3 ``apigatewaymanagementapi`` client bound to the stage's endpoint.
        runs: where subscriptions live; a connection that is gone is unsubscribed.
        connections: the connection-to-runs index, cleaned for a connection that is gone.
    """

    def __init__(self, client: Any, runs: RunStore, connections: ConnectionStore) -> None:
        self.client = client
        self.runs = runs
        self.connections = connections

    def publish(self, run: Run, records: list[LogRecord]) -> None:
        frames = list(record_frames(run.run_id, records))
        for connection_id in run.subscribers:
            self.post(connection_id, frames, run_id=run.run_id)

    def post(self, connection_id: str, frames: Iterable[str], *, run_id: str | None = None) -> bool:
        """Send frames to one connection; ``False`` (and the connection forgotten) if it is gone."""
        gone = self.client.exceptions.GoneException
        try:
            for frame in frames:
                self.client.post_to_connection(ConnectionId=connection_id, Data=frame.encode())
        except gone:
            self.forget(connection_id, run_id)
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
