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
    WAIT_STARTED = "wait_started"
    CALLBACK_WAITING = "callback_waiting"
    CALLBACK_RECEIVED = "callback_received"
    RUN_REDRIVEN = "run_redriven"
    FANNED_OUT = "fanned_out"
    BRANCH_SUCCEEDED = "branch_succeeded"
    BRANCH_FAILED = "branch_failed"
    JOINED = "joined"


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
    branch: str | None = None
    """The branch the record belongs to (a parallel branch's start node, or ``items[i]`` of a map); ``None`` on the main path."""


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


class Branch(BaseModel):
    """A started branch of a fan-out that has not arrived at the join: where it is and its try."""

    index: int
    node: str
    step: int = 0
    """Node executions of this branch so far: with ``attempt``, the branch's position."""
    attempt: int = 1
    not_before: float | None = None

    @property
    def position(self) -> tuple[int, int]:
        return (self.step, self.attempt)


class FanOut(BaseModel):
    """A run's fan-out in progress: the branches (or map items) between the fan-out node and its join.

    Branches ``0 .. started - 1`` have started; those in :attr:`running` have not
    arrived at the join yet, the others have. :attr:`updates` holds, per started
    branch (by index, as a string), the state keys it wrote so far. ``step`` is
    the run's step at the fan-out: it tells this fan-out's messages from those of
    an earlier one of the same node (a loop).
    """

    node: str
    join: str
    kind: str
    """``parallel`` or ``map``."""
    step: int
    size: int
    started: int
    running: dict[str, Branch] = Field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = Field(default_factory=dict)
    names: list[str] = Field(default_factory=list)
    """A parallel fan-out's branch names (their start nodes); a map's branches are named ``items[i]``."""
    items: str | None = None
    """A map's items key."""

    def name(self, index: int) -> str:
        return self.names[index] if index < len(self.names) else f"{self.items}[{index}]"

    @property
    def arrived(self) -> int:
        return self.started - len(self.running)


class Waiting(BaseModel):
    """What a run at a wait or callback node waits for: a time (``timer``) or a callback, until ``until``.

    ``step`` and ``attempt`` are the position it waits at; a callback's token is
    known by its ``digest`` (the SHA-256 of its secret part, hex) only.
    """

    kind: str
    """``timer`` or ``callback``."""
    node: str
    step: int
    attempt: int
    since: float
    until: float
    digest: str | None = None

    @property
    def position(self) -> tuple[int, int]:
        return (self.step, self.attempt)


CALLBACK_HISTORY = 20
"""How many used or expired callback tokens a run remembers, to answer a second use with 409 or 410."""


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
    fanout: FanOut | None = None
    """The branches in flight while the run is between a fan-out node and its join."""
    waiting: Waiting | None = None
    """The time or callback the run waits for at a wait or callback node."""
    callbacks: dict[str, str] = Field(default_factory=dict)
    """The last :data:`CALLBACK_HISTORY` callback tokens the run issued and closed: digest to
    ``approved``, ``rejected``, ``expired`` or ``cancelled``."""
    redriven_at: float | None = None
    """When the run was last redriven; its ``timeout_seconds`` count from then."""
    revision: str | None = Field(default=None, exclude=True)
    """The store's token for this read of the run: :meth:`RunStore.commit` takes the run as read and
    commits only if nothing was committed since. Opaque outside the store that made it."""

    @property
    def position(self) -> tuple[int, int]:
        return (self.step, self.attempt)

    def summary(self) -> dict[str, Any]:
        """The run without its state: what lists and status lines show."""
        out = self.model_dump(
            mode="json",
            exclude={
                "state": True,
                "subscribers": True,
                "fanout": True,
                "callbacks": True,
                "waiting": {"digest"},
            },
        )
        if self.fanout is not None:
            out["fanout"] = fanout_summary(self.fanout)
        return out


def fanout_summary(fanout: FanOut) -> dict[str, Any]:
    """A fan-out's progress without the branches' updates."""
    return {
        "node": fanout.node,
        "join": fanout.join,
        "kind": fanout.kind,
        "size": fanout.size,
        "started": fanout.started,
        "arrived": fanout.arrived,
        "running": [
            {
                "branch": fanout.name(b.index),
                "index": b.index,
                "node": b.node,
                "step": b.step,
                "attempt": b.attempt,
            }
            for b in sorted(fanout.running.values(), key=lambda b: b.index)
        ],
    }


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
    fanout: FanOut | None = None
    """The run's fan-out after this commit (``None``: none in flight)."""
    fanout_written: frozenset[str] = frozenset()
    """The branches (indexes as strings) whose ``fanout.updates`` this commit changed: what a store must write."""
    waiting: Waiting | None = None
    """What the run waits for after this commit (``None``: nothing)."""
    callbacks: dict[str, str] | None = None
    """The run's closed callback tokens after this commit; ``None`` leaves them as they are."""
    reopens: bool = False
    """This commit takes a FAILED or TIMED_OUT run back to RUNNING (a redrive); only such a commit may."""
    redriven_at: float | None = None
    """Set by a redrive; ``None`` leaves the run's as it is."""

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

    @classmethod
    def branched(
        cls, run: Run, *, fanout: FanOut, written: set[str], next_seq: int, now: float, executed: bool = True
    ) -> RunChanges:
        """The run stays at its fan-out node while its branches move; ``executed`` counts a node execution."""
        return cls(
            status=RunStatus.RUNNING,
            current_node=run.current_node,
            step=run.step + (1 if executed else 0),
            attempt=1 if executed else run.attempt,
            next_seq=next_seq,
            updated_at=now,
            fanout=fanout,
            fanout_written=frozenset(written),
        )

    @classmethod
    def wait(cls, run: Run, *, waiting: Waiting, next_seq: int, now: float) -> RunChanges:
        """The run waits at its position (a wait or callback node) for ``waiting``."""
        return cls(
            status=RunStatus.RUNNING,
            current_node=run.current_node,
            step=run.step,
            attempt=run.attempt,
            next_seq=next_seq,
            updated_at=now,
            waiting=waiting,
        )

    def apply(self, run: Run) -> Run:
        """Return ``run`` with these changes, as every store must persist them."""
        update: dict[str, Any] = {name: getattr(self, name) for name in _RUN_FIELDS_CHANGED}
        if self.callbacks is None:
            update["callbacks"] = run.callbacks
        if self.redriven_at is None:
            update["redriven_at"] = run.redriven_at
        update["state"] = {**run.state, **self.state_updates} if self.state_updates else run.state
        if self.state_bytes is not None:
            update["state_bytes"] = self.state_bytes
        return run.model_copy(update=update)


_RUN_FIELDS_CHANGED = tuple(
    name
    for name in RunChanges.model_fields
    if name not in ("state_updates", "state_bytes", "fanout_written", "reopens")
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
    timer: bool = False
    """The wake-up of a run waiting at its position (a wait's end, a callback's time-out), in a group of its own."""
    fanout: int | None = None
    """For a branch's step: the :attr:`FanOut.step` of its fan-out; ``step`` and ``attempt`` are then the branch's."""
    branch: int | None = None
    """For a branch's step: the branch's index."""

    @property
    def position(self) -> tuple[int, int]:
        return (self.step, self.attempt)

    @property
    def group(self) -> str:
        """The FIFO message group: the run, a branch of it (each its own), or the run's watchdog."""
        if self.watchdog:
            return f"{self.run_id}.watchdog"
        if self.timer:
            return f"{self.run_id}.timer"
        if self.branch is not None:
            return f"{self.run_id}.b{self.branch}"
        return self.run_id

    @property
    def dedup_id(self) -> str:
        base = f"{self.run_id}:{self.step}:{self.attempt}"
        if self.branch is not None:
            base += f":f{self.fanout}b{self.branch}"
        if self.timer:
            base += ":timer"
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
