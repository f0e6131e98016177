"""``GET /graphs/{id}/diagram`` on moto draws parallel branches, maps and joins of a stored graph."""

from __future__ import annotations

import os
from typing import Any

import pytest

from functions.shared import wiring
from functions.shared.observability import metrics
from tests.integration.conftest import AwsEnv
from tests.support.api import Api

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

FAN_OUT_GRAPH: dict[str, Any] = {
    "name": "fan-out",
    "start_node": "start",
    "nodes": {name: "test.noop" for name in ("start", "a", "b", "merge", "item", "combine")},
    "edges": {
        "start": {"parallel": ["a", "b"], "join": "merge"},
        "a": "merge",
        "b": "merge",
        "merge": {
            "map": {"items": "rows", "as": "row", "start": "item", "join": "combine", "max_concurrency": 3}
        },
        "item": "combine",
    },
    "reducers": {"total": "sum"},
}


@pytest.fixture
def api(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "tests.support.tools")
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    wiring.reset()
    return Api(aws)


def test_a_stored_fan_out_graph_keeps_its_form_and_its_diagram_shows_it(api: Api) -> None:
    graph_id = api.create_graph(FAN_OUT_GRAPH)
    shown = api("api_get_graph", path=f"/graphs/{graph_id}", query={})
    assert shown.status == 200
    definition = shown.json()["definition"]
    assert definition["edges"]["start"] == {"parallel": ["a", "b"], "join": "merge"}
    assert definition["edges"]["merge"]["map"]["as"] == "row"
    assert definition["reducers"] == {"total": "sum"}

    diagram = api("api_graph_diagram", path=f"/graphs/{graph_id}/diagram")
    assert diagram.status == 200
    text = diagram.text
    assert '    n_start -.->|"parallel"| n_a' in text
    assert '    n_start -.->|"parallel"| n_b' in text
    assert '    n_merge -.->|"map over rows (max 3)"| n_item' in text
    assert '    subgraph sg_3["for each row"]' in text
    assert '    n_combine{{"combine<br/><small>test.noop</small>"}}' in text


def test_an_invalid_fan_out_is_a_400_listing_its_problems(api: Api) -> None:
    bad = {**FAN_OUT_GRAPH, "edges": {**FAN_OUT_GRAPH["edges"], "a": "__end__"}}
    reply = api("api_create_graph", body=bad)
    assert reply.status == 400
    body = reply.json()
    assert body["code"] == "invalid_graph"
    assert "branch 'a' of 'start' can end the run at 'a'" in reply.text
