"""Fan-out, branch steps and the join, as pure functions of values (the branch half of :mod:`engine.step`).

A node whose edge is a parallel or map edge fans out once its tool succeeds:
:func:`fan_out` returns the commit that stores the node's updates and a
:class:`~engine.model.FanOut` with the first branches started, and one message
per started branch. A branch message names the fan-out (its ``step``), the
branch's index and the branch's own position ``(step, attempt)``.
:func:`decide_branch` is :func:`engine.step.decide` for one attempt of a
branch's node: the branch moves on, retries, arrives at the join, or fails. The
commit of the last branch to arrive is the join: it merges every branch's
updates into the state (:mod:`engine.reducers`) and moves the run to the join
node. Nothing here runs a tool, reads a clock or does I/O.

Why each branch step commits once and the join fires once. Every commit of a
run, on its main path or in any branch, is conditional on nothing having been
committed since the run was read (:meth:`engine.ports.RunStore.commit`); so a
run's commits form one sequence, each decided from the run as the previous one
left it. A branch step is decided only while the run holds that branch at the
message's position; the commit moves it on, so a duplicate or a redelivered
message finds it elsewhere and does nothing (or loses the race to commit). The
join is decided by the commit that finds every other branch arrived, and it
clears the fan-out: no later commit can find the same. Two branches that commit
at the same time are ordered by the condition: the loser reads the run again
and, if its branch is still where it was, decides again from the same tool
result (:meth:`engine.service.WorkflowService.run_step` does that).
"""

from __future__ import annotations

from typing import Any

from engine.errors import ConditionError
from engine.graph import END, MapEdge, ParallelEdge
from engine.limits import MAX_MAP_ITEMS
from engine.model import Branch, FanOut, LogType, Run, RunChanges, RunError, StepMessage
from engine.reducers import MergeConflict, ReducerError, collect_items, merge_branches
from engine.step import (
    ERROR_MESSAGE_LIMIT,
    CompiledGraph,
    Raised,
    StepOutcome,
    TimedOut,
    ToolResult,
    _checked_updates,
    _fail,
    _Log,
    _Rejected,
    take_catch,
)

__all__ = ["branch_message", "branch_view", "decide_branch", "fan_out", "running_messages"]


def branch_message(run_id: str, fanout: FanOut, branch: Branch) -> StepMessage:
    """The message that runs ``branch`` at its position."""
    return StepMessage(
        run_id=run_id,
        step=branch.step,
        attempt=branch.attempt,
        not_before=branch.not_before,
        fanout=fanout.step,
        branch=branch.index,
    )


def running_messages(run: Run) -> list[StepMessage]:
    """The messages of every branch of ``run``'s fan-out that has not arrived, in branch order."""
    fanout = run.fanout
    if fanout is None:
        return []
    return [
        branch_message(run.run_id, fanout, b) for b in sorted(fanout.running.values(), key=lambda b: b.index)
    ]


def fan_out(
    compiled: CompiledGraph,
    run: Run,
    log: _Log,
    node_name: str,
    state: dict[str, Any],
    updates: dict[str, Any],
) -> StepOutcome:
    """The fan-out node ``node_name`` succeeded with ``updates`` (``state`` is the run's with them).

    A map whose ``items`` key does not hold a list, or holds more than
    :data:`~engine.limits.MAX_MAP_ITEMS`, fails the run; an empty map goes
    straight to the join, its ``collect`` keys set to empty lists.
    """
    graph = compiled.graph
    edge = graph.fan_out(node_name)
    assert edge is not None
    if run.step + 1 >= graph.max_steps:
        error = RunError(
            type="MaxStepsExceeded",
            message=f"run reached max_steps={graph.max_steps} at the fan-out {node_name!r}",
            node=node_name,
        )
        return _fail(run, log, error, updates=updates)
    if isinstance(edge, ParallelEdge):
        names = list(edge.parallel)
        fanout = FanOut(
            node=node_name,
            join=edge.join,
            kind="parallel",
            step=run.step,
            size=len(names),
            started=0,
            names=names,
        )
        starts = names
        log.add(
            LogType.FANNED_OUT,
            f"{node_name} -> parallel {', '.join(names)} (join {edge.join})",
            node=node_name,
            data={"branches": names, "join": edge.join},
        )
    else:
        spec = edge.map
        items = state.get(spec.items)
        if not isinstance(items, list):
            error = RunError(
                type="MapItemsNotAList",
                message=f"map at {node_name!r} needs a list at state key {spec.items!r}, found "
                + ("nothing" if items is None else type(items).__name__),
                node=node_name,
            )
            return _fail(run, log, error, updates=updates)
        if len(items) > MAX_MAP_ITEMS:
            error = RunError(
                type="MapTooLarge",
                message=f"map at {node_name!r} over {spec.items!r} has {len(items)} items; the limit is {MAX_MAP_ITEMS}",
                node=node_name,
            )
            return _fail(run, log, error, updates=updates)
        if not items:
            empty = {**updates, **{target: [] for target in spec.collect.values()}}
            log.add(
                LogType.EDGE_TAKEN,
                f"{node_name} -> {spec.join} (map over an empty {spec.items!r})",
                node=node_name,
                data={"to": spec.join, "items": 0},
            )
            changes = RunChanges.advance(run, to=spec.join, next_seq=log.next_seq, now=log.now, updates=empty)
            return StepOutcome(changes, log.records, StepMessage(run_id=run.run_id, step=run.step + 1))
        fanout = FanOut(
            node=node_name,
            join=spec.join,
            kind="map",
            step=run.step,
            size=len(items),
            started=0,
            items=spec.items,
        )
        starts = [spec.start] * min(len(items), spec.max_concurrency)
        log.add(
            LogType.FANNED_OUT,
            f"{node_name} -> map over {spec.items} ({len(items)} items, at most {spec.max_concurrency} at once)",
            node=node_name,
            data={"items": len(items), "max_concurrency": spec.max_concurrency, "join": spec.join},
        )
    written: set[str] = set()
    for start in starts:
        _start_branch(fanout, start, written)
    changes = RunChanges.branched(run, fanout=fanout, written=written, next_seq=log.next_seq, now=log.now)
    changes.state_updates = updates
    messages = running_messages(changes.apply(run).model_copy(update={"fanout": fanout}))
    return StepOutcome(changes, log.records, messages[0], tuple(messages[1:]))


def _start_branch(fanout: FanOut, start: str, written: set[str]) -> Branch:
    index = fanout.started
    branch = Branch(index=index, node=start)
    fanout.running[str(index)] = branch
    fanout.updates[str(index)] = {}
    fanout.started += 1
    written.add(str(index))
    return branch


def branch_view(compiled: CompiledGraph, run: Run, index: int) -> Run:
    """The run as branch ``index``'s node sees it: at the branch's node and attempt, with its state.

    The state is the run's (as of the fan-out), a map item's element and index,
    and what the branch wrote so far.
    """
    fanout = run.fanout
    assert fanout is not None
    branch = fanout.running[str(index)]
    state = run.state.copy()
    edge = compiled.graph.fan_out(fanout.node)
    if isinstance(edge, MapEdge):
        state[edge.map.as_] = run.state[edge.map.items][index]
        state[edge.map.index_key] = index
    state.update(fanout.updates[str(index)])
    return run.model_copy(
        update={"current_node": branch.node, "attempt": branch.attempt, "state": state, "state_bytes": None}
    )


def decide_branch(
    compiled: CompiledGraph,
    run: Run,
    index: int,
    result: ToolResult,
    *,
    started: float,
    now: float,
    duration_ms: float,
    draw: float = 1.0,
) -> StepOutcome:
    """What follows the attempt of branch ``index`` of ``run``'s fan-out whose tool gave ``result``.

    ``run`` is the run as read (not the branch's view); the other arguments are
    :func:`engine.step.decide`'s. The branch's updates stay its own until the
    join; its edges are chosen on its view of the state.
    """
    fanout = run.fanout
    assert fanout is not None
    fanout = fanout.model_copy(update={"running": dict(fanout.running), "updates": fanout.updates})
    branch = fanout.running[str(index)]
    name = fanout.name(index)
    node = compiled.graph.nodes[branch.node]
    log = _Log(run, now)
    log.add(
        LogType.STEP_STARTED,
        f"{branch.node} ({node.label}) attempt {branch.attempt} [{name}]",
        node=branch.node,
        attempt=branch.attempt,
        ts=started,
        branch=name,
    )
    if isinstance(result, Raised):
        return _branch_failure(
            compiled, run, fanout, log, branch, result.type, result.message, duration_ms, draw
        )
    if isinstance(result, TimedOut):
        return _branch_failure(
            compiled, run, fanout, log, branch, "ToolTimeoutError", result.message, duration_ms, draw
        )
    view = branch_view(compiled, run, index)
    try:
        updates, _ = _checked_updates(node.label, branch.node, view, result.value)
    except _Rejected as exc:
        return _branch_failure(compiled, run, fanout, log, branch, exc.type_name, str(exc), duration_ms, draw)
    log.add(
        LogType.STEP_SUCCEEDED,
        f"{branch.node} updated {', '.join(sorted(updates)) or 'nothing'} [{name}]",
        node=branch.node,
        attempt=branch.attempt,
        duration_ms=round(duration_ms, 3),
        branch=name,
    )
    written = {**fanout.updates[str(index)], **updates}
    try:
        target, why, keys = compiled.choose_edge(branch.node, {**view.state, **updates})
    except ConditionError as exc:
        return _branch_failed(compiled, run, fanout, log, branch, "ConditionFailed", exc.message)
    except LookupError as exc:
        reasons, keys = exc.args
        return _branch_failed(
            compiled,
            run,
            fanout,
            log,
            branch,
            "NoMatchingEdge",
            f"no edge from {branch.node!r} matched: {reasons}",
        )
    if target is None or target == END:
        return _branch_failed(
            compiled,
            run,
            fanout,
            log,
            branch,
            "BranchEnded",
            f"{branch.node!r} ended its branch without the join",
        )
    return _move(compiled, run, fanout, log, branch, target, why, keys, written)


def _move(
    compiled: CompiledGraph,
    run: Run,
    fanout: FanOut,
    log: _Log,
    branch: Branch,
    target: str,
    why: str,
    keys: list[str],
    updates: dict[str, Any],
) -> StepOutcome:
    """Branch ``branch`` moves to ``target`` (the join: it arrives) with ``updates`` as all it wrote."""
    name = fanout.name(branch.index)
    graph = compiled.graph
    if run.step + 1 >= graph.max_steps:
        error = RunError(
            type="MaxStepsExceeded",
            message=f"run reached max_steps={graph.max_steps} in branch {name} before {target!r}",
            node=branch.node,
        )
        return _fail(run, log, error)
    key = str(branch.index)
    fanout.updates = _replaced(fanout.updates, key, updates)
    written = {key}
    if target != fanout.join:
        log.add(LogType.EDGE_TAKEN, why, node=branch.node, data={"to": target, "keys": keys}, branch=name)
        moved = Branch(index=branch.index, node=target, step=branch.step + 1)
        fanout.running[key] = moved
        changes = RunChanges.branched(run, fanout=fanout, written=written, next_seq=log.next_seq, now=log.now)
        return StepOutcome(changes, log.records, branch_message(run.run_id, fanout, moved))
    del fanout.running[key]
    log.add(
        LogType.BRANCH_SUCCEEDED,
        f"branch {name} arrived at {fanout.join} ({fanout.arrived} of {fanout.size})",
        node=branch.node,
        data={"join": fanout.join, "arrived": fanout.arrived, "size": fanout.size},
        branch=name,
    )
    if fanout.started < fanout.size:
        edge = graph.fan_out(fanout.node)
        assert isinstance(edge, MapEdge)
        started = _start_branch(fanout, edge.map.start, written)
        changes = RunChanges.branched(run, fanout=fanout, written=written, next_seq=log.next_seq, now=log.now)
        return StepOutcome(changes, log.records, branch_message(run.run_id, fanout, started))
    if fanout.running:
        changes = RunChanges.branched(run, fanout=fanout, written=written, next_seq=log.next_seq, now=log.now)
        return StepOutcome(changes, log.records, None)
    return _join(compiled, run, fanout, log)


def _replaced(
    updates: dict[str, dict[str, Any]], key: str, value: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """``updates`` with ``key`` set to ``value``, loading none of the other branches' values."""
    out = updates.copy()
    out[key] = value
    return out


def _join(compiled: CompiledGraph, run: Run, fanout: FanOut, log: _Log) -> StepOutcome:
    """Every branch arrived: merge their updates into the state and go on at the join node."""
    graph = compiled.graph
    per_branch = [fanout.updates[str(i)] for i in range(fanout.size)]
    edge = graph.fan_out(fanout.node)
    exclude: frozenset[str] = frozenset()
    collected: dict[str, Any] = {}
    if isinstance(edge, MapEdge):
        spec = edge.map
        exclude = frozenset({spec.as_, spec.index_key, *spec.collect})
        collected = collect_items(per_branch, spec.collect)
    try:
        merged = merge_branches(
            run.state, [(fanout.name(i), u) for i, u in enumerate(per_branch)], graph.reducers, exclude
        )
    except MergeConflict as exc:
        error = RunError(type="MergeConflict", message=str(exc), node=fanout.join)
        return _fail(run, log, error)
    except ReducerError as exc:
        error = RunError(type="ReducerError", message=str(exc), node=fanout.join)
        return _fail(run, log, error)
    updates = {**merged, **collected}
    try:
        _, size = _checked_updates("join", fanout.join, run, updates)
    except _Rejected as exc:
        return _fail(run, log, RunError(type=exc.type_name, message=str(exc), node=fanout.join))
    log.add(
        LogType.JOINED,
        f"{fanout.size} branches of {fanout.node} joined at {fanout.join}; updated {', '.join(sorted(updates)) or 'nothing'}",
        node=fanout.join,
        data={"from": fanout.node, "branches": fanout.size, "keys": sorted(updates)},
    )
    changes = RunChanges.advance(run, to=fanout.join, next_seq=log.next_seq, now=log.now, updates=updates)
    changes.state_bytes = size
    return StepOutcome(changes, log.records, StepMessage(run_id=run.run_id, step=run.step + 1))


def _branch_failure(
    compiled: CompiledGraph,
    run: Run,
    fanout: FanOut,
    log: _Log,
    branch: Branch,
    error_type: str,
    message: str,
    duration_ms: float,
    draw: float,
) -> StepOutcome:
    """The attempt failed: retry it, take the node's catch inside the branch, or fail the branch."""
    name = fanout.name(branch.index)
    node = compiled.graph.nodes[branch.node]
    text = message or error_type
    if len(text) > ERROR_MESSAGE_LIMIT:
        text = text[:ERROR_MESSAGE_LIMIT] + f"... ({len(text) - ERROR_MESSAGE_LIMIT} more characters)"
    error = RunError(type=error_type, message=text, node=branch.node)
    log.add(
        LogType.STEP_FAILED,
        f"{branch.node} attempt {branch.attempt} failed: {error.type}: {error.message} [{name}]",
        node=branch.node,
        attempt=branch.attempt,
        duration_ms=round(duration_ms, 3),
        data={"error": error.model_dump()},
        branch=name,
    )
    policy = node.retry
    key = str(branch.index)
    if branch.attempt < policy.max_attempts:
        delay = policy.delay(branch.attempt, draw)
        log.add(
            LogType.RETRY_SCHEDULED,
            f"{branch.node} attempt {branch.attempt + 1} of {policy.max_attempts} in {delay:.3g}s [{name}]",
            node=branch.node,
            attempt=branch.attempt + 1,
            data={"delay_seconds": delay},
            branch=name,
        )
        retried = branch.model_copy(update={"attempt": branch.attempt + 1, "not_before": log.now + delay})
        fanout.running[key] = retried
        changes = RunChanges.branched(
            run, fanout=fanout, written=set(), next_seq=log.next_seq, now=log.now, executed=False
        )
        return StepOutcome(changes, log.records, branch_message(run.run_id, fanout, retried))
    if node.catch is not None:
        why = f"{branch.node} -> {node.catch} (catch after {branch.attempt} attempt(s))"
        updates = {**fanout.updates[key], "error": error.model_dump()}
        return _move(compiled, run, fanout, log, branch, node.catch, why, [], updates)
    return _branch_failed(compiled, run, fanout, log, branch, error.type, error.message)


def _branch_failed(
    compiled: CompiledGraph,
    run: Run,
    fanout: FanOut,
    log: _Log,
    branch: Branch,
    error_type: str,
    message: str,
) -> StepOutcome:
    """The branch failed for good: its siblings are cancelled; the fan-out node's catch, else the run fails."""
    name = fanout.name(branch.index)
    error = RunError(
        type=error_type, message=f"branch {name} failed at {branch.node!r}: {message}", node=branch.node
    )
    log.add(
        LogType.BRANCH_FAILED,
        f"branch {name} failed: {error_type}: {message}; {len(fanout.running) - 1} other branch(es) cancelled",
        node=branch.node,
        data={"error": error.model_dump(), "cancelled": len(fanout.running) - 1},
        branch=name,
    )
    catch = compiled.graph.nodes[fanout.node].catch
    if catch is None:
        return _fail(run, log, error)
    why = f"{fanout.node} -> {catch} (catch: branch {name} failed)"
    return take_catch(compiled, run, log, fanout.node, catch, error, why, branch=name)
