"""The ports the service talks to. ``engine.memory`` and ``engine.aws`` implement them.

Every implementation passes the one contract suite in ``tests/contract``.
"""

from __future__ import annotations

from typing import Protocol

from engine.model import DeliveryNote, GraphRecord, LogRecord, PublishResult, Run, RunChanges, StepMessage
from engine.triggers import TriggerEvent


class GraphStore(Protocol):
    def put_graph(self, record: GraphRecord) -> None:
        """Store a new graph version; :class:`ConflictError` if that version exists."""

    def get_graph(self, graph_id: str, version: int | None = None) -> GraphRecord:
        """The given version, or the latest; :class:`GraphNotFoundError` if absent."""

    def list_graphs(self, owner: str, limit: int = 100) -> list[GraphRecord]:
        """The latest version of each graph of ``owner``, newest first."""

    def delete_graph(self, graph_id: str) -> int:
        """Delete every version of a graph and its listing entry; return how many versions there were.

        :class:`GraphNotFoundError` if it has none.
        """


class RunStore(Protocol):
    def create_run(self, run: Run, records: list[LogRecord]) -> Run:
        """Store a new run with its first log records.

        If ``run.idempotency_key`` was used before by ``run.owner``, store nothing
        and return the run that has it (keys are per owner). :class:`ConflictError` if the run id exists.
        """

    def find_run_by_idempotency_key(self, owner: str | None, key: str) -> Run | None:
        """The run ``owner`` started with ``key``, if any."""

    def get_run(self, run_id: str) -> Run:
        """The run, read strongly consistent; :class:`RunNotFoundError` if absent."""

    def list_runs(
        self, owner: str, *, limit: int = 50, status: str | None = None, graph_id: str | None = None
    ) -> list[Run]:
        """``owner``'s runs, newest first, at most ``limit``, of ``status`` and ``graph_id`` if given.

        The runs' states are not read.
        """

    def get_run_owner(self, run_id: str) -> str | None:
        """The run's owner, without reading its state; :class:`RunNotFoundError` if absent."""

    def commit(self, run: Run, changes: RunChanges, records: list[LogRecord]) -> Run:
        """Apply ``changes`` and append ``records`` as one atomic step.

        ``run`` is the run as this store returned it (from a read or a commit):
        its :attr:`~engine.model.Run.revision` carries what the store needs. The
        commit happens only if nothing was committed to the run since that read
        and it is not terminal; otherwise :class:`StaleStepError` and nothing is
        written. Returns the run as committed, with its current subscribers.
        """

    def note_delivery(self, run_id: str, note: DeliveryNote) -> bool:
        """Record ``note`` on the run if it is still at ``note.position`` and not terminal.

        Returns whether it was written; a run that moved on, ended or does not
        exist is left as it is. Commits keep the note (it names its position).
        """

    def list_logs(self, run_id: str, after: int = -1, limit: int = 1000) -> list[LogRecord]:
        """Committed records with ``seq > after``, in order, at most ``limit``."""

    def add_subscriber(self, run_id: str, connection_id: str) -> Run:
        """Subscribe a connection; the returned run's ``next_seq`` is where live records begin."""

    def remove_subscriber(self, run_id: str, connection_id: str) -> None: ...

    def delete_run(self, run_id: str) -> None:
        """Delete a terminal run, its log records and its idempotency key.

        :class:`RunNotFoundError` if absent; :class:`RunActiveError` (nothing
        deleted) if it has not ended.
        """


class ConnectionStore(Protocol):
    """Which runs each WebSocket connection follows, so a disconnect can clean up."""

    def add_connection(self, connection_id: str, run_id: str) -> None: ...

    def runs_of(self, connection_id: str) -> list[str]: ...

    def remove_connection(self, connection_id: str) -> None: ...


class StepQueue(Protocol):
    def send(self, message: StepMessage) -> None:
        """Enqueue a step; a message with the same ``dedup_id`` may be dropped as a duplicate."""


class StepTimers(Protocol):
    """Step messages due far ahead (a wait's end, a callback's time-out, a long retry delay), held outside the queue."""

    def schedule(self, message: StepMessage) -> None:
        """Send ``message`` to the step queue at its ``not_before``.

        Scheduling a message whose ``dedup_id`` is scheduled and not yet sent changes nothing.
        """

    def cancel(self, message: StepMessage) -> None:
        """Drop the scheduled message with ``message.dedup_id`` if it has not been sent; nothing if there is none."""


class GraphTriggers(Protocol):
    """The recurring schedules that start runs of graphs (a graph's ``triggers``), one per trigger index."""

    def put(self, event: TriggerEvent, expression: str) -> None:
        """Create, or replace, the schedule of trigger ``event.trigger`` of ``event.graph_id``, sending ``event``."""

    def remove(self, graph_id: str, index: int) -> None:
        """Delete the schedule of that trigger; nothing if there is none."""


class LogSink(Protocol):
    def publish(self, run: Run, records: list[LogRecord]) -> PublishResult:
        """Deliver committed records to the run's subscribers; drop subscribers that are gone.

        Best effort: a failed delivery is counted in the result, never raised.
        """


class ConnectionSink(LogSink, Protocol):
    """A :class:`LogSink` that also posts to one connection: what :mod:`engine.subscriptions` needs."""

    def post(self, connection_id: str, frames: list[str]) -> bool:
        """Send frames to one connection, in order; ``False`` if it is gone (it is then forgotten).

        Any other failure raises.
        """

    def connected(self, connection_id: str) -> bool:
        """Whether the connection is open (its ``$connect`` has completed and it has not gone)."""
