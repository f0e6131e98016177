"""The RunStore contract: runs, commits from a position, the ordered log and subscribers."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import (
    ConflictError,
    RunActiveError,
    RunNotFoundError,
    StaleStepError,
    TooManySubscribersError,
)
from engine.model import (
    DeliveryNote,
    DeliveryProblem,
    LogRecord,
    LogType,
    Run,
    RunChanges,
    RunError,
    RunStatus,
    Waiting,
)
from engine.ports import RunStore
from tests.contract.conftest import CAP
from tests.contract.factories import OTHER_OWNER, OWNER, changes_for, new_run, step, step_records, unread


def seqs(records: list[LogRecord]) -> list[int]:
    return [r.seq for r in records]


def create(runs: RunStore, run_id: str = "run-1", state: dict[str, Any] | None = None) -> Run:
    run, records = new_run(run_id, state)
    return runs.create_run(run, records)


# create, get, idempotency


def test_create_then_get_returns_the_run_as_created(runs: RunStore) -> None:
    run, records = new_run(state={"n": 1, "nested": {"a": [1, 2.5, None, True]}, "s": "text"})
    returned = runs.create_run(run, records)
    stored = runs.get_run(run.run_id)

    assert unread(returned) == run
    assert unread(stored) == run
    assert returned.revision is not None
    assert stored == returned
    assert runs.list_logs(run.run_id) == records


def test_get_unknown_run_is_not_found(runs: RunStore) -> None:
    with pytest.raises(RunNotFoundError):
        runs.get_run("nope")


def test_creating_an_existing_run_id_conflicts(runs: RunStore) -> None:
    create(runs, state={"first": True})
    with pytest.raises(ConflictError):
        create(runs, state={"second": True})
    assert runs.get_run("run-1").state == {"first": True}


def test_an_idempotency_key_returns_the_first_run_and_stores_nothing_else(runs: RunStore) -> None:
    first, records = new_run("run-1", {"i": 1}, idempotency_key="key-1")
    runs.create_run(first, records)
    second, records = new_run("run-2", {"i": 2}, idempotency_key="key-1")

    returned = runs.create_run(second, records)

    assert returned.run_id == "run-1"
    assert returned.state == {"i": 1}
    with pytest.raises(RunNotFoundError):
        runs.get_run("run-2")
    found = runs.find_run_by_idempotency_key(OWNER, "key-1")
    assert found is not None and found.run_id == "run-1"
    assert runs.find_run_by_idempotency_key(OWNER, "key-2") is None


def test_idempotency_keys_are_per_owner(runs: RunStore) -> None:
    mine, records = new_run("run-1", {"i": 1}, idempotency_key="key-1")
    runs.create_run(mine, records)
    theirs, records = new_run("run-2", {"i": 2}, idempotency_key="key-1", owner=OTHER_OWNER)

    assert runs.find_run_by_idempotency_key(OTHER_OWNER, "key-1") is None
    assert unread(runs.create_run(theirs, records)) == theirs

    found = runs.find_run_by_idempotency_key(OTHER_OWNER, "key-1")
    assert found is not None and found.run_id == "run-2" and found.state == {"i": 2}
    found = runs.find_run_by_idempotency_key(OWNER, "key-1")
    assert found is not None and found.run_id == "run-1"


def test_a_run_keeps_its_owner(runs: RunStore) -> None:
    create(runs)
    ownerless, records = new_run("run-2", owner=None)
    runs.create_run(ownerless, records)

    assert runs.get_run("run-1").owner == OWNER
    assert runs.get_run_owner("run-1") == OWNER
    assert runs.get_run_owner("run-2") is None
    with pytest.raises(RunNotFoundError):
        runs.get_run_owner("nope")


def test_state_values_round_trip_exactly(runs: RunStore) -> None:
    state = {
        "": "empty key",
        "~tilde": 1,
        "unicode": "Grüße, 世界 🚀",
        "float": 0.1,
        "tiny": 1e-300,
        "huge": 1.5e300,
        "bigint": 2**70,
        "negative": -3,
        "none": None,
        "bools": [True, False],
        "looks_like_a_ref": {"$blob": "sha256/0000"},
        "looks_like_a_literal": {"$value": 1},
        "deep": {"a": {"b": {"c": [{"d": []}, {}]}}},
    }
    run = create(runs, state=state)
    assert runs.get_run(run.run_id).state == state
    committed = step(runs, run, {"looks_like_a_ref": {"$blob": "other"}, "": "changed"})
    expected = {**state, "looks_like_a_ref": {"$blob": "other"}, "": "changed"}
    assert committed.state == expected
    assert runs.get_run(run.run_id).state == expected


# commit


def test_commit_applies_the_changes_and_returns_the_committed_run(runs: RunStore) -> None:
    run = create(runs, state={"keep": "me", "i": 0})
    records = step_records(run)
    changes = changes_for(run, records, {"i": 1, "new": [1, 2]})

    committed = runs.commit(run, changes, records)

    assert committed.status is RunStatus.RUNNING
    assert committed.current_node == "b"
    assert committed.position == (1, 1)
    assert committed.next_seq == 4
    assert committed.updated_at == changes.updated_at
    assert committed.state == {"keep": "me", "i": 1, "new": [1, 2]}
    assert runs.get_run(run.run_id) == committed
    assert seqs(runs.list_logs(run.run_id)) == [0, 1, 2, 3]
    assert runs.list_logs(run.run_id)[1:] == records


def test_commit_without_state_updates_keeps_the_state(runs: RunStore) -> None:
    run = create(runs, state={"a": 1})
    committed = step(runs, run)
    assert committed.state == {"a": 1}
    assert runs.get_run(run.run_id).state == {"a": 1}


def test_commit_sets_and_clears_retry_error_and_finish_fields(runs: RunStore) -> None:
    run = create(runs)
    records = step_records(run, 2)
    error = RunError(type="ValueError", message="boom", node="a")
    retry = changes_for(run, records, retry=True, node="a", error=error)
    retried = runs.commit(run, retry, records)
    assert retried.position == (0, 2)
    assert retried.not_before == retry.not_before
    assert retried.error == error
    assert runs.get_run(run.run_id) == retried

    records = step_records(retried, 2)
    finish = changes_for(retried, records, {"done": True}, status=RunStatus.SUCCEEDED, node=None)
    finished = runs.commit(retried, finish, records)
    assert finished.status is RunStatus.SUCCEEDED
    assert finished.current_node is None
    assert finished.not_before is None
    assert finished.error is None
    assert finished.finished_at == finish.finished_at
    assert runs.get_run(run.run_id) == finished


def test_commit_writes_only_the_given_keys(runs: RunStore) -> None:
    run = create(runs, state={"a": 1, "b": {"x": 1}, "c": "c"})
    first = step(runs, run, {"a": 2})
    second = step(runs, first, {"b": {"y": 2}})
    assert second.state == {"a": 2, "b": {"y": 2}, "c": "c"}
    assert runs.get_run(run.run_id).state == {"a": 2, "b": {"y": 2}, "c": "c"}


def test_commit_of_many_keys_at_once(runs: RunStore) -> None:
    run = create(runs, state={"keep": 1, "k0": "old"})
    updates = {f"k{i}": {"i": i} for i in range(250)}
    committed = step(runs, run, updates)
    assert committed.state == {"keep": 1, **updates}
    assert runs.get_run(run.run_id).state == {"keep": 1, **updates}
    again = step(runs, committed, {"k1": "changed"})
    assert again.state["k1"] == "changed"
    assert again.state["k2"] == {"i": 2}


def test_commit_from_a_read_older_than_the_last_commit_is_stale_and_writes_nothing(runs: RunStore) -> None:
    run = create(runs, state={"a": 1})
    moved = step(runs, run, {"a": 2})
    records = step_records(run)

    with pytest.raises(StaleStepError):
        runs.commit(run, changes_for(run, records, {"a": 3}), records)

    assert runs.get_run(run.run_id) == moved
    assert seqs(runs.list_logs(run.run_id)) == [0, 1, 2, 3]


def test_subscribing_and_noting_a_delivery_do_not_make_a_read_stale(runs: RunStore) -> None:
    run = create(runs)
    runs.add_subscriber(run.run_id, "conn-1")
    runs.note_delivery(run.run_id, DeliveryNote(step=0, attempt=1, problem=DeliveryProblem.STARTED, at=1.0))
    committed = step(runs, run, {"a": 1})
    assert committed.state == {"a": 1}
    assert committed.subscribers == ["conn-1"]


def test_a_run_commits_each_position_once(runs: RunStore) -> None:
    run = create(runs)
    step(runs, run, {"winner": True})
    with pytest.raises(StaleStepError):
        step(runs, run, {"loser": True})
    assert runs.get_run(run.run_id).state == {"winner": True}


def test_a_losing_commit_leaves_the_winners_records(runs: RunStore) -> None:
    """Two workers read the same position; the one that commits second loses, log included."""
    run = create(runs)
    read_by_a = runs.get_run(run.run_id)
    read_by_b = runs.get_run(run.run_id)

    won = step(runs, read_by_b, {"by": "b"}, count=2, tag="b:")
    with pytest.raises(StaleStepError):
        step(runs, read_by_a, {"by": "a"}, count=4, tag="a:")
    after = step(runs, won, {"next": 1}, count=1, tag="next:")

    logs = runs.list_logs(run.run_id)
    assert seqs(logs) == [0, 1, 2, 3]
    assert [r.message for r in logs[1:]] == ["b:record 1", "b:record 2", "next:record 3"]
    assert runs.get_run(run.run_id) == after
    assert after.state == {"by": "b", "next": 1}


def test_a_terminal_run_takes_no_commit(runs: RunStore) -> None:
    run = create(runs)
    records = step_records(run, 1)
    cancelled = runs.commit(
        run,
        changes_for(run, records, status=RunStatus.CANCELLED, node="a").model_copy(
            update={"step": run.step, "attempt": run.attempt}
        ),
        records,
    )
    assert cancelled.status is RunStatus.CANCELLED
    assert cancelled.position == run.position

    with pytest.raises(StaleStepError):
        step(runs, cancelled, {"late": True})
    assert runs.get_run(run.run_id) == cancelled
    assert seqs(runs.list_logs(run.run_id)) == [0, 1]


def test_commit_to_an_unknown_run_is_not_found(runs: RunStore) -> None:
    run = create(runs).model_copy(update={"run_id": "ghost"})
    records = [r.model_copy(update={"run_id": "ghost"}) for r in step_records(run)]
    with pytest.raises(RunNotFoundError):
        runs.commit(run, changes_for(run, records), records)


# isolation: what a caller does to what it handed in or got back never reaches the stored run


def _scribble(state: dict[str, Any]) -> None:
    state["rows"].append("scribbled")
    state["meta"]["owner"] = "scribbler"
    state["top"] = "scribbled"


def test_changing_the_created_run_afterwards_changes_nothing_stored(runs: RunStore) -> None:
    run, records = new_run(state={"rows": [1], "meta": {"owner": "me"}, "top": "me"})
    returned = runs.create_run(run, records)
    _scribble(run.state)
    _scribble(returned.state)
    assert runs.get_run(run.run_id).state == {"rows": [1], "meta": {"owner": "me"}, "top": "me"}


def test_changing_a_run_read_or_committed_changes_nothing_stored(runs: RunStore) -> None:
    run = create(runs, state={"rows": [1], "meta": {"owner": "me"}, "top": "me", "other": {"k": [1]}})
    read = runs.get_run(run.run_id)
    _scribble(read.state)
    read.state["other"]["k"].append(2)
    updates = {"new": {"items": [1]}}
    records = step_records(run)
    committed = runs.commit(run, changes_for(run, records, updates), records)
    updates["new"]["items"].append("after commit")
    _scribble(committed.state)
    for value in committed.state.values():
        if isinstance(value, dict):
            value["via_values"] = True
    copied = dict(runs.get_run(run.run_id).state)
    copied["other"]["k"].append(3)

    expected = {"rows": [1], "meta": {"owner": "me"}, "top": "me", "other": {"k": [1]}, "new": {"items": [1]}}
    assert runs.get_run(run.run_id).state == expected
    again = step(runs, committed)
    assert again.state == expected


def test_two_readers_of_a_run_do_not_see_each_others_changes(runs: RunStore) -> None:
    run = create(runs, state={"rows": [1], "meta": {"owner": "me"}, "top": "me"})
    first = runs.get_run(run.run_id)
    second = runs.get_run(run.run_id)
    _scribble(first.state)
    assert second.state == {"rows": [1], "meta": {"owner": "me"}, "top": "me"}
    assert second.state["rows"] == [1]
    assert first.state["rows"] == [1, "scribbled"]


# logs


def test_records_are_contiguous_and_listed_after_n_with_a_limit(runs: RunStore) -> None:
    run = create(runs)
    for i in range(30):
        run = step(runs, run, {"i": i}, count=1 + i % 4)
    run = step(runs, run, count=70, tag="big:")  # more records than one log item holds
    for _ in range(5):
        run = step(runs, run, count=2)
    total = run.next_seq

    everything = runs.list_logs(run.run_id)
    assert seqs(everything) == list(range(total))
    assert all(r.run_id == run.run_id for r in everything)

    for after in (-1, 0, 1, 5, 31, 60, 79, 80, 100, total - 2):
        for limit in (1, 3, 17, 1000):
            got = runs.list_logs(run.run_id, after=after, limit=limit)
            assert seqs(got) == list(range(after + 1, min(total, after + 1 + limit))), (after, limit)
            assert got == everything[after + 1 : after + 1 + limit]
    assert runs.list_logs(run.run_id, after=total - 1) == []
    assert runs.list_logs(run.run_id, after=total + 10) == []


def test_list_logs_of_an_unknown_run_is_not_found(runs: RunStore) -> None:
    with pytest.raises(RunNotFoundError):
        runs.list_logs("nope")


def test_records_keep_their_fields(runs: RunStore) -> None:
    run = create(runs)
    record = LogRecord(
        run_id=run.run_id,
        seq=1,
        ts=123.5,
        type=LogType.STEP_FAILED,
        step=0,
        node="a",
        attempt=1,
        duration_ms=12.25,
        message="a failed: ValueError: boom",
        data={"error": {"type": "ValueError", "message": "boom"}, "unicode": "ü"},
    )
    runs.commit(run, changes_for(run, [record]), [record])
    assert runs.list_logs(run.run_id, after=0) == [record]


# subscribers


def test_subscribers_are_added_once_removed_and_returned_on_commit(runs: RunStore) -> None:
    run = create(runs)
    subscribed = runs.add_subscriber(run.run_id, "conn-1")
    assert subscribed.subscribers == ["conn-1"]
    assert subscribed.next_seq == run.next_seq
    runs.add_subscriber(run.run_id, "conn-2")
    again = runs.add_subscriber(run.run_id, "conn-1")
    assert sorted(again.subscribers) == ["conn-1", "conn-2"]

    committed = step(runs, runs.get_run(run.run_id))
    assert sorted(committed.subscribers) == ["conn-1", "conn-2"]

    runs.remove_subscriber(run.run_id, "conn-1")
    runs.remove_subscriber(run.run_id, "conn-unknown")
    assert runs.get_run(run.run_id).subscribers == ["conn-2"]
    committed = step(runs, committed)
    assert committed.subscribers == ["conn-2"]

    runs.remove_subscriber(run.run_id, "conn-2")
    assert runs.get_run(run.run_id).subscribers == []
    assert step(runs, committed).subscribers == []


def test_subscribing_does_not_change_the_run(runs: RunStore) -> None:
    run = create(runs, state={"a": 1})
    runs.add_subscriber(run.run_id, "conn-1")
    committed = step(runs, run, {"a": 2})
    assert committed.state == {"a": 2}
    assert committed.subscribers == ["conn-1"]


def test_subscribing_to_an_unknown_run_is_not_found(runs: RunStore) -> None:
    with pytest.raises(RunNotFoundError):
        runs.add_subscriber("nope", "conn-1")
    runs.remove_subscriber("nope", "conn-1")
    with pytest.raises(RunNotFoundError):
        runs.get_run("nope")


def test_the_subscriber_over_the_cap_is_refused_and_not_stored(capped_runs: RunStore) -> None:
    run = create(capped_runs)
    for i in range(CAP):
        capped_runs.add_subscriber(run.run_id, f"conn-{i}")

    with pytest.raises(TooManySubscribersError) as refused:
        capped_runs.add_subscriber(run.run_id, "conn-over")
    assert refused.value.code == "too_many_subscribers"
    assert sorted(capped_runs.get_run(run.run_id).subscribers) == [f"conn-{i}" for i in range(CAP)]

    again = capped_runs.add_subscriber(run.run_id, "conn-0")
    assert len(again.subscribers) == CAP

    capped_runs.remove_subscriber(run.run_id, "conn-1")
    assert "conn-over" in capped_runs.add_subscriber(run.run_id, "conn-over").subscribers


def test_the_cap_is_checked_before_the_run_exists(capped_runs: RunStore) -> None:
    with pytest.raises(RunNotFoundError):
        capped_runs.add_subscriber("nope", "conn-1")


# large state


def test_a_state_of_several_megabytes_round_trips(runs: RunStore) -> None:
    big = "x" * (3 * 1024 * 1024)
    rows = [{"id": i, "text": f"row {i} " + "y" * 20_000} for i in range(100)]
    run = create(runs, state={"big": big, "small": 1})
    assert runs.get_run(run.run_id).state == {"big": big, "small": 1}

    committed = step(runs, run, {"rows": rows, "medium": ["z" * 30_000] * 3})
    expected = {"big": big, "small": 1, "rows": rows, "medium": ["z" * 30_000] * 3}
    assert committed.state == expected
    assert runs.get_run(run.run_id).state == expected

    many = {f"part{i}": "p" * 40_000 for i in range(60)}
    committed = step(runs, committed, many)
    assert runs.get_run(run.run_id).state == {**expected, **many}


# delivery notes


def _note(position: tuple[int, int], problem: DeliveryProblem = DeliveryProblem.STARTED) -> DeliveryNote:
    return DeliveryNote(
        step=position[0], attempt=position[1], problem=problem, detail="d", at=5.0, receives=2
    )


def test_a_delivery_note_is_kept_at_its_position_and_through_a_commit(runs: RunStore) -> None:
    run = create(runs)
    note = _note(run.position)

    assert runs.note_delivery(run.run_id, note) is True
    assert runs.get_run(run.run_id).delivery == note

    records = step_records(run)
    committed = runs.commit(run, changes_for(run, records, {"i": 1}), records)
    assert committed.delivery == note
    assert runs.get_run(run.run_id).delivery == note


def test_a_delivery_note_for_another_position_or_run_writes_nothing(runs: RunStore) -> None:
    run = create(runs)

    assert runs.note_delivery(run.run_id, _note((3, 1))) is False
    assert runs.note_delivery("nope", _note((0, 1))) is False
    assert runs.get_run(run.run_id).delivery is None


def test_a_finished_run_takes_no_delivery_note(runs: RunStore) -> None:
    run = create(runs)
    records = step_records(run)
    done = changes_for(run, records, {}).model_copy(update={"status": RunStatus.FAILED, "finished_at": 9.0})
    finished = runs.commit(run, done, records)

    assert runs.note_delivery(run.run_id, _note(finished.position, DeliveryProblem.FAILED)) is False
    assert runs.get_run(run.run_id).delivery is None


# deleting


def test_delete_a_finished_run_with_its_log_and_idempotency_key(runs: RunStore) -> None:
    run, records = new_run("run-1", {"i": 1}, idempotency_key="key-1")
    runs.create_run(run, records)
    running = step(runs, runs.get_run("run-1"), {"i": 2}, count=40)
    step(runs, running, status=RunStatus.SUCCEEDED)
    keep = create(runs, "run-2", {"other": True})

    runs.delete_run("run-1")

    with pytest.raises(RunNotFoundError):
        runs.get_run("run-1")
    with pytest.raises(RunNotFoundError):
        runs.list_logs("run-1")
    assert runs.find_run_by_idempotency_key(OWNER, "key-1") is None
    assert runs.get_run("run-2") == keep
    reused, records = new_run("run-3", idempotency_key="key-1")
    assert runs.create_run(reused, records).run_id == "run-3"


def test_a_running_run_is_not_deleted(runs: RunStore) -> None:
    run = create(runs)
    with pytest.raises(RunActiveError):
        runs.delete_run(run.run_id)
    running = step(runs, runs.get_run(run.run_id))
    with pytest.raises(RunActiveError):
        runs.delete_run(run.run_id)
    assert runs.get_run(run.run_id) == running
    assert seqs(runs.list_logs(run.run_id)) == list(range(running.next_seq))


def test_deleting_an_unknown_run_is_not_found(runs: RunStore) -> None:
    with pytest.raises(RunNotFoundError):
        runs.delete_run("nope")


# waiting, callbacks and redrive


def test_a_commit_stores_what_the_run_waits_for_and_the_next_clears_it(runs: RunStore) -> None:
    run = create(runs)
    records = step_records(run, 1)
    waiting = Waiting(kind="callback", node="a", step=0, attempt=1, since=1.0, until=99.0, digest="ab" * 32)
    waited = runs.commit(
        run,
        RunChanges.wait(run, waiting=waiting, next_seq=run.next_seq + 1, now=2.0).model_copy(
            update={"callbacks": {"cd" * 32: "expired"}}
        ),
        records,
    )
    assert waited.waiting == waiting
    assert runs.get_run(run.run_id).waiting == waiting
    assert runs.get_run(run.run_id).callbacks == {"cd" * 32: "expired"}

    moved = step(runs, waited)
    assert moved.waiting is None
    assert runs.get_run(run.run_id).waiting is None
    assert runs.get_run(run.run_id).callbacks == {"cd" * 32: "expired"}, (
        "kept when a commit does not name them"
    )


@pytest.mark.parametrize("status", [RunStatus.FAILED, RunStatus.TIMED_OUT])
def test_a_reopening_commit_takes_a_failed_run_back_to_running(runs: RunStore, status: RunStatus) -> None:
    run = create(runs)
    records = step_records(run, 1)
    ended = runs.commit(run, changes_for(run, records, status=status, node="a"), records)
    records = step_records(ended, 1)
    reopen = changes_for(ended, records, node="a", retry=True).model_copy(
        update={"reopens": True, "not_before": None, "error": None}
    )

    reopened = runs.commit(ended, reopen, records)

    assert reopened.status is RunStatus.RUNNING
    assert reopened.finished_at is None and reopened.error is None
    assert runs.get_run(run.run_id).status is RunStatus.RUNNING
    assert seqs(runs.list_logs(run.run_id)) == [0, 1, 2]
    assert step(runs, reopened).status is RunStatus.RUNNING


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.CANCELLED, RunStatus.RUNNING])
def test_only_a_failed_or_timed_out_run_can_be_reopened(runs: RunStore, status: RunStatus) -> None:
    run = create(runs)
    records = step_records(run, 1)
    read = runs.commit(run, changes_for(run, records, status=status, node="a"), records)
    records = step_records(read, 1)
    reopen = changes_for(read, records, node="a", retry=True).model_copy(update={"reopens": True})
    with pytest.raises(StaleStepError):
        runs.commit(read, reopen, records)
    assert runs.get_run(run.run_id).status is status


# listing


def test_list_runs_gives_an_owners_runs_newest_first_filtered_by_status_and_graph(runs: RunStore) -> None:
    made = []
    for i in range(5):
        run, records = new_run(f"run-{i}", {"i": i})
        run = run.model_copy(
            update={"created_at": 1_700_000_000.0 + i, "graph_id": "g-even" if i % 2 == 0 else "g-odd"}
        )
        made.append(runs.create_run(run, records))
    theirs, records = new_run("run-theirs", owner=OTHER_OWNER)
    runs.create_run(theirs, records)
    done = step(runs, made[1], status=RunStatus.SUCCEEDED)

    assert [r.run_id for r in runs.list_runs(OWNER)] == ["run-4", "run-3", "run-2", "run-1", "run-0"]
    assert [r.run_id for r in runs.list_runs(OWNER, limit=2)] == ["run-4", "run-3"]
    assert [r.run_id for r in runs.list_runs(OWNER, graph_id="g-even")] == ["run-4", "run-2", "run-0"]
    assert [r.run_id for r in runs.list_runs(OWNER, status="SUCCEEDED")] == ["run-1"]
    assert runs.list_runs(OWNER, status="SUCCEEDED")[0].status == done.status
    assert [r.run_id for r in runs.list_runs(OTHER_OWNER)] == ["run-theirs"]
    assert runs.list_runs("nobody") == []


def test_a_deleted_run_leaves_the_listing(runs: RunStore) -> None:
    run = create(runs)
    ended = step(runs, run, status=RunStatus.SUCCEEDED)
    runs.delete_run(ended.run_id)
    assert runs.list_runs(OWNER) == []
