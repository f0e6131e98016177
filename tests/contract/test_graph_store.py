"""The GraphStore contract: immutable versions, the latest version, the listing."""

from __future__ import annotations

import pytest

from engine.errors import ConflictError, GraphNotFoundError
from engine.graph import Graph
from engine.model import GraphRecord
from engine.ports import GraphStore
from tests.contract.factories import OTHER_OWNER, OWNER


def record(
    graph_id: str, version: int, created_at: float, name: str = "g", owner: str | None = OWNER
) -> GraphRecord:
    definition = Graph.model_validate(
        {
            "name": name,
            "description": f"{name} v{version}",
            "start_node": "a",
            "nodes": {
                "a": {"tool": "t.a", "retry": {"max_attempts": 3, "jitter": True}},
                "b": {"tool": "t.b", "timeout_seconds": 5, "catch": "a"},
            },
            "edges": {
                "a": [{"when": {"key": "n", "op": ">", "value": 2}, "to": "b"}, {"to": "__end__"}],
                "b": "a",
            },
            "max_steps": 10 + version,
        }
    )
    return GraphRecord(
        graph_id=graph_id, version=version, definition=definition, created_at=created_at, owner=owner
    )


def test_put_then_get_a_version_and_the_latest(graphs: GraphStore) -> None:
    v1, v2 = record("g1", 1, 100.0), record("g1", 2, 200.5)
    graphs.put_graph(v1)
    assert graphs.get_graph("g1") == v1
    graphs.put_graph(v2)

    assert graphs.get_graph("g1", 1) == v1
    assert graphs.get_graph("g1", 2) == v2
    assert graphs.get_graph("g1") == v2


def test_a_version_is_written_once(graphs: GraphStore) -> None:
    graphs.put_graph(record("g1", 1, 100.0, name="first"))
    with pytest.raises(ConflictError):
        graphs.put_graph(record("g1", 1, 150.0, name="second"))
    assert graphs.get_graph("g1", 1).definition.name == "first"


def test_unknown_graphs_and_versions_are_not_found(graphs: GraphStore) -> None:
    with pytest.raises(GraphNotFoundError):
        graphs.get_graph("nope")
    with pytest.raises(GraphNotFoundError):
        graphs.get_graph("nope", 1)
    graphs.put_graph(record("g1", 1, 100.0))
    with pytest.raises(GraphNotFoundError):
        graphs.get_graph("g1", 2)


def test_list_holds_the_latest_version_of_each_graph_newest_first(graphs: GraphStore) -> None:
    assert graphs.list_graphs(OWNER) == []
    graphs.put_graph(record("old", 1, 100.0))
    graphs.put_graph(record("mid", 1, 200.0))
    graphs.put_graph(record("new", 1, 300.0))
    graphs.put_graph(record("old", 2, 400.0))

    listed = graphs.list_graphs(OWNER)
    assert [(r.graph_id, r.version) for r in listed] == [("old", 2), ("new", 1), ("mid", 1)]
    assert listed[0] == graphs.get_graph("old")
    assert [r.graph_id for r in graphs.list_graphs(OWNER, limit=2)] == ["old", "new"]


def test_an_older_version_written_late_does_not_replace_the_latest(graphs: GraphStore) -> None:
    graphs.put_graph(record("g1", 3, 300.0))
    graphs.put_graph(record("g1", 2, 200.0))
    assert graphs.get_graph("g1").version == 3
    assert [r.version for r in graphs.list_graphs(OWNER)] == [3]


def test_each_owner_lists_only_its_graphs(graphs: GraphStore) -> None:
    graphs.put_graph(record("mine", 1, 100.0))
    graphs.put_graph(record("theirs", 1, 200.0, owner=OTHER_OWNER))
    graphs.put_graph(record("nobodys", 1, 300.0, owner=None))

    assert [r.graph_id for r in graphs.list_graphs(OWNER)] == ["mine"]
    assert [r.graph_id for r in graphs.list_graphs(OTHER_OWNER)] == ["theirs"]
    assert graphs.get_graph("theirs").owner == OTHER_OWNER
    assert graphs.get_graph("nobodys").owner is None


def test_delete_removes_every_version_and_the_listing_entry(graphs: GraphStore) -> None:
    graphs.put_graph(record("g1", 1, 100.0))
    graphs.put_graph(record("g1", 2, 200.0))
    other = record("g2", 1, 150.0)
    graphs.put_graph(other)

    assert graphs.delete_graph("g1") == 2

    for version in (None, 1, 2):
        with pytest.raises(GraphNotFoundError):
            graphs.get_graph("g1", version)
    assert graphs.list_graphs(OWNER) == [other]
    assert graphs.get_graph("g2") == other


def test_deleting_an_unknown_graph_is_not_found(graphs: GraphStore) -> None:
    with pytest.raises(GraphNotFoundError):
        graphs.delete_graph("nope")
    graphs.put_graph(record("g1", 1, 100.0))
    graphs.delete_graph("g1")
    with pytest.raises(GraphNotFoundError):
        graphs.delete_graph("g1")


def test_a_deleted_graph_id_can_be_used_again_from_version_1(graphs: GraphStore) -> None:
    graphs.put_graph(record("g1", 1, 100.0))
    graphs.put_graph(record("g1", 2, 200.0))
    graphs.delete_graph("g1")
    again = record("g1", 1, 300.0, name="again")
    graphs.put_graph(again)
    assert graphs.get_graph("g1") == again
    assert graphs.list_graphs(OWNER) == [again]
