"""Hostile input through the HTTP API Lambda on moto: every limit of ``engine.limits``, deep nesting,
catastrophic patterns, odd unicode and huge numbers.

Each case answers a 4xx (or fails its run with a clear reason), stores nothing (the table and the
queue are checked) and leaves the other routes working.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from engine import limits
from functions.api import app as api_app
from functions.shared import wiring
from functions.shared.observability import metrics
from local.lambda_context import LocalContext
from tests.integration.conftest import AwsEnv
from tests.support.api import Api
from tests.support.events import load_event
from tests.support.tools import LOOP_GRAPH

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

BODY_ROUTES = ("api_create_graph", "api_update_graph", "api_start_run", "api_cancel_run")


@pytest.fixture
def api(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "engine.tools.dq,tests.support.tools")
    monkeypatch.delenv("WAIT_BUDGET_SECONDS", raising=False)
    monkeypatch.delenv("MAX_BODY_BYTES", raising=False)
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    wiring.reset()
    return Api(aws)


def stored_items(api: Api) -> list[str]:
    """The partition keys in the table: graphs, runs, logs, idempotency keys."""
    items = api.env.dynamodb.scan(TableName=api.env.resources.table_name)["Items"]
    return sorted(item["pk"]["S"] for item in items)


def assert_nothing_stored(api: Api, before: list[str] | None = None) -> None:
    assert stored_items(api) == (before or [])
    assert api.drain_queue() == []
    assert api("api_list_graphs", query={}).status == 200


def nested(depth: int, leaf: Any = 0) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def graph_with_condition(condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "branching",
        "start_node": "a",
        "nodes": {"a": {"tool": "test.noop"}, "b": {"tool": "test.noop"}},
        "edges": {"a": [{"when": condition, "to": "b"}, {"to": "__end__"}]},
    }


def code(reply: Any) -> tuple[int, str]:
    return reply.status, reply.json()["code"]


# deep nesting


@pytest.mark.parametrize("name", BODY_ROUTES)
def test_a_body_nested_10000_deep_is_400_on_every_route(api: Api, name: str) -> None:
    for body in ("[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000):
        reply = api(name, body=body)
        assert code(reply) == (400, "too_deep"), reply.text
        assert str(limits.MAX_BODY_DEPTH) in reply.json()["message"]
    assert_nothing_stored(api)


def test_a_condition_nested_too_deep_is_refused_naming_its_edge(api: Api) -> None:
    condition: dict[str, Any] = {"key": "x", "op": "exists"}
    for _ in range(limits.MAX_CONDITION_DEPTH + 5):
        condition = {"not": condition}
    reply = api("api_create_graph", body=graph_with_condition(condition))
    assert code(reply) == (400, "invalid_graph"), reply.text
    problems = reply.json()["details"]["problems"]
    assert problems[0]["where"] == "edges.a[0]"
    assert f"more than {limits.MAX_CONDITION_DEPTH} deep" in problems[0]["message"]
    assert_nothing_stored(api)


def test_a_condition_at_the_depth_limit_is_stored_and_listed(api: Api) -> None:
    condition: dict[str, Any] = {"key": "x", "op": "exists"}
    for _ in range(limits.MAX_CONDITION_DEPTH - 1):
        condition = {"not": condition}
    graph_id = api.create_graph(graph_with_condition(condition))
    assert api.graph_ids() == [graph_id]
    assert api("api_get_graph", path=f"/graphs/{graph_id}").status == 200


def test_initial_state_nested_too_deep_is_400_and_sends_nothing(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    before = stored_items(api)
    reply = api("api_start_run", body={"graph_id": graph_id, "initial_state": {"x": nested(70)}})
    assert code(reply) == (400, "bad_request"), reply.text
    assert f"the limit is {limits.MAX_STATE_DEPTH}" in reply.json()["message"]
    assert_nothing_stored(api, before)


def test_a_tool_result_nested_too_deep_fails_the_run_at_once(api: Api) -> None:
    graph_id = api.create_graph({"name": "deep", "start_node": "d", "nodes": {"d": "test.deep"}})
    reply = api(
        "api_start_run_wait", body={"graph_id": graph_id, "wait": True, "initial_state": {"depth": 900}}
    )
    assert reply.status == 200, reply.text
    run = reply.json()
    assert run["status"] == "FAILED"
    assert run["error"]["node"] == "d"
    assert f"levels deep; the limit is {limits.MAX_STATE_DEPTH}" in run["error"]["message"]
    assert api("api_get_run", path=f"/runs/{run['run_id']}").status == 200


# conditions


def test_a_catastrophic_pattern_ends_the_run_quickly(api: Api) -> None:
    graph_id = api.create_graph(graph_with_condition({"key": "s", "op": "matches", "value": "(a+)+$"}))
    state = {"s": "a" * 50_000 + "!"}
    reply = api("api_start_run_wait", body={"graph_id": graph_id, "wait": True, "initial_state": state})
    assert reply.status == 200, reply.text
    assert reply.json()["status"] == "SUCCEEDED"
    assert reply.json()["current_node"] == "a"
    state = {"s": "a" * 50_000}
    reply = api("api_start_run_wait", body={"graph_id": graph_id, "wait": True, "initial_state": state})
    assert (reply.json()["status"], reply.json()["current_node"]) == ("SUCCEEDED", "b")


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        (r"(a)\1", "invalid regular expression"),
        ("(?=a)b", "invalid regular expression"),
        ("a" * 1001, "limit"),
    ],
)
def test_a_pattern_re2_cannot_use_is_refused_naming_its_edge(api: Api, pattern: str, fragment: str) -> None:
    reply = api(
        "api_create_graph", body=graph_with_condition({"key": "s", "op": "matches", "value": pattern})
    )
    assert code(reply) == (400, "invalid_graph"), reply.text
    problem = reply.json()["details"]["problems"][0]
    assert problem["where"] == "edges.a[0]"
    assert fragment in problem["message"]
    assert_nothing_stored(api)


# graph limits


def test_graph_size_limits(api: Api) -> None:
    many_nodes = {
        "start_node": "n0",
        "nodes": {f"n{i}": "test.noop" for i in range(limits.MAX_NODES + 1)},
        "edges": {f"n{i}": f"n{i + 1}" for i in range(limits.MAX_NODES)},
    }
    many_rules = graph_with_condition({"key": "x", "op": "exists"})
    many_rules["edges"]["a"] = [
        {"when": {"key": "x", "op": "==", "value": i}, "to": "b"}
        for i in range(limits.MAX_RULES_PER_EDGE + 1)
    ] + [{"to": "__end__"}]
    too_many_steps = {**LOOP_GRAPH, "max_steps": limits.MAX_STEPS_CEILING + 1}
    for graph, where in ((many_nodes, "nodes"), (many_rules, "edges.a"), (too_many_steps, "max_steps")):
        reply = api("api_create_graph", body=graph)
        assert code(reply) == (400, "invalid_graph"), reply.text
        assert [p["where"] for p in reply.json()["details"]["problems"]] == [where]
    assert_nothing_stored(api)


# state limits


def test_initial_state_too_large_is_413_and_sends_nothing(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_STATE_BYTES", 10_000)
    graph_id = api.create_graph(LOOP_GRAPH)
    before = stored_items(api)
    for name in ("api_start_run", "api_start_run_wait"):
        reply = api(
            name,
            body={
                "graph_id": graph_id,
                "wait": name.endswith("wait"),
                "initial_state": {"pad": "y" * 20_000},
            },
        )
        assert code(reply) == (413, "state_too_large"), reply.text
        assert reply.json()["details"]["limit"] == 10_000
    assert_nothing_stored(api, before)


def test_a_state_that_grows_too_large_fails_the_attempt_at_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_STATE_BYTES", 10_000)
    graph_id = api.create_graph({"name": "big", "start_node": "b", "nodes": {"b": "test.big"}})
    reply = api(
        "api_start_run_wait", body={"graph_id": graph_id, "wait": True, "initial_state": {"size": 20_000}}
    )
    run = reply.json()
    assert run["status"] == "FAILED", reply.text
    assert run["error"]["type"] == "StateTooLargeError"
    assert "the limit is 10000" in run["error"]["message"]
    assert run["step"] == 0 and run["attempt"] == 1


def test_too_many_state_keys(api: Api) -> None:
    graph_id = api.create_graph({"name": "keys", "start_node": "k", "nodes": {"k": "test.keys"}})
    before = stored_items(api)
    too_many = {f"k{i}": i for i in range(limits.MAX_STATE_KEYS + 1)}
    assert code(api("api_start_run", body={"graph_id": graph_id, "initial_state": too_many})) == (
        400,
        "bad_request",
    )
    assert_nothing_stored(api, before)
    body = {"graph_id": graph_id, "wait": True, "initial_state": {"count": limits.MAX_STATE_KEYS + 1}}
    run = api("api_start_run_wait", body=body).json()
    assert run["status"] == "FAILED"
    assert f"the limit is {limits.MAX_STATE_KEYS}" in run["error"]["message"]


@pytest.mark.parametrize(
    "key_json",
    [
        '"\\ud800"',
        '"a\\udfffb"',
        '"\\u0000"',
        '"line\\nbreak"',
        '""',
        json.dumps("k" * (limits.MAX_STATE_KEY_LENGTH + 1)),
    ],
)
def test_bad_state_keys_are_400(api: Api, key_json: str) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    before = stored_items(api)
    reply = api("api_start_run", body=f'{{"graph_id": "{graph_id}", "initial_state": {{{key_json}: 1}}}}')
    assert reply.status == 400, reply.text
    assert_nothing_stored(api, before)


def test_a_right_to_left_mark_is_a_valid_state_key(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    reply = api(
        "api_start_run_wait",
        body={"graph_id": graph_id, "wait": True, "initial_state": {"\u200fkey": "\u202ev"}},
    )
    assert reply.status == 200, reply.text
    assert reply.json()["state"]["\u200fkey"] == "\u202ev"


def test_a_lone_surrogate_anywhere_in_a_body_is_400(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    before = stored_items(api)
    bodies = {
        "api_start_run": f'{{"graph_id": "{graph_id}", "initial_state": {{"k": ["\\udc00"]}}}}',
        "api_create_graph": json.dumps({**LOOP_GRAPH, "description": "x"})[:-1] + ', "name": "\\ud83d"}',
        "api_cancel_run": '{"reason": "\\ud83d"}',
    }
    for name, body in bodies.items():
        reply = api(name, body=body)
        assert code(reply) == (400, "bad_request"), (name, reply.text)
        assert "surrogate" in reply.json()["message"]
    assert_nothing_stored(api, before)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" * 10_000, "NaN", "Infinity"])
def test_huge_numbers_are_400(api: Api, number: str) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    before = stored_items(api)
    start = api("api_start_run", body=f'{{"graph_id": "{graph_id}", "initial_state": {{"n": {number}}}}}')
    assert start.status == 400, start.text
    graph = api("api_create_graph", body=json.dumps(LOOP_GRAPH)[:-1] + f', "max_steps": {number}}}')
    assert graph.status == 400, graph.text
    assert_nothing_stored(api, before)


# API edges


@pytest.mark.parametrize("name", BODY_ROUTES)
def test_undecodable_bodies_and_content_types_are_4xx(api: Api, name: str) -> None:
    for content_type in (
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "text/plain",
        "application/json; charset=latin-9",
    ):
        reply = api(name, headers={"content-type": content_type}, body='{"reason": "x"}')
        assert reply.status in (400, 415), (content_type, reply.text)
        assert reply.json()["code"] in ("unsupported_media_type", "bad_request", "malformed_json")
    assert_nothing_stored(api)


def test_a_method_a_route_does_not_have_is_405_with_allow(api: Api) -> None:
    reply = api("api_list_graphs", method="PATCH", query={})
    assert code(reply) == (405, "method_not_allowed")
    assert reply.headers["Allow"] == "GET, POST"
    reply = api("api_get_run", method="PUT")
    assert code(reply) == (405, "method_not_allowed")
    assert reply.headers["Allow"] == "DELETE, GET"
    assert code(api("api_list_graphs", path="/nowhere", method="PATCH")) == (404, "route_not_found")


@pytest.mark.parametrize(
    "raw_id", ["%0A", "abc%0Adef", "%00", "%E2%80%8F", "%ED%A0%80", "x" * 129, "%41" * 100]
)
def test_odd_ids_get_a_json_4xx(api: Api, raw_id: str) -> None:
    for name, path in (("api_get_graph", f"/graphs/{raw_id}"), ("api_get_run", f"/runs/{raw_id}")):
        reply = api(name, path=path)
        assert reply.status in (400, 404, 422), (path, reply.text)
        assert reply.headers.get("Content-Type", "").startswith("application/json")
        reply.json()


def test_percent_encoded_ids_are_measured_decoded(api: Api) -> None:
    graph_id = "g" * 100
    assert api("api_create_graph", query={"graph_id": graph_id}, body=LOOP_GRAPH).status == 201
    encoded = "".join(f"%{b:02X}" for b in graph_id.encode())
    assert len(encoded) > 128
    assert api("api_get_graph", path=f"/graphs/{encoded}").status == 200


def test_a_run_too_large_for_one_response_is_413(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    run = api(
        "api_start_run_wait", body={"graph_id": graph_id, "wait": True, "initial_state": {"pad": "p" * 5000}}
    )
    run_id = run.json()["run_id"]
    monkeypatch.setattr(limits, "MAX_RESPONSE_BYTES", 4000)
    reply = api("api_get_run", path=f"/runs/{run_id}")
    assert code(reply) == (413, "response_too_large")
    assert "include_state=false" in reply.json()["message"]
    assert api("api_get_run", path=f"/runs/{run_id}", query={"include_state": "false"}).status == 200
    assert api("api_get_run", path=f"/runs/{run_id}/state/i").json() == 3


# deleting


def test_delete_graph_and_run_from_the_sample_events(api: Api) -> None:
    graph_id = "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
    assert api("api_create_graph", query={"graph_id": graph_id}, body=LOOP_GRAPH).status == 201
    run_id = api("api_start_run_wait", body={"graph_id": graph_id, "wait": True}).json()["run_id"]
    reply = api("api_delete_run", path=f"/runs/{run_id}")
    assert reply.status == 204, reply.text
    assert code(api("api_get_run", path=f"/runs/{run_id}")) == (404, "run_not_found")
    assert code(api("api_delete_run", path=f"/runs/{run_id}")) == (404, "run_not_found")
    assert api("api_delete_graph").status == 204
    assert code(api("api_get_graph")) == (404, "graph_not_found")
    assert code(api("api_delete_graph")) == (404, "graph_not_found")
    assert api.graph_ids() == []
    api.drain_queue()
    assert stored_items(api) == []


def test_a_running_run_is_not_deleted_and_fails_once_its_graph_is(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    run_id = api("api_start_run", body={"graph_id": graph_id}).json()["run_id"]
    assert code(api("api_delete_run", path=f"/runs/{run_id}")) == (409, "run_active")
    assert api("api_delete_graph", path=f"/graphs/{graph_id}").status == 204
    for message in api.drain_queue():
        wiring.service().run_step(message)
    run = api("api_get_run", path=f"/runs/{run_id}").json()
    assert run["status"] == "FAILED"
    assert run["error"]["type"] == "GraphDeleted"
    assert api("api_delete_run", path=f"/runs/{run_id}").status == 204


def test_the_handler_survives_every_case_in_one_environment(api: Api) -> None:
    """After all the above in one process, ordinary requests still work."""
    event = load_event("api_start_run", body="[" * 50_000)
    assert api_app.lambda_handler(event, LocalContext())["statusCode"] == 400
    graph_id = api.create_graph(LOOP_GRAPH)
    assert (
        api("api_start_run_wait", body={"graph_id": graph_id, "wait": True}).json()["status"] == "SUCCEEDED"
    )
