"""Runs, their log records, the step message and graph records: the data the ports move."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engine.graph import Graph


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})


class LogType(StrEnum):
    RUN_STARTED = "run_started"
    STEP_STARTED = "step_started"
    STEP_SUCCEEDED = "step_succeeded"
    STEP_FAILED = "step_failed"
    RETRY_SCHEDULED = "retry_scheduled"
    EDGE_TAKEN = "edge_taken"
    RUN_SUCCEEDED = "run_succeeded"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_TIMED_OUT = "run_timed_out"


class LogRecord(BaseModel):
    """One entry of a run's ordered log. ``seq`` counts from 0 per run, without gaps."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    seq: int
    ts: float
    type: LogType
    step: int
    node: str | None = None
    attempt: int | None = None
    duration_ms: float | None = None
    message: str = ""
    data: dict[str, Any] | None = None


class RunError(BaseModel):
    """Why a run failed: the error's type, its message and the node it happened in."""

    type: str
    message: str
    node: str | None = None


class DeliveryProblem(StrEnum):
    """What the step handler knew about a delivery of a position that did not end in a commit."""

    STARTED = "started"  # a redelivered (suspect) attempt began, isolated
    HANDED_BACK = "handed_back"  # the invocation had too little time left for the node
    TOO_LARGE = "too_large"  # the step's state could not be stored
    FAILED = "failed"  # the handler failed on the record with an error


class DeliveryNote(BaseModel):
    """The step handler's last word on the delivery of a run's position ``(step, attempt)``.

    Written only on the rare paths (a redelivered message, a hand-back, a
    failing record); the DLQ consumer turns it into the run's failure reason.
    """

    step: int
    attempt: int
    problem: DeliveryProblem
    detail: str = ""
    at: float
    receives: int | None = None

    @property
    def position(self) -> tuple[int, int]:
        return (self.step, self.attempt)


DEFAULT_MAX_SUBSCRIBERS_PER_RUN = 100
"""How many WebSocket connections may follow one run unless ``MAX_SUBSCRIBERS_PER_RUN`` says otherwise."""


@dataclass(frozen=True)
class PublishResult:
    """What one publish did: subscribers that got every frame, were gone (and dropped), or failed."""

    posted: int = 0
    gone: int = 0
    failed: int = 0


class Run(BaseModel):
    """A run of one graph version.

    ``step`` counts node executions; ``attempt`` is the try of the current step.
    Together they are the run's position: a commit happens only from the position
    it read, which is what makes each step commit exactly once.
    """

    run_id: str
    graph_id: str
    graph_version: int
    status: RunStatus = RunStatus.PENDING
    state: dict[str, Any] = Field(default_factory=dict)
    current_node: str | None = None
    step: int = 0
    attempt: int = 1
    next_seq: int = 0
    not_before: float | None = None
    error: RunError | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None
    idempotency_key: str | None = None
    owner: str | None = None
    """The principal that started the run; ``None`` (data from before owners) is nobody's."""
    subscribers: list[str] = Field(default_factory=list)
    delivery: DeliveryNote | None = None
    state_bytes: int | None = None
    """The state's size as :func:`engine.limits.state_bytes` counts it, kept by each commit; ``None`` if unknown."""

    @property
    def position(self) -> tuple[int, int]:
        return (self.step, self.attempt)

    def summary(self) -> dict[str, Any]:
        """The run without its state: what lists and status lines show."""
        return self.model_dump(mode="json", exclude={"state", "subscribers"})


class RunChanges(BaseModel):
    """What one commit changes on a run; ``state_updates`` holds only the changed top-level keys."""

    status: RunStatus
    current_node: str | None
    step: int
    attempt: int
    next_seq: int
    updated_at: float
    state_updates: dict[str, Any] = Field(default_factory=dict)
    not_before: float | None = None
    error: RunError | None = None
    finished_at: float | None = None
    state_bytes: int | None = None
    """The state's size after these updates; ``None`` leaves the run's as it is."""

    @classmethod
    def advance(
        cls, run: Run, *, to: str, next_seq: int, now: float, updates: dict[str, Any] | None = None
    ) -> RunChanges:
        """The run moves on to node ``to``: the next step, its first attempt."""
        return cls(
            status=RunStatus.RUNNING,
            current_node=to,
            step=run.step + 1,
            attempt=1,
            next_seq=next_seq,
            updated_at=now,
            state_updates=updates or {},
        )

    @classmethod
    def retry(cls, run: Run, *, node: str, next_seq: int, now: float, not_before: float) -> RunChanges:
        """The same step at ``node`` is tried again, no sooner than ``not_before``; the state is unchanged."""
        return cls(
            status=RunStatus.RUNNING,
            current_node=node,
            step=run.step,
            attempt=run.attempt + 1,
            next_seq=next_seq,
            updated_at=now,
            not_before=not_before,
        )

    @classmethod
    def finish(
        cls, run: Run, *, node: str, next_seq: int, now: float, updates: dict[str, Any] | None = None
    ) -> RunChanges:
        """The run SUCCEEDED: ``node`` was its last step."""
        return cls(
            status=RunStatus.SUCCEEDED,
            current_node=node,
            step=run.step + 1,
            attempt=1,
            next_seq=next_seq,
            updated_at=now,
            state_updates=updates or {},
            finished_at=now,
        )

    @classmethod
    def fail(
        cls,
        run: Run,
        *,
        error: RunError,
        next_seq: int,
        now: float,
        status: RunStatus = RunStatus.FAILED,
        updates: dict[str, Any] | None = None,
    ) -> RunChanges:
        """The run ends with ``error`` at its position: FAILED, or ``status`` (TIMED_OUT, CANCELLED)."""
        return cls(
            status=status,
            current_node=run.current_node,
            step=run.step,
            attempt=run.attempt,
            next_seq=next_seq,
            updated_at=now,
            error=error,
            finished_at=now,
            state_updates=updates or {},
        )

    def apply(self, run: Run) -> Run:
        """Return ``run`` with these changes, as every store must persist them."""
        update = {name: getattr(self, name) for name in _RUN_FIELDS_CHANGED}
        update["state"] = {**run.state, **self.state_updates} if self.state_updates else run.state
        if self.state_bytes is not None:
            update["state_bytes"] = self.state_bytes
        return run.model_copy(update=update)


_RUN_FIELDS_CHANGED = tuple(
    name for name in RunChanges.model_fields if name not in ("state_updates", "state_bytes")
)


class StepMessage(BaseModel):
    """The body of a step message: which position of which run to execute.

    ``not_before`` (epoch seconds) delays a retry; FIFO queues cannot delay a
    single message, so consumers defer it themselves. A ``watchdog`` message
    (an inline run's safety net) travels in a message group of its own
    (:attr:`group`), so that while it waits it holds up none of the run's steps.
    """

    run_id: str
    step: int
    attempt: int = 1
    not_before: float | None = None
    watchdog: bool = False

    @property
    def position(self) -> tuple[int, int]:
        return (self.step, self.attempt)

    @property
    def group(self) -> str:
        """The FIFO message group: the run, or the run's watchdog."""
        return f"{self.run_id}.watchdog" if self.watchdog else self.run_id

    @property
    def dedup_id(self) -> str:
        base = f"{self.run_id}:{self.step}:{self.attempt}"
        return f"{base}:watchdog" if self.watchdog else base


class GraphRecord(BaseModel):
    """A stored graph version. Versions count from 1 and never change once written."""

    graph_id: str
    version: int
    definition: Graph
    created_at: float
    owner: str | None = None
    """The principal that registered the graph; ``None`` (data from before owners) is nobody's."""

    def summary(self) -> dict[str, Any]:
        return {
            "graph_id": self.graph_id,
            "version": self.version,
            "name": self.definition.name,
            "description": self.definition.description,
            "created_at": self.created_at,
        }
