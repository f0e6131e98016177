"""engine.subscriptions on the in-memory stores and sink: the ack comes first, and no record is lost.

Steps are interleaved deterministically with hooks in the store and the sink:
a step commits (and publishes) at the exact point under test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine.errors import RunNotFoundError, TooManySubscribersError
from engine.memory import InMemoryConnectionStore, InMemoryLogSink, InMemoryRunStore
from engine.model import LogRecord, Run
from engine.subscriptions import Subscriptions
from tests.contract.factories import OTHER_OWNER, OWNER, new_run, step

Hook = Callable[[], None]


class HookedRuns(InMemoryRunStore):
    """Runs ``after_add`` once right after a subscriber is stored (and before the caller goes on)."""

    after_add: Hook | None = None

    def add_subscriber(self, run_id: str, connection_id: str) -> Run:
        run = super().add_subscriber(run_id, connection_id)
        hook, self.after_add = self.after_add, None
        if hook is not None:
            hook()
        return run


class HookedSink(InMemoryLogSink):
    """Runs ``after_post`` once right after a post to one connection."""

    after_post: Hook | None = None

    def post(self, connection_id: str, frames: list[str], *, run_id: str | None = None) -> bool:
        ok = super().post(connection_id, frames, run_id=run_id)
        hook, self.after_post = self.after_post, None
        if hook is not None:
            hook()
        return ok


@pytest.fixture
def runs() -> HookedRuns:
    return HookedRuns(max_subscribers=2)


@pytest.fixture
def sink(runs: HookedRuns) -> HookedSink:
    return HookedSink(runs, InMemoryConnectionStore())


@pytest.fixture
def subscriptions(runs: HookedRuns, sink: HookedSink) -> Subscriptions:
    assert sink.connections is not None
    return Subscriptions(runs, sink.connections, sink, max_subscribers=2, page=2)


def started(runs: InMemoryRunStore, steps: int = 2) -> Run:
    run, records = new_run()
    runs.create_run(run, records)
    current = runs.get_run(run.run_id)
    for _ in range(steps):
        current = step(runs, current, count=2)
    return current


def commit_and_publish(runs: InMemoryRunStore, sink: InMemoryLogSink, run_id: str) -> Hook:
    """A step of the run that commits and publishes to the subscribers stored at its commit, as the service does."""

    def hook() -> None:
        before = runs.get_run(run_id)
        committed = step(runs, before, count=2, tag="concurrent ")
        records: list[LogRecord] = runs.list_logs(run_id, before.next_seq - 1)
        sink.publish(committed, records)

    return hook


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [r["seq"] for f in frames if f["type"] == "records" for r in f["records"]]


def test_a_step_committing_between_the_store_and_the_backlog_comes_after_the_ack(
    runs: HookedRuns, sink: HookedSink, subscriptions: Subscriptions
) -> None:
    run = started(runs)
    runs.after_add = commit_and_publish(runs, sink, run.run_id)

    outcome = subscriptions.subscribe("conn-1", run.run_id, owner=OWNER)

    frames = sink.frames["conn-1"]
    assert frames[0]["type"] == "subscribed"
    assert frames[1]["type"] == "records"  # the concurrent step's live frame, after the ack
    assert [r["message"].startswith("concurrent") for r in frames[1]["records"]] == [True, True]
    total = runs.get_run(run.run_id).next_seq
    assert sorted(seqs(frames)) == list(range(total))  # every record exactly once
    assert outcome.live_from == run.next_seq
    assert frames[-1] == {
        "type": "replayed",
        "run_id": run.run_id,
        "live_from": run.next_seq,
        "status": "RUNNING",
    }


def test_a_step_committing_between_the_ack_and_the_store_reaches_the_backlog(
    runs: HookedRuns, sink: HookedSink, subscriptions: Subscriptions
) -> None:
    run = started(runs)
    sink.after_post = commit_and_publish(runs, sink, run.run_id)

    outcome = subscriptions.subscribe("conn-1", run.run_id, owner=OWNER, after=1)

    frames = sink.frames["conn-1"]
    assert frames[0] == {"type": "subscribed", "run_id": run.run_id, "after": 1, "status": "RUNNING"}
    total = runs.get_run(run.run_id).next_seq
    assert outcome.live_from == total
    assert seqs(frames) == list(range(2, total))
    assert sink.delivered["conn-1"] == []  # nothing came live: it was published before the subscription


def test_a_connection_gone_during_the_backlog_is_forgotten(
    runs: HookedRuns, sink: HookedSink, subscriptions: Subscriptions
) -> None:
    run = started(runs)
    sink.after_post = lambda: sink.mark_gone("conn-1")

    outcome = subscriptions.subscribe("conn-1", run.run_id, owner=OWNER)

    assert outcome.delivered is False
    assert [f["type"] for f in sink.frames["conn-1"]] == ["subscribed"]
    assert runs.get_run(run.run_id).subscribers == []
    assert subscriptions.connections.runs_of("conn-1") == []


def test_another_callers_run_and_a_full_run_are_refused_before_anything_is_posted(
    runs: HookedRuns, sink: HookedSink, subscriptions: Subscriptions
) -> None:
    run = started(runs, steps=0)
    with pytest.raises(RunNotFoundError):
        subscriptions.subscribe("conn-1", run.run_id, owner=OTHER_OWNER)
    with pytest.raises(RunNotFoundError):
        subscriptions.subscribe("conn-1", "missing", owner=OWNER)
    for connection_id in ("a", "b"):
        subscriptions.subscribe(connection_id, run.run_id, owner=OWNER)
    with pytest.raises(TooManySubscribersError):
        subscriptions.subscribe("conn-1", run.run_id, owner=OWNER)
    assert "conn-1" not in sink.frames
    assert subscriptions.subscribe("a", run.run_id, owner=OWNER).delivered  # already on it: not counted twice


def test_the_run_filling_up_after_the_ack_gets_an_error_frame_and_stores_nothing(
    runs: HookedRuns, sink: HookedSink, subscriptions: Subscriptions
) -> None:
    run = started(runs, steps=0)
    subscriptions.subscribe("a", run.run_id, owner=OWNER)
    sink.after_post = lambda: runs.add_subscriber(run.run_id, "b")

    with pytest.raises(TooManySubscribersError):
        subscriptions.subscribe("conn-1", run.run_id, owner=OWNER)

    assert [f["type"] for f in sink.frames["conn-1"]] == ["subscribed", "error"]
    assert sink.frames["conn-1"][1]["code"] == "too_many_subscribers"
    assert "conn-1" not in runs.get_run(run.run_id).subscribers


def test_unsubscribe_stops_live_records(
    runs: HookedRuns, sink: HookedSink, subscriptions: Subscriptions
) -> None:
    run = started(runs, steps=0)
    subscriptions.subscribe("conn-1", run.run_id, owner=OWNER)
    subscriptions.unsubscribe("conn-1", run.run_id)
    commit_and_publish(runs, sink, run.run_id)()
    assert sink.delivered["conn-1"] == []
