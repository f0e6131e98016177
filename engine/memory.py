"""In-memory adapters for every port: the unit tests, the benchmarks and the in-process driver."""

from __future__ import annotations

import heapq
import itertools
import json
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from engine.errors import (
    ConflictError,
    GraphNotFoundError,
    RunActiveError,
    RunNotFoundError,
    StaleStepError,
    TooManySubscribersError,
)
from engine.frames import record_frames
from engine.model import (
    DEFAULT_MAX_SUBSCRIBERS_PER_RUN,
    DeliveryNote,
    GraphRecord,
    LogRecord,
    PublishResult,
    Run,
    RunChanges,
    RunStatus,
    StepMessage,
)
from engine.ports import ConnectionStore, RunStore, StepQueue
from engine.snapshots import StateView, fresh
from engine.triggers import TriggerEvent, next_fire


class InMemoryGraphStore:
    def __init__(self) -> None:
        self._versions: dict[str, dict[int, GraphRecord]] = {}
        self._lock = threading.Lock()

    def put_graph(self, record: GraphRecord) -> None:
        with self._lock:
            versions = self._versions.setdefault(record.graph_id, {})
            if record.version in versions:
                raise ConflictError(f"graph {record.graph_id} version {record.version} exists")
            versions[record.version] = record

    def get_graph(self, graph_id: str, version: int | None = None) -> GraphRecord:
        versions = self._versions.get(graph_id)
        if not versions:
            raise GraphNotFoundError(f"no graph {graph_id!r}", graph_id=graph_id)
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise GraphNotFoundError(f"graph {graph_id!r} has no version {version}", graph_id=graph_id)
        return versions[version]

    def list_graphs(self, owner: str, limit: int = 100) -> list[GraphRecord]:
        latest = [v[max(v)] for v in self._versions.values() if v and v[max(v)].owner == owner]
        return sorted(latest, key=lambda r: r.created_at, reverse=True)[:limit]

    def delete_graph(self, graph_id: str) -> int:
        with self._lock:
            versions = self._versions.pop(graph_id, None)
        if not versions:
            raise GraphNotFoundError(f"no graph {graph_id!r}", graph_id=graph_id)
        return len(versions)


class InMemoryRunStore:
    """Runs and logs in dicts.

    A stored run's state is a snapshot: a dict of values that the store copied
    when they came in (at create and, key by key, at each commit) and that
    nothing changes afterwards; a commit makes a new dict that shares the
    unchanged values with the old one. Runs go out with their state as a
    :class:`~engine.snapshots.StateView` of the snapshot, which copies a value
    when it is read. So neither a caller nor a tool can change a stored run
    behind the store, as through a database, yet a step copies only the keys
    that are written or read, not the whole state. A run takes at most
    ``max_subscribers`` subscribers.
    """

    def __init__(self, *, max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS_PER_RUN) -> None:
        self.max_subscribers = max_subscribers
        self._runs: dict[str, Run] = {}
        self._logs: dict[str, list[LogRecord]] = defaultdict(list)
        self._keys: dict[tuple[str | None, str], str] = {}
        self._lock = threading.Lock()

    def create_run(self, run: Run, records: list[LogRecord]) -> Run:
        with self._lock:
            key = (run.owner, run.idempotency_key) if run.idempotency_key else None
            if key is not None and key in self._keys:
                return _detached(self._runs[self._keys[key]])
            if run.run_id in self._runs:
                raise ConflictError(f"run {run.run_id} exists")
            stored = run.model_copy(deep=True, update={"revision": "0"})
            self._runs[run.run_id] = stored
            self._logs[run.run_id] = list(records)
            if key is not None:
                self._keys[key] = run.run_id
            return _detached(stored)

    def find_run_by_idempotency_key(self, owner: str | None, key: str) -> Run | None:
        run_id = self._keys.get((owner, key))
        return self.get_run(run_id) if run_id else None

    def get_run(self, run_id: str) -> Run:
        try:
            run = self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id) from None
        return _detached(run)

    def list_runs(
        self, owner: str, *, limit: int = 50, status: str | None = None, graph_id: str | None = None
    ) -> list[Run]:
        with self._lock:
            runs = [
                r
                for r in self._runs.values()
                if r.owner == owner
                and (status is None or r.status == status)
                and (graph_id is None or r.graph_id == graph_id)
            ]
        runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return [_detached(r) for r in runs[:limit]]

    def get_run_owner(self, run_id: str) -> str | None:
        try:
            return self._runs[run_id].owner
        except KeyError:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id) from None

    def commit(self, run: Run, changes: RunChanges, records: list[LogRecord]) -> Run:
        run_id = run.run_id
        with self._lock:
            stored = self._runs.get(run_id)
            if stored is None:
                raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
            reopenable = stored.status in (RunStatus.FAILED, RunStatus.TIMED_OUT)
            if stored.revision != run.revision or (
                not reopenable if changes.reopens else stored.status.terminal
            ):
                raise StaleStepError(
                    f"run {run_id} changed since it was read at {run.position} ({stored.status})",
                    run_id=run_id,
                )
            updated = changes.apply(stored)
            for key in changes.state_updates:
                updated.state[key] = fresh(updated.state[key])
            if changes.fanout is not None:
                same = stored.fanout is not None and stored.fanout.step == changes.fanout.step
                kept = stored.fanout.updates if stored.fanout is not None and same else {}
                updated.fanout = changes.fanout.model_copy(
                    update={
                        "running": {k: b.model_copy() for k, b in changes.fanout.running.items()},
                        "updates": {
                            k: fresh(v) if k in changes.fanout_written or k not in kept else kept[k]
                            for k, v in changes.fanout.updates.items()
                        },
                    }
                )
            updated.revision = str(int(stored.revision or 0) + 1)
            self._runs[run_id] = updated
            self._logs[run_id].extend(records)
            return _detached(updated)

    def note_delivery(self, run_id: str, note: DeliveryNote) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.position != note.position or run.status.terminal:
                return False
            self._runs[run_id] = run.model_copy(update={"delivery": note.model_copy()})
            return True

    def list_logs(self, run_id: str, after: int = -1, limit: int = 1000) -> list[LogRecord]:
        if run_id not in self._runs:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
        return self._logs[run_id][after + 1 : after + 1 + limit]

    def add_subscriber(self, run_id: str, connection_id: str) -> Run:
        with self._lock:
            run = self.get_run(run_id)
            if connection_id not in run.subscribers:
                if len(run.subscribers) >= self.max_subscribers:
                    raise TooManySubscribersError(
                        f"run {run_id} already has {len(run.subscribers)} subscribers",
                        run_id=run_id,
                        limit=self.max_subscribers,
                    )
                run.subscribers.append(connection_id)
                self._runs[run_id] = self._runs[run_id].model_copy(update={"subscribers": run.subscribers})
            return run

    def remove_subscriber(self, run_id: str, connection_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None and connection_id in run.subscribers:
                remaining = [c for c in run.subscribers if c != connection_id]
                self._runs[run_id] = run.model_copy(update={"subscribers": remaining})

    def delete_run(self, run_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
            if not run.status.terminal:
                raise RunActiveError(f"run {run_id} is {run.status}; cancel it first", run_id=run_id)
            del self._runs[run_id]
            self._logs.pop(run_id, None)
            key = (run.owner, run.idempotency_key) if run.idempotency_key else None
            if key is not None and self._keys.get(key) == run_id:
                del self._keys[key]


def _detached(run: Run) -> Run:
    update: dict[str, Any] = {"state": StateView(run.state), "subscribers": list(run.subscribers)}
    if run.fanout is not None:
        update["fanout"] = run.fanout.model_copy(
            update={
                "running": {k: b.model_copy() for k, b in run.fanout.running.items()},
                "updates": StateView(run.fanout.updates),
            }
        )
    return run.model_copy(update=update)


class InMemoryConnectionStore:
    def __init__(self) -> None:
        self._runs: dict[str, list[str]] = defaultdict(list)

    def add_connection(self, connection_id: str, run_id: str) -> None:
        if run_id not in self._runs[connection_id]:
            self._runs[connection_id].append(run_id)

    def runs_of(self, connection_id: str) -> list[str]:
        return list(self._runs.get(connection_id, []))

    def remove_connection(self, connection_id: str) -> None:
        self._runs.pop(connection_id, None)


class InMemoryStepQueue:
    """A queue ordered by ``not_before`` then arrival; drops a duplicate ``dedup_id`` while the first is queued."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, StepMessage]] = []
        self._queued: set[str] = set()
        self._counter = itertools.count()
        self.sent = 0

    def send(self, message: StepMessage) -> None:
        self.sent += 1
        key = message.dedup_id
        if key in self._queued:
            return
        self._queued.add(key)
        heapq.heappush(self._heap, (message.not_before or 0.0, next(self._counter), key, message))

    def pop(self) -> StepMessage | None:
        if not self._heap:
            return None
        _, _, key, message = heapq.heappop(self._heap)
        self._queued.discard(key)
        return message

    def __len__(self) -> int:
        return len(self._heap)


class InMemoryTimers:
    """Scheduled messages in a dict; :meth:`fire_due` sends those due at ``now`` to ``queue``, in time order."""

    def __init__(self, queue: StepQueue) -> None:
        self.queue = queue
        self._scheduled: dict[str, StepMessage] = {}
        self.fired = 0

    def schedule(self, message: StepMessage) -> None:
        self._scheduled.setdefault(message.dedup_id, message.model_copy())

    def cancel(self, message: StepMessage) -> None:
        self._scheduled.pop(message.dedup_id, None)

    def next_due(self) -> float | None:
        """When the earliest scheduled message is due; ``None`` if none is scheduled."""
        return min((m.not_before or 0.0 for m in self._scheduled.values()), default=None)

    def fire_due(self, now: float) -> int:
        """Send every message due at ``now``; how many."""
        due = sorted(
            (m for m in self._scheduled.values() if (m.not_before or 0.0) <= now),
            key=lambda m: m.not_before or 0.0,
        )
        for message in due:
            del self._scheduled[message.dedup_id]
            self.queue.send(message)
        self.fired += len(due)
        return len(due)

    def __len__(self) -> int:
        return len(self._scheduled)


class InMemoryTriggers:
    """Trigger schedules in a dict; :meth:`fire_due` returns the events due at ``now``, as the scheduler would send them.

    A schedule's ``rate()`` counts from when it was put (``clock()``); its
    firings carry ``scheduled_time`` (ISO 8601, UTC), as the scheduler's
    ``<aws.scheduler.scheduled-time>`` does.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.schedules: dict[tuple[str, int], tuple[TriggerEvent, str, float]] = {}
        self._next: dict[tuple[str, int], float | None] = {}

    def put(self, event: TriggerEvent, expression: str) -> None:
        if event.trigger is None:
            raise ValueError("a trigger schedule needs the trigger's index")
        key = (event.graph_id, event.trigger)
        now = self.clock()
        self.schedules[key] = (event.model_copy(deep=True), expression, now)
        self._next[key] = next_fire(expression, now, now)

    def remove(self, graph_id: str, index: int) -> None:
        self.schedules.pop((graph_id, index), None)
        self._next.pop((graph_id, index), None)

    def fire_due(self, now: float) -> list[TriggerEvent]:
        """Every firing due at ``now`` (a schedule behind by several periods fires for each), in time order."""
        fired: list[tuple[float, TriggerEvent]] = []
        for key, (event, expression, anchor) in self.schedules.items():
            due = self._next[key]
            while due is not None and due <= now:
                stamp = datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                fired.append((due, event.model_copy(update={"scheduled_time": stamp})))
                due = next_fire(expression, due, anchor)
            self._next[key] = due
        return [event for _, event in sorted(fired, key=lambda pair: pair[0])]


class InMemoryLogSink:
    """Collects what would be posted to each connection; a connection marked gone is dropped, as on a 410.

    ``delivered`` holds the records each connection got from :meth:`publish`;
    ``frames`` every frame posted to it (published records, acks, backlog), decoded, in order.
    Given the run and connection stores, a gone connection is unsubscribed from
    every run it followed (as :class:`engine.aws.broadcast.WebSocketBroadcaster` does);
    without them it is only skipped.
    """

    def __init__(self, runs: RunStore | None = None, connections: ConnectionStore | None = None) -> None:
        self.runs = runs
        self.connections = connections
        self.delivered: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.gone: set[str] = set()
        self._lock = threading.Lock()

    def mark_gone(self, connection_id: str) -> None:
        """From now on posts to this connection answer gone, as the management API's 410 does."""
        self.gone.add(connection_id)

    def publish(self, run: Run, records: list[LogRecord]) -> PublishResult:
        posted = gone = 0
        frames = list(record_frames(run.run_id, records))
        for connection_id in dict.fromkeys(run.subscribers):
            if self.post(connection_id, frames, run_id=run.run_id):
                self.delivered[connection_id].extend(r.model_dump(mode="json") for r in records)
                posted += 1
            else:
                gone += 1
        return PublishResult(posted=posted, gone=gone)

    def post(self, connection_id: str, frames: list[str], *, run_id: str | None = None) -> bool:
        if connection_id in self.gone:
            self._forget(connection_id, run_id)
            return False
        with self._lock:
            self.frames[connection_id].extend(json.loads(f) for f in frames)
        return True

    def connected(self, connection_id: str) -> bool:
        return connection_id not in self.gone

    def _forget(self, connection_id: str, run_id: str | None) -> None:
        followed = set(self.connections.runs_of(connection_id)) if self.connections is not None else set()
        if run_id is not None:
            followed.add(run_id)
        if self.runs is not None:
            for followed_run in followed:
                self.runs.remove_subscriber(followed_run, connection_id)
        if self.connections is not None:
            self.connections.remove_connection(connection_id)
