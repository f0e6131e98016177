"""The ConnectionStore contract: which runs a WebSocket connection follows."""

from __future__ import annotations

from engine.ports import ConnectionStore


def test_connections_follow_runs_until_removed(connections: ConnectionStore) -> None:
    assert connections.runs_of("conn-1") == []
    connections.add_connection("conn-1", "run-1")
    connections.add_connection("conn-1", "run-2")
    connections.add_connection("conn-1", "run-1")
    connections.add_connection("conn-2", "run-1")

    assert sorted(connections.runs_of("conn-1")) == ["run-1", "run-2"]
    assert connections.runs_of("conn-2") == ["run-1"]

    connections.remove_connection("conn-1")
    assert connections.runs_of("conn-1") == []
    assert connections.runs_of("conn-2") == ["run-1"]
    connections.remove_connection("conn-1")
    connections.remove_connection("never-seen")


def test_a_connection_can_follow_many_runs(connections: ConnectionStore) -> None:
    run_ids = [f"run-{i:03d}" for i in range(60)]
    for run_id in run_ids:
        connections.add_connection("conn-1", run_id)
    assert sorted(connections.runs_of("conn-1")) == run_ids
    connections.remove_connection("conn-1")
    assert connections.runs_of("conn-1") == []
