"""The pure decisions of waits, callbacks and redrive (:mod:`engine.waits`), on values: no store, no clock."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from engine.graph import Graph
from engine.limits import MAX_WAIT_SECONDS
from engine.model import CALLBACK_HISTORY, LogType, Run, RunError, RunStatus, StepMessage, Waiting
from engine.step import CompiledGraph, StepOutcome
from engine.waits import digest_of, redrive, resolved, start_callback, start_wait, wake_message, woken

NOW = 1_800_000_000.0
SECRET = "s" * 43
TOKEN = f"r.3.1.{SECRET}"


def compiled(definition: dict[str, Any]) -> CompiledGraph:
    return CompiledGraph(Graph.model_validate({"name": "g", **definition}))


def run_at(
    node: str,
    *,
    step: int = 3,
    attempt: int = 1,
    state: dict[str, Any] | None = None,
    status: RunStatus = RunStatus.RUNNING,
    error: RunError | None = None,
) -> Run:
    return Run(
        run_id="r",
        graph_id="g",
        graph_version=1,
        status=status,
        state={"i": 1} if state is None else state,
        current_node=node,
        step=step,
        attempt=attempt,
        next_seq=10,
        created_at=NOW - 100,
        updated_at=NOW - 1,
        error=error,
    )


def types(outcome: StepOutcome) -> list[LogType]:
    return [r.type for r in outcome.records]


def assert_seqs(outcome: StepOutcome, first: int = 10) -> None:
    assert [r.seq for r in outcome.records] == list(range(first, first + len(outcome.records)))
    assert outcome.changes.next_seq == first + len(outcome.records)


def wait_graph(spec: dict[str, Any], after: str | None = "b") -> CompiledGraph:
    nodes: dict[str, Any] = {"w": {"wait": spec}, "b": "t.b"}
    edges = {"w": after} if after else {}
    return compiled({"start_node": "w", "nodes": nodes, "edges": edges})


def callback_graph(**callback: Any) -> CompiledGraph:
    node: dict[str, Any] = {"callback": {"timeout_seconds": 3600, **callback.pop("spec", {})}, **callback}
    return compiled(
        {
            "start_node": "c",
            "nodes": {"c": node, "b": "t.b", "expired": "t.e", "denied": "t.d"},
            "edges": {"c": "b"},
        }
    )


def waiting_at(graph: CompiledGraph, run: Run) -> Run:
    """``run`` as stored after it began to wait at its node (a wait or a callback)."""
    node = graph.graph.nodes[run.current_node or graph.graph.start_node]
    outcome = (
        start_wait(graph, run, NOW)
        if node.wait is not None
        else start_callback(graph, run, NOW, TOKEN, SECRET)
    )
    assert outcome.changes.waiting is not None
    return outcome.changes.apply(run)


# start_wait


def test_a_wait_of_seconds_waits_at_its_position_with_a_timer_message_in_its_own_group() -> None:
    outcome = start_wait(wait_graph({"seconds": 60}), run_at("w"), NOW)

    changes = outcome.changes
    assert changes.status is RunStatus.RUNNING
    assert (changes.current_node, changes.step, changes.attempt) == ("w", 3, 1)
    assert changes.state_updates == {}
    assert changes.waiting == Waiting(kind="timer", node="w", step=3, attempt=1, since=NOW, until=NOW + 60)
    assert types(outcome) == [LogType.STEP_STARTED, LogType.WAIT_STARTED]
    assert outcome.records[1].data == {"until": NOW + 60, "seconds": 60, "wakes_at": NOW + 60}
    assert [(r.node, r.attempt, r.step) for r in outcome.records] == [("w", 1, 3), ("w", 1, 3)]
    assert_seqs(outcome)
    message = outcome.next_message
    assert message == StepMessage(run_id="r", step=3, attempt=1, not_before=NOW + 60, timer=True)
    assert message.group == "r.timer" != StepMessage(run_id="r", step=3).group
    assert message.dedup_id != StepMessage(run_id="r", step=3).dedup_id
    assert wake_message("r", changes.waiting) == message


def test_a_wait_until_an_iso_time_waits_until_that_time() -> None:
    outcome = start_wait(wait_graph({"until": "2027-06-01T12:00:00Z"}), run_at("w"), NOW)

    due = datetime(2027, 6, 1, 12, tzinfo=UTC).timestamp()
    assert outcome.changes.waiting is not None
    assert outcome.changes.waiting.until == due
    assert outcome.next_message is not None and outcome.next_message.not_before == due


def test_a_wait_until_needs_a_time_zone() -> None:
    with pytest.raises(ValidationError):
        Graph.model_validate({"start_node": "w", "nodes": {"w": {"wait": {"until": "2027-06-01T12:00:00"}}}})


@pytest.mark.parametrize(
    ("value", "due"),
    [
        ("2027-03-04T05:06:07Z", datetime(2027, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()),
        ("2027-03-04T07:06:07+02:00", datetime(2027, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()),
        (NOW + 3600, NOW + 3600),
        (int(NOW) + 7, int(NOW) + 7.0),
    ],
    ids=["iso-z", "iso-offset", "epoch-float", "epoch-int"],
)
def test_a_wait_until_key_reads_the_time_from_the_state(value: Any, due: float) -> None:
    outcome = start_wait(wait_graph({"until_key": "at"}), run_at("w", state={"at": value}), NOW - 10**7)

    assert outcome.changes.waiting is not None
    assert outcome.changes.waiting.until == due
    assert outcome.changes.status is RunStatus.RUNNING


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"at": None},
        {"at": True},
        {"at": "tomorrow"},
        {"at": "2027-03-04T05:06:07"},
        {"at": [2027, 3, 4]},
        {"at": {"t": 1}},
    ],
    ids=["missing", "null", "bool", "not-iso", "no-zone", "list", "object"],
)
def test_a_state_value_that_is_no_time_fails_the_run_with_invalid_wait_time(state: dict[str, Any]) -> None:
    outcome = start_wait(wait_graph({"until_key": "at"}), run_at("w", state=state), NOW)

    assert outcome.changes.status is RunStatus.FAILED
    assert outcome.changes.error is not None
    assert (outcome.changes.error.type, outcome.changes.error.node) == ("InvalidWaitTime", "w")
    assert "'at'" in outcome.changes.error.message
    assert outcome.changes.waiting is None
    assert outcome.next_message is None
    assert types(outcome) == [LogType.STEP_STARTED, LogType.RUN_FAILED]
    assert_seqs(outcome)


@pytest.mark.parametrize(
    ("spec", "state"),
    [
        ({"seconds": 0}, {}),
        ({"until": "2020-01-01T00:00:00Z"}, {}),
        ({"until_key": "at"}, {"at": NOW - 1}),
        ({"until_key": "at"}, {"at": NOW}),
        ({"until_key": "at"}, {"at": "2001-09-09T01:46:40Z"}),
    ],
    ids=["zero-seconds", "past-until", "past-epoch", "now", "past-iso"],
)
def test_a_time_already_past_moves_the_run_on_at_once(spec: dict[str, Any], state: dict[str, Any]) -> None:
    outcome = start_wait(wait_graph(spec), run_at("w", state=state), NOW)

    changes = outcome.changes
    assert changes.waiting is None
    assert (changes.status, changes.current_node, changes.step, changes.attempt) == (
        RunStatus.RUNNING,
        "b",
        4,
        1,
    )
    assert types(outcome) == [LogType.STEP_STARTED, LogType.STEP_SUCCEEDED, LogType.EDGE_TAKEN]
    assert outcome.next_message == StepMessage(run_id="r", step=4)
    assert_seqs(outcome)


def test_a_past_wait_at_the_last_node_ends_the_run() -> None:
    outcome = start_wait(wait_graph({"seconds": 0}, after=None), run_at("w"), NOW)

    assert outcome.changes.status is RunStatus.SUCCEEDED
    assert outcome.next_message is None
    assert types(outcome)[-1] is LogType.RUN_SUCCEEDED


def test_the_longest_wait_is_max_wait_seconds() -> None:
    longest = start_wait(
        wait_graph({"until_key": "at"}), run_at("w", state={"at": NOW + MAX_WAIT_SECONDS}), NOW
    )
    assert longest.changes.waiting is not None
    assert longest.changes.waiting.until == NOW + MAX_WAIT_SECONDS
    assert MAX_WAIT_SECONDS >= 366 * 86_400, "a wait of a year is allowed"

    graph = wait_graph({"seconds": MAX_WAIT_SECONDS})
    assert start_wait(graph, run_at("w"), NOW).changes.waiting is not None


@pytest.mark.parametrize(
    ("spec", "state"),
    [
        ({"until_key": "at"}, {"at": NOW + MAX_WAIT_SECONDS + 1}),
        ({"until": "2100-01-01T00:00:00Z"}, {}),
    ],
    ids=["until-key", "until"],
)
def test_a_wait_longer_than_the_limit_fails_the_run(spec: dict[str, Any], state: dict[str, Any]) -> None:
    outcome = start_wait(wait_graph(spec), run_at("w", state=state), NOW)

    assert outcome.changes.status is RunStatus.FAILED
    assert outcome.changes.error is not None
    assert outcome.changes.error.type == "InvalidWaitTime"
    assert f"the limit is {MAX_WAIT_SECONDS}s" in outcome.changes.error.message
    assert outcome.next_message is None


def test_a_wait_of_more_seconds_than_the_limit_is_refused_in_the_graph() -> None:
    with pytest.raises(ValidationError):
        wait_graph({"seconds": MAX_WAIT_SECONDS + 1})


def test_a_wait_names_exactly_one_time() -> None:
    with pytest.raises(ValidationError):
        wait_graph({"seconds": 1, "until_key": "at"})
    with pytest.raises(ValidationError):
        wait_graph({})


# start_callback


def test_a_callback_logs_its_token_and_the_run_keeps_only_the_digest() -> None:
    graph = callback_graph()
    outcome = start_callback(graph, run_at("c"), NOW, TOKEN, SECRET)

    changes = outcome.changes
    assert changes.status is RunStatus.RUNNING
    assert (changes.current_node, changes.step, changes.attempt) == ("c", 3, 1)
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert digest_of(SECRET) == digest
    assert changes.waiting == Waiting(
        kind="callback", node="c", step=3, attempt=1, since=NOW, until=NOW + 3600, digest=digest
    )
    assert SECRET not in changes.model_dump_json()
    assert types(outcome) == [LogType.STEP_STARTED, LogType.CALLBACK_WAITING]
    assert outcome.records[1].data == {"token": TOKEN, "node": "c", "expires_at": NOW + 3600}
    assert (outcome.records[1].node, outcome.records[1].attempt) == ("c", 1)
    assert_seqs(outcome)
    assert outcome.next_message == StepMessage(
        run_id="r", step=3, attempt=1, not_before=NOW + 3600, timer=True
    )
    assert outcome.next_message.group == "r.timer"


def test_a_callback_waits_a_day_by_default() -> None:
    graph = compiled({"start_node": "c", "nodes": {"c": {"callback": {}}}})
    outcome = start_callback(graph, run_at("c"), NOW, TOKEN, SECRET)
    assert outcome.changes.waiting is not None
    assert outcome.changes.waiting.until == NOW + 86_400


# woken


def test_a_timer_ends_a_wait_and_the_run_moves_along_the_nodes_edges() -> None:
    graph = compiled(
        {
            "start_node": "w",
            "nodes": {"w": {"wait": {"seconds": 60}}, "low": "t.l", "high": "t.h"},
            "edges": {"w": [{"when": {"key": "i", "op": ">", "value": 5}, "to": "high"}, {"to": "low"}]},
        }
    )
    for i, target in ((1, "low"), (9, "high")):
        waited = waiting_at(graph, run_at("w", state={"i": i}))
        outcome = woken(graph, waited, NOW + 60)

        changes = outcome.changes
        assert (changes.current_node, changes.step, changes.attempt, changes.waiting) == (target, 4, 1, None)
        assert types(outcome) == [LogType.STEP_SUCCEEDED, LogType.EDGE_TAKEN]
        assert [r.ts for r in outcome.records] == [NOW + 60, NOW + 60]
        assert outcome.next_message == StepMessage(run_id="r", step=4)
        assert_seqs(outcome, waited.next_seq)
        assert changes.apply(waited).waiting is None


def test_a_timer_at_the_last_node_ends_the_run() -> None:
    graph = wait_graph({"seconds": 5}, after=None)
    waited = waiting_at(graph, run_at("w"))

    outcome = woken(graph, waited, NOW + 5)

    assert outcome.changes.status is RunStatus.SUCCEEDED
    assert outcome.next_message is None


def test_a_callback_that_times_out_takes_its_catch_with_the_error_in_the_state() -> None:
    graph = callback_graph(spec={"catch": "expired"})
    waited = waiting_at(graph, run_at("c"))

    outcome = woken(graph, waited, NOW + 3600)

    changes = outcome.changes
    assert (changes.status, changes.current_node, changes.step, changes.waiting) == (
        RunStatus.RUNNING,
        "expired",
        4,
        None,
    )
    assert changes.state_updates["error"]["type"] == "CallbackTimedOut"
    assert changes.state_updates["error"]["node"] == "c"
    assert changes.callbacks == {digest_of(SECRET): "expired"}
    assert types(outcome) == [LogType.STEP_FAILED, LogType.EDGE_TAKEN]
    assert outcome.next_message == StepMessage(run_id="r", step=4)
    assert_seqs(outcome, waited.next_seq)


def test_a_callback_that_times_out_without_a_catch_fails_the_run() -> None:
    graph = callback_graph(catch="denied")
    waited = waiting_at(graph, run_at("c"))

    outcome = woken(graph, waited, NOW + 3600)

    changes = outcome.changes
    assert changes.status is RunStatus.FAILED
    assert changes.error is not None
    assert (changes.error.type, changes.error.node) == ("CallbackTimedOut", "c")
    assert changes.callbacks == {digest_of(SECRET): "expired"}
    assert changes.waiting is None
    assert types(outcome) == [LogType.STEP_FAILED, LogType.RUN_FAILED]
    assert outcome.next_message is None


def test_the_closed_tokens_a_run_remembers_are_bounded() -> None:
    graph = callback_graph()
    waited = waiting_at(graph, run_at("c")).model_copy(
        update={"callbacks": {f"d{i}": "approved" for i in range(CALLBACK_HISTORY)}}
    )

    outcome = woken(graph, waited, NOW + 3600)

    assert outcome.changes.callbacks is not None
    assert len(outcome.changes.callbacks) == CALLBACK_HISTORY
    assert "d0" not in outcome.changes.callbacks
    assert list(outcome.changes.callbacks)[-1] == digest_of(SECRET)


# resolved


def test_an_approved_callback_merges_its_data_and_decision_and_moves_on() -> None:
    graph = callback_graph()
    waited = waiting_at(graph, run_at("c"))

    outcome = resolved(graph, waited, NOW + 30, approved=True, data={"ok": 1, "i": 5}, decision="yes")

    changes = outcome.changes
    assert changes.state_updates == {"ok": 1, "i": 5, "decision": "yes"}
    assert (changes.status, changes.current_node, changes.step, changes.attempt, changes.waiting) == (
        RunStatus.RUNNING,
        "b",
        4,
        1,
        None,
    )
    assert changes.callbacks == {digest_of(SECRET): "approved"}
    assert types(outcome) == [LogType.CALLBACK_RECEIVED, LogType.STEP_SUCCEEDED, LogType.EDGE_TAKEN]
    assert outcome.records[0].data == {"approved": True, "decision": "yes", "keys": ["i", "ok"]}
    assert outcome.records[1].duration_ms == 30_000
    assert outcome.next_message == StepMessage(run_id="r", step=4)
    assert_seqs(outcome, waited.next_seq)
    assert dict(changes.apply(waited).state) == {"i": 5, "ok": 1, "decision": "yes"}


def test_an_approval_without_data_or_decision_changes_no_state() -> None:
    graph = callback_graph()
    outcome = resolved(graph, waiting_at(graph, run_at("c")), NOW + 1, approved=True)

    assert outcome.changes.state_updates == {}
    assert outcome.changes.current_node == "b"


def test_a_rejected_callback_is_retried_under_the_nodes_policy_as_a_new_attempt() -> None:
    graph = callback_graph(retry={"max_attempts": 2, "interval_seconds": 7})
    waited = waiting_at(graph, run_at("c"))

    outcome = resolved(graph, waited, NOW + 30, approved=False, reason="not yet")

    changes = outcome.changes
    assert (changes.status, changes.current_node, changes.step, changes.attempt) == (
        RunStatus.RUNNING,
        "c",
        3,
        2,
    )
    assert changes.waiting is None
    assert changes.not_before == NOW + 37
    assert changes.callbacks == {digest_of(SECRET): "rejected"}
    assert types(outcome) == [LogType.CALLBACK_RECEIVED, LogType.STEP_FAILED, LogType.RETRY_SCHEDULED]
    assert "not yet" in outcome.records[0].message
    assert (outcome.records[0].node, outcome.records[0].attempt) == ("c", 1)
    assert outcome.next_message == StepMessage(run_id="r", step=3, attempt=2, not_before=NOW + 37)


def test_a_rejected_callback_takes_the_nodes_catch() -> None:
    graph = callback_graph(catch="denied", spec={"catch": "expired"})
    waited = waiting_at(graph, run_at("c"))

    outcome = resolved(graph, waited, NOW + 30, approved=False, reason="no way")

    changes = outcome.changes
    assert (changes.current_node, changes.step) == ("denied", 4)
    assert changes.state_updates["error"] == {"type": "CallbackRejected", "message": "no way", "node": "c"}
    assert changes.callbacks == {digest_of(SECRET): "rejected"}


def test_a_rejected_callback_without_retry_or_catch_fails_the_run() -> None:
    graph = callback_graph(spec={"catch": "expired"})
    waited = waiting_at(graph, run_at("c"))

    outcome = resolved(graph, waited, NOW + 30, approved=False)

    changes = outcome.changes
    assert changes.status is RunStatus.FAILED
    assert changes.error == RunError(type="CallbackRejected", message="the callback was rejected", node="c")
    assert changes.waiting is None
    assert outcome.next_message is None
    assert types(outcome) == [LogType.CALLBACK_RECEIVED, LogType.STEP_FAILED, LogType.RUN_FAILED]
    assert_seqs(outcome, waited.next_seq)


# redrive

CHAIN = {"start_node": "a", "nodes": {"a": "t.a", "b": "t.b", "c": "t.c"}, "edges": {"a": "b", "b": "c"}}


def test_a_redrive_reopens_the_run_at_the_node_that_failed_its_next_attempt() -> None:
    error = RunError(type="ValueError", message="boom", node="b")
    failed = run_at("b", step=1, attempt=3, status=RunStatus.FAILED, error=error, state={"i": 4})
    failed = failed.model_copy(update={"finished_at": NOW - 5})

    outcome = redrive(compiled(CHAIN), failed, NOW)

    changes = outcome.changes
    assert (changes.status, changes.current_node, changes.step, changes.attempt) == (
        RunStatus.RUNNING,
        "b",
        1,
        4,
    )
    assert changes.reopens and changes.redriven_at == NOW
    assert changes.error is None and changes.finished_at is None and changes.not_before is None
    assert types(outcome) == [LogType.RUN_REDRIVEN]
    assert outcome.records[0].data == {"from_status": "FAILED", "error": error.model_dump()}
    assert_seqs(outcome)
    assert outcome.next_message == StepMessage(run_id="r", step=1, attempt=4)
    reopened = changes.apply(failed)
    assert dict(reopened.state) == {"i": 4}
    assert (reopened.run_id, reopened.error, reopened.finished_at) == ("r", None, None)


def test_a_timed_out_run_is_redriven_from_its_current_node_when_the_error_names_none() -> None:
    error = RunError(type="RunTimedOut", message="run exceeded 5s")
    timed_out = run_at("c", step=2, status=RunStatus.TIMED_OUT, error=error)

    outcome = redrive(compiled(CHAIN), timed_out, NOW)

    assert (outcome.changes.current_node, outcome.changes.step, outcome.changes.attempt) == ("c", 2, 2)
    assert outcome.records[0].data is not None
    assert outcome.records[0].data["from_status"] == "TIMED_OUT"


def test_a_node_inside_a_branch_is_redriven_from_its_fan_out_node() -> None:
    graph = compiled(
        {
            "start_node": "a",
            "nodes": {"a": "t.a", "split": "t.s", "x": "t.x", "x2": "t.x", "y": "t.y", "m": "t.m"},
            "edges": {
                "a": "split",
                "split": {"parallel": ["x", "y"], "join": "m"},
                "x": "x2",
                "x2": "m",
                "y": "m",
            },
        }
    )
    error = RunError(type="ValueError", message="boom", node="x2")
    failed = run_at("split", step=2, status=RunStatus.FAILED, error=error)

    outcome = redrive(graph, failed, NOW)

    assert (outcome.changes.current_node, outcome.changes.step, outcome.changes.attempt) == ("split", 2, 2)
    assert outcome.changes.fanout is None
    assert outcome.next_message == StepMessage(run_id="r", step=2, attempt=2)


def test_a_failed_callback_node_is_redriven_to_wait_again() -> None:
    graph = callback_graph()
    error = RunError(type="CallbackTimedOut", message="late", node="c")
    failed = run_at("c", status=RunStatus.FAILED, error=error).model_copy(
        update={"callbacks": {digest_of(SECRET): "expired"}}
    )

    reopened = redrive(graph, failed, NOW).changes.apply(failed)

    assert (reopened.current_node, reopened.position, reopened.waiting) == ("c", (3, 2), None)
    assert reopened.callbacks == {digest_of(SECRET): "expired"}
    again = start_callback(graph, reopened, NOW, "r.3.2." + "t" * 43, "t" * 43)
    assert again.changes.waiting is not None
    assert again.changes.waiting.position == (3, 2)


# the run's deadline (the graph's timeout_seconds) bounds waits and callbacks


def with_timeout(graph: CompiledGraph, seconds: float) -> CompiledGraph:
    return CompiledGraph(graph.graph.model_copy(update={"timeout_seconds": seconds}))


def test_a_wait_longer_than_the_time_the_run_has_left_wakes_at_its_deadline() -> None:
    graph = with_timeout(wait_graph({"seconds": 86_400}), 160)
    run = run_at("w")  # created 100 s before NOW: its deadline is NOW + 60

    outcome = start_wait(graph, run, NOW)

    assert outcome.changes.waiting is not None
    assert outcome.changes.waiting.until == NOW + 60
    assert outcome.next_message is not None and outcome.next_message.not_before == NOW + 60
    assert outcome.records[1].data == {"until": NOW + 86_400, "seconds": 86_400, "wakes_at": NOW + 60}
    assert "times out first" in outcome.records[1].message
    woke = woken(graph, outcome.changes.apply(run), NOW + 60)
    assert woke.changes.status is RunStatus.TIMED_OUT
    assert woke.changes.error == RunError(type="RunTimedOut", message="run exceeded 160s", node="w")
    assert types(woke) == [LogType.RUN_TIMED_OUT]
    assert woke.next_message is None


def test_a_wait_within_the_deadline_ends_as_usual() -> None:
    graph = with_timeout(wait_graph({"seconds": 30}), 160)
    run = run_at("w")

    outcome = start_wait(graph, run, NOW)

    assert outcome.changes.waiting is not None and outcome.changes.waiting.until == NOW + 30
    assert woken(graph, outcome.changes.apply(run), NOW + 30).changes.current_node == "b"


def test_a_run_past_its_deadline_does_not_begin_to_wait() -> None:
    waits = start_wait(with_timeout(wait_graph({"seconds": 5}), 50), run_at("w"), NOW)
    calls = start_callback(with_timeout(callback_graph(), 50), run_at("c"), NOW, TOKEN, SECRET)

    for outcome in (waits, calls):
        assert outcome.changes.status is RunStatus.TIMED_OUT
        assert outcome.changes.waiting is None
        assert types(outcome) == [LogType.RUN_TIMED_OUT]
        assert outcome.next_message is None


def test_a_callback_expires_at_the_runs_deadline_and_the_run_times_out() -> None:
    graph = with_timeout(callback_graph(spec={"catch": "expired"}), 400)
    run = run_at("c")

    outcome = start_callback(graph, run, NOW, TOKEN, SECRET)

    assert outcome.changes.waiting is not None
    assert outcome.changes.waiting.until == NOW + 300
    assert outcome.records[1].data is not None and outcome.records[1].data["expires_at"] == NOW + 300
    woke = woken(graph, outcome.changes.apply(run), NOW + 300)
    assert woke.changes.status is RunStatus.TIMED_OUT, "the deadline wins over the callback's catch"
    assert woke.changes.callbacks == {digest_of(SECRET): "expired"}


def test_the_deadline_of_a_redriven_run_counts_from_its_redrive() -> None:
    graph = with_timeout(wait_graph({"seconds": 86_400}), 160)
    run = run_at("w").model_copy(update={"redriven_at": NOW - 10})

    outcome = start_wait(graph, run, NOW)

    assert outcome.changes.waiting is not None and outcome.changes.waiting.until == NOW + 150
