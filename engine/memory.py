"""In-memory adapters for every port: the unit tests, the benchmarks and the in-process driver."""

from __future__ import annotations

import copy
import heapq
import itertools
import threading
from collections import defaultdict
from typing import Any

from engine.errors import ConflictError, GraphNotFoundError, RunActiveError, RunNotFoundError, StaleStepError
from engine.model import GraphRecord, LogRecord, Run, RunChanges, StepMessage

_ATOMS = frozenset({str, int, float, bool, type(None)})


def _fresh(value: Any) -> Any:
    """A copy of JSON-like data that shares nothing mutable with ``value``.

    Faster than :func:`copy.deepcopy` for the dicts, lists and scalars a state is
    made of; anything else is deep-copied.
    """
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {k: v if type(v) in _ATOMS else _fresh(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _ATOMS else _fresh(v) for v in value]
    return copy.deepcopy(value)


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

    def list_graphs(self, limit: int = 100) -> list[GraphRecord]:
        latest = [v[max(v)] for v in self._versions.values() if v]
        return sorted(latest, key=lambda r: r.created_at, reverse=True)[:limit]

    def delete_graph(self, graph_id: str) -> int:
        with self._lock:
            versions = self._versions.pop(graph_id, None)
        if not versions:
            raise GraphNotFoundError(f"no graph {graph_id!r}", graph_id=graph_id)
        return len(versions)


class InMemoryRunStore:
    """Runs and logs in dicts.

    State goes in and out as copies all the way down, as it would through a
    database: neither a caller nor a tool can change a stored run behind the store.
    """

    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}
        self._logs: dict[str, list[LogRecord]] = defaultdict(list)
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def create_run(self, run: Run, records: list[LogRecord]) -> Run:
        with self._lock:
            if run.idempotency_key and run.idempotency_key in self._keys:
                return self._runs[self._keys[run.idempotency_key]].model_copy(deep=True)
            if run.run_id in self._runs:
                raise ConflictError(f"run {run.run_id} exists")
            self._runs[run.run_id] = run.model_copy(deep=True)
            self._logs[run.run_id] = list(records)
            if run.idempotency_key:
                self._keys[run.idempotency_key] = run.run_id
            return run

    def find_run_by_idempotency_key(self, key: str) -> Run | None:
        run_id = self._keys.get(key)
        return self.get_run(run_id) if run_id else None

    def get_run(self, run_id: str) -> Run:
        try:
            run = self._runs[run_id]
        except KeyError:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id) from None
        return _detached(run)

    def commit(
        self, run_id: str, expected: tuple[int, int], changes: RunChanges, records: list[LogRecord]
    ) -> Run:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
            if run.position != expected or run.status.terminal:
                raise StaleStepError(f"run {run_id} is at {run.position} ({run.status}), not {expected}")
            updated = changes.apply(run)
            for key in changes.state_updates:
                updated.state[key] = _fresh(updated.state[key])
            self._runs[run_id] = updated
            self._logs[run_id].extend(records)
            return _detached(updated)

    def list_logs(self, run_id: str, after: int = -1, limit: int = 1000) -> list[LogRecord]:
        if run_id not in self._runs:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
        return self._logs[run_id][after + 1 : after + 1 + limit]

    def add_subscriber(self, run_id: str, connection_id: str) -> Run:
        with self._lock:
            run = self.get_run(run_id)
            if connection_id not in run.subscribers:
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
            if run.idempotency_key and self._keys.get(run.idempotency_key) == run_id:
                del self._keys[run.idempotency_key]


def _detached(run: Run) -> Run:
    return run.model_copy(update={"state": _fresh(run.state), "subscribers": list(run.subscribers)})


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


class InMemoryLogSink:
    """Collects what would be posted to each connection."""

    def __init__(self) -> None:
        self.delivered: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def publish(self, run: Run, records: list[LogRecord]) -> None:
        for connection_id in run.subscribers:
            self.delivered[connection_id].extend(r.model_dump(mode="json") for r in records)
