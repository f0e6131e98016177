"""Runs, records and changes shaped as the service makes them, for the store tests."""

from __future__ import annotations

from typing import Any

from engine.model import LogRecord, LogType, Run, RunChanges, RunError, RunStatus
from engine.ports import RunStore

T0 = 1_700_000_000.25
OWNER = "arn:aws:iam::123456789012:user/alice"
OTHER_OWNER = "https://issuer.example|bob"
_STEP_TYPES = (LogType.STEP_STARTED, LogType.STEP_SUCCEEDED, LogType.EDGE_TAKEN)


def new_run(
    run_id: str = "run-1",
    state: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    owner: str | None = OWNER,
) -> tuple[Run, list[LogRecord]]:
    """A run at its start node with its ``run_started`` record, as ``start_run`` creates it."""
    run = Run(
        run_id=run_id,
        graph_id="graph-1",
        graph_version=1,
        state=dict(state or {}),
        current_node="a",
        next_seq=1,
        created_at=T0,
        updated_at=T0,
        idempotency_key=idempotency_key,
        owner=owner,
    )
    started = LogRecord(run_id=run_id, seq=0, ts=T0, type=LogType.RUN_STARTED, step=0, node="a")
    return run, [started]


def step_records(run: Run, count: int = 3, tag: str = "") -> list[LogRecord]:
    """``count`` records for the run's current position, numbered from its ``next_seq``."""
    return [
        LogRecord(
            run_id=run.run_id,
            seq=run.next_seq + i,
            ts=run.updated_at + 1,
            type=_STEP_TYPES[i % len(_STEP_TYPES)],
            step=run.step,
            node=run.current_node,
            attempt=run.attempt,
            message=f"{tag}record {run.next_seq + i}",
        )
        for i in range(count)
    ]


def changes_for(
    run: Run,
    records: list[LogRecord],
    updates: dict[str, Any] | None = None,
    *,
    status: RunStatus = RunStatus.RUNNING,
    node: str | None = "b",
    retry: bool = False,
    error: RunError | None = None,
) -> RunChanges:
    """The changes of one step from ``run``'s position: the next step, or the next attempt if ``retry``."""
    now = run.updated_at + 1
    return RunChanges(
        status=status,
        current_node=node,
        step=run.step if retry else run.step + 1,
        attempt=run.attempt + 1 if retry else 1,
        next_seq=run.next_seq + len(records),
        updated_at=now,
        state_updates=dict(updates or {}),
        not_before=now + 5 if retry else None,
        error=error,
        finished_at=now if status.terminal else None,
    )


def step(
    runs: RunStore,
    run: Run,
    updates: dict[str, Any] | None = None,
    *,
    count: int = 3,
    tag: str = "",
    status: RunStatus = RunStatus.RUNNING,
) -> Run:
    """Commit one step of ``count`` records from ``run``'s position and return the committed run."""
    records = step_records(run, count, tag)
    changes = changes_for(run, records, updates, status=status)
    return runs.commit(run, changes, records)


def unread(run: Run) -> Run:
    """``run`` without the store's revision: what it is as data, to compare with a run made by hand."""
    return run.model_copy(update={"revision": None})
