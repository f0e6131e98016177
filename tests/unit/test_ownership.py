"""The service's ownership rules on the in-memory store: another owner's graph or run is absent."""

from __future__ import annotations

import pytest

from engine.errors import ConflictError, GraphNotFoundError, RunNotFoundError
from engine.model import RunStatus
from engine.service import LOCAL_OWNER, WorkflowService

LOOP_GRAPH = {"name": "one", "start_node": "a", "nodes": {"a": {"tool": "t.inc"}}, "edges": {}}

ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "https://issuer.test|bob"


def test_graphs_are_their_owners(service: WorkflowService) -> None:
    graph = service.create_graph(LOOP_GRAPH, graph_id="g1", owner=ALICE)
    assert graph.owner == ALICE
    with pytest.raises(GraphNotFoundError, match="no graph 'g1'"):
        service.get_graph("g1", owner=BOB)
    with pytest.raises(GraphNotFoundError, match=r"no graph 'g1'$"):
        service.get_graph("g1", 1, owner=BOB)
    with pytest.raises(GraphNotFoundError):
        service.add_graph_version("g1", LOOP_GRAPH, owner=BOB)
    with pytest.raises(GraphNotFoundError):
        service.start_run("g1", owner=BOB)
    with pytest.raises(ConflictError):
        service.create_graph(LOOP_GRAPH, graph_id="g1", owner=BOB)
    assert service.list_graphs(owner=BOB) == []
    assert service.list_graphs(owner=LOCAL_OWNER) == []
    assert service.add_graph_version("g1", LOOP_GRAPH, owner=ALICE).owner == ALICE
    assert [g.version for g in service.list_graphs(owner=ALICE)] == [2]


def test_runs_are_their_owners(service: WorkflowService) -> None:
    service.create_graph(LOOP_GRAPH, graph_id="g1", owner=ALICE)
    run = service.start_run("g1", {"i": 0}, owner=ALICE)
    assert run.owner == ALICE
    for read in (
        lambda: service.get_run(run.run_id, owner=BOB),
        lambda: service.list_logs(run.run_id, owner=BOB),
        lambda: service.require_run_owner(run.run_id, BOB),
        lambda: service.cancel(run.run_id, owner=BOB),
    ):
        with pytest.raises(RunNotFoundError, match=f"no run '{run.run_id}'"):
            read()
    assert service.get_run(run.run_id, owner=ALICE).status is RunStatus.PENDING
    assert service.cancel(run.run_id, owner=ALICE).status is RunStatus.CANCELLED


def test_idempotency_keys_are_per_owner(service: WorkflowService) -> None:
    service.create_graph(LOOP_GRAPH, graph_id="a", owner=ALICE)
    service.create_graph(LOOP_GRAPH, graph_id="b", owner=BOB)
    alices = service.start_run("a", idempotency_key="k", owner=ALICE)
    assert service.start_run("a", idempotency_key="k", owner=ALICE).run_id == alices.run_id
    with pytest.raises(GraphNotFoundError):
        service.start_run("no-such-graph", idempotency_key="k", owner=BOB)
    bobs = service.run_inline("b", {"i": 0}, idempotency_key="k", owner=BOB)
    assert bobs.run_id != alices.run_id
    assert bobs.owner == BOB
    assert service.start_run("no-such-graph", idempotency_key="k", owner=BOB).run_id == bobs.run_id
