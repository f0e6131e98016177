"""The HTTP API Lambda on moto: every route through ``lambda_handler``, from the sample events in ``events/``."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from engine.errors import GraphNotFoundError
from engine.graphs import load_graph_json
from engine.model import RunStatus, StepMessage
from engine.tools.dq import stages
from functions.api import app as api_app
from functions.api.routes.legacy import demo_graph_id
from functions.shared import wiring
from functions.shared.observability import logger, metrics
from local.lambda_context import LocalContext
from tests.integration.conftest import AwsEnv
from tests.support.api import Api
from tests.support.events import CALLER, EVENTS, load_event
from tests.support.tools import LOOP_GRAPH

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@pytest.fixture
def api(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "engine.tools.dq,tests.support.tools")
    monkeypatch.delenv("WAIT_BUDGET_SECONDS", raising=False)
    monkeypatch.delenv("MAX_BODY_BYTES", raising=False)
    # Metrics reads its namespace once, when the handler module is imported (at collection here).
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    wiring.reset()
    return Api(aws)


SAMPLE_STATUSES = {
    "api_root": 200,
    "api_create_graph": 201,
    "api_update_graph": 404,
    "api_list_graphs": 200,
    "api_get_graph": 404,
    "api_graph_diagram": 404,
    "api_start_run": 404,
    "api_start_run_wait": 404,
    "api_get_run": 404,
    "api_run_logs": 404,
    "api_cancel_run": 404,
    "api_redrive_run": 404,
    "api_list_runs": 200,
    "api_approve_callback": 404,
    "api_reject_callback": 404,
    "api_delete_graph": 404,
    "api_delete_run": 404,
    "api_list_tools": 200,
    "api_openapi": 200,
    "api_docs": 200,
    "api_legacy_graph_create": 200,
    "api_legacy_graph_run": 404,
    "api_legacy_graph_run_async": 404,
    "api_legacy_graph_state": 404,
    "api_legacy_execution": 404,
    "api_demo_run_data_quality": 200,
    "api_dashboard": 200,
    "api_dashboard_asset": 200,
    "api_validate_graph": 200,
}


def test_every_sample_event_is_covered() -> None:
    assert sorted(p.stem for p in EVENTS.glob("api_*.json")) == sorted(SAMPLE_STATUSES)


@pytest.mark.parametrize("name", sorted(SAMPLE_STATUSES))
def test_sample_event_as_is_on_an_empty_deployment(api: Api, name: str) -> None:
    """What ``sam local invoke ApiFunction -e events/<name>.json`` answers before anything exists."""
    reply = api(name)
    assert reply.status == SAMPLE_STATUSES[name], reply.text
    if reply.status == 404:
        assert reply.json()["code"] in ("graph_not_found", "run_not_found", "callback_not_found")
        assert api.drain_queue() == []
        assert api.graph_ids() == []


# graphs


def test_create_get_list_and_draw_a_graph(api: Api) -> None:
    created = api("api_create_graph")
    assert created.status == 201
    body = created.json()
    graph_id = body["graph_id"]
    assert body["version"] == 1
    assert created.headers["Location"] == f"/graphs/{graph_id}?version=1"

    got = api("api_get_graph", path=f"/graphs/{graph_id}", query={})
    assert got.status == 200
    definition = got.json()["definition"]
    sent = json.loads(load_event("api_create_graph")["body"])
    assert definition["start_node"] == sent["start_node"]
    assert set(definition["nodes"]) == set(sent["nodes"])

    assert api.graph_ids() == [graph_id]

    diagram = api("api_graph_diagram", path=f"/graphs/{graph_id}/diagram")
    assert diagram.status == 200
    assert diagram.headers["Content-Type"].startswith("text/plain")
    assert diagram.text.startswith("flowchart TD")
    for node in sent["nodes"]:
        assert f"n_{node}([" in diagram.text or f'n_{node}["' in diagram.text

    as_json = api(
        "api_graph_diagram", path=f"/graphs/{graph_id}/diagram", headers={"accept": "application/json"}
    )
    assert as_json.status == 200
    assert as_json.json() == {"graph_id": graph_id, "version": 1, "mermaid": diagram.text}


def test_graph_versions(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    second = {**LOOP_GRAPH, "name": "counter v2"}
    updated = api("api_update_graph", path=f"/graphs/{graph_id}", body=second)
    assert updated.status == 201
    assert updated.json()["version"] == 2

    latest = api("api_get_graph", path=f"/graphs/{graph_id}", query={})
    assert (latest.json()["version"], latest.json()["name"]) == (2, "counter v2")
    first = api("api_get_graph", path=f"/graphs/{graph_id}", query={"version": "1"})
    assert (first.json()["version"], first.json()["name"]) == (1, "counter")
    missing = api("api_get_graph", path=f"/graphs/{graph_id}", query={"version": "3"})
    assert missing.status == 404
    assert missing.json()["code"] == "graph_not_found"
    assert api.graph_ids() == [graph_id]


def test_create_graph_with_a_chosen_id_then_conflict(api: Api) -> None:
    created = api("api_create_graph", query={"graph_id": "my-counter"}, body=LOOP_GRAPH)
    assert created.status == 201
    assert created.json()["graph_id"] == "my-counter"
    again = api("api_create_graph", query={"graph_id": "my-counter"}, body=LOOP_GRAPH)
    assert again.status == 409
    assert again.json()["code"] == "conflict"
    bad_id = api("api_create_graph", query={"graph_id": "no spaces#"}, body=LOOP_GRAPH)
    assert bad_id.status == 422
    assert api.graph_ids() == ["my-counter"]


def test_invalid_graph_lists_every_problem_and_stores_nothing(api: Api) -> None:
    graph = {
        "name": "broken",
        "start_node": "nowhere",
        "nodes": {"a": {"tool": "test.inc"}, "b": {"tool": "no.such_tool"}},
        "edges": {"a": "ghost", "b": [{"when": {"key": "i", "op": "~~", "value": 1}, "to": "a"}]},
    }
    reply = api("api_create_graph", body=graph)
    assert reply.status == 400
    body = reply.json()
    assert body["code"] == "invalid_graph"
    problems = body["details"]["problems"]
    assert all(set(p) == {"where", "message"} for p in problems)
    where = {p["where"] for p in problems}
    assert {"start_node", "nodes.b.tool", "edges.a"} <= where
    assert any(w.startswith("edges.b[0]") for w in where)
    assert "no.such_tool" in " ".join(p["message"] for p in problems)
    assert api.graph_ids() == []


def test_unknown_tool_is_a_bad_graph(api: Api) -> None:
    reply = api(
        "api_legacy_graph_create",
        body={"start_node": "a", "nodes": [{"name": "a", "tool": "dq.nope"}], "edges": []},
    )
    assert reply.status == 400
    assert reply.json()["details"]["problems"] == [
        {
            "where": "nodes.a.tool",
            "message": "unknown tool 'dq.nope'; GET /tools (or wf tools) lists every tool",
        }
    ]
    assert api.graph_ids() == []


def test_repeated_node_names_are_reported_not_merged(api: Api) -> None:
    text = '{"start_node": "a", "nodes": {"a": {"tool": "test.inc"}, "a": {"tool": "test.noop"}}}'
    reply = api("api_create_graph", body=text)
    assert reply.status == 400
    assert {"where": "nodes.a", "message": "node name is used more than once"} in reply.json()["details"][
        "problems"
    ]
    assert api.graph_ids() == []


@pytest.mark.parametrize("text", ['{"start_node": "a", "nodes": {', "not json", '{"a": 1,}'])
def test_malformed_graph_json(api: Api, text: str) -> None:
    reply = api("api_create_graph", body=text)
    assert reply.status == 400
    assert reply.json()["code"] == "malformed_json"
    assert api.graph_ids() == []


def test_missing_graph_body(api: Api) -> None:
    reply = api("api_create_graph", body=None)
    assert reply.status == 400
    assert reply.json()["code"] == "bad_request"


def test_base64_encoded_bodies(api: Api) -> None:
    def encoded(name: str, body: dict[str, Any]) -> dict[str, Any]:
        text = base64.b64encode(json.dumps(body).encode()).decode()
        return api_app.lambda_handler(load_event(name, body=text, isBase64Encoded=True), LocalContext())

    created = encoded("api_create_graph", LOOP_GRAPH)
    assert created["statusCode"] == 201
    graph_id = json.loads(created["body"])["graph_id"]
    assert api.graph_ids() == [graph_id]
    started = encoded("api_start_run", {"graph_id": graph_id})
    assert started["statusCode"] == 202
    assert [m.run_id for m in api.drain_queue()] == [json.loads(started["body"])["run_id"]]

    not_utf8 = load_event("api_start_run", body=base64.b64encode(b"\xff\xfe{").decode(), isBase64Encoded=True)
    reply = api_app.lambda_handler(not_utf8, LocalContext())
    assert (reply["statusCode"], json.loads(reply["body"])["code"]) == (400, "malformed_json")


def test_body_over_the_limit_is_413_and_stores_nothing(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "64")
    wiring.reset()
    reply = api("api_create_graph", body={**LOOP_GRAPH, "description": "x" * 100})
    assert reply.status == 413
    assert reply.json()["code"] == "payload_too_large"
    graph_id = "g-small"
    small = {"start_node": "a", "nodes": {"a": "test.inc"}}
    assert api("api_create_graph", query={"graph_id": graph_id}, body=small).status == 201
    run = api("api_start_run", body={"graph_id": graph_id, "initial_state": {"pad": "y" * 100}})
    assert run.status == 413
    assert api.drain_queue() == []


def test_unknown_graph_is_404(api: Api) -> None:
    for name in ("api_get_graph", "api_graph_diagram", "api_update_graph"):
        reply = api(name)
        assert reply.status == 404
        assert reply.json()["code"] == "graph_not_found"
        assert "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f" in reply.json()["message"]


# runs


def test_start_run_queues_its_first_step(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    reply = api("api_start_run", body={"graph_id": graph_id, "initial_state": {"i": 0}})
    assert reply.status == 202
    body = reply.json()
    assert body["status"] == RunStatus.PENDING
    assert (body["graph_id"], body["graph_version"]) == (graph_id, 1)
    assert reply.headers["Location"] == f"/runs/{body['run_id']}"
    assert api.drain_queue() == [StepMessage(run_id=body["run_id"], step=0)]

    run = api("api_get_run", path=f"/runs/{body['run_id']}")
    assert run.status == 200
    view = run.json()
    assert view["status"] == "PENDING"
    assert view["current_node"] == "a"
    assert view["step"] == 0
    assert view["state"] == {"i": 0}
    assert view["error"] is None
    assert view["created_at"] == view["updated_at"]
    assert view["finished_at"] is None

    without_state = api("api_get_run", path=f"/runs/{body['run_id']}", query={"include_state": "false"})
    assert without_state.json()["state"] is None


def test_start_run_pins_a_version_and_is_idempotent(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    api("api_update_graph", path=f"/graphs/{graph_id}", body={**LOOP_GRAPH, "name": "v2"})
    request = {"graph_id": graph_id, "version": 1, "idempotency_key": "nightly-1"}
    first = api("api_start_run", body=request)
    second = api("api_start_run", body=request)
    assert first.status == second.status == 202
    assert first.json() == second.json()
    assert first.json()["graph_version"] == 1
    assert len(api.drain_queue()) == 1


def test_start_run_logs_its_run_id_and_counts_it(
    api: Api, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    log = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", log)
    capsys.readouterr()
    reply = api("api_start_run", body={"graph_id": graph_id})
    run_id = reply.json()["run_id"]

    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    [started] = [line for line in lines if line["message"] == "run started"]
    assert started["run_id"] == run_id
    assert started["correlation_id"] == load_event("api_start_run")["requestContext"]["requestId"]
    [emf] = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf["RunsStarted"] == [1.0]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == os.environ["POWERTOOLS_METRICS_NAMESPACE"]

    assert logger.get_current_keys()["run_id"] == run_id
    api("api_list_graphs")
    assert "run_id" not in logger.get_current_keys()


def test_wait_runs_to_the_end_in_the_request(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    reply = api("api_start_run_wait", body={"graph_id": graph_id, "initial_state": {"i": 0}, "wait": True})
    assert reply.status == 200
    run = reply.json()
    assert run["status"] == "SUCCEEDED"
    assert run["state"] == {"i": 3}
    assert run["finished_at"] is not None
    assert [m.not_before is not None for m in api.drain_queue()] == [True]  # only the watchdog

    stored = api("api_get_run", path=f"/runs/{run['run_id']}")
    assert stored.json()["status"] == "SUCCEEDED"
    assert stored.json()["state"] == {"i": 3}


def test_a_start_the_queue_refuses_is_503_stores_nothing_and_can_be_repeated(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    sqs = wiring.client("sqs")
    original = sqs.send_message
    refusals = [
        ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendMessage")
    ]

    def send_message(**params: Any) -> Any:
        if refusals:
            raise refusals.pop()
        return original(**params)

    monkeypatch.setattr(sqs, "send_message", send_message)
    body = {"graph_id": graph_id, "initial_state": {"i": 0}, "wait": True, "idempotency_key": "once"}
    refused = api("api_start_run_wait", body=body)
    assert refused.status == 503
    assert refused.json()["code"] == "queue_unavailable"
    assert "slow down" not in refused.text
    assert wiring.service().runs.find_run_by_idempotency_key(CALLER, "once") is None
    assert api.drain_queue() == []

    again = api("api_start_run_wait", body=body)
    assert again.status == 200
    assert again.json()["status"] == "SUCCEEDED"


def test_wait_runs_the_sample_dq_graph(api: Api) -> None:
    graph_id = api("api_create_graph").json()["graph_id"]
    reply = api(
        "api_start_run_wait",
        body={"graph_id": graph_id, "initial_state": {"records": 40, "seed": 7}, "wait": True},
    )
    assert reply.status == 200
    run = reply.json()
    assert (run["status"], run["current_node"], run["error"]) == ("SUCCEEDED", "detect", None)
    state = run["state"]
    assert len(state["table"]["dataset"]) >= 40
    assert {"profile", "anomalies"} <= state.keys()


def test_wait_answers_200_for_a_run_that_failed(api: Api) -> None:
    graph_id = api.create_graph({"name": "big", "start_node": "big", "nodes": {"big": "test.big"}})
    reply = api("api_start_run_wait", body={"graph_id": graph_id, "wait": True})
    assert reply.status == 200
    run = reply.json()
    assert run["status"] == "FAILED"
    assert (run["error"]["type"], run["error"]["node"]) == ("KeyError", "big")


def test_wait_hands_a_long_run_to_the_queue(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAIT_BUDGET_SECONDS", "0")
    wiring.reset()
    graph_id = api.create_graph(LOOP_GRAPH)
    reply = api("api_start_run_wait", body={"graph_id": graph_id, "wait": True})
    assert reply.status == 202
    run_id = reply.json()["run_id"]
    handed_over = [m for m in api.drain_queue() if m.not_before is None]
    run = api("api_get_run", path=f"/runs/{run_id}").json()
    assert run["status"] == "RUNNING"
    assert handed_over == [StepMessage(run_id=run_id, step=run["step"], attempt=run["attempt"])]


def test_wait_with_a_version_runs_that_version(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    wiring.service().add_graph_version(graph_id, LOOP_GRAPH, owner=CALLER)
    reply = api("api_start_run_wait", body={"graph_id": graph_id, "wait": True, "version": 1})
    assert reply.status == 200
    assert reply.json()["graph_version"] == 1
    assert reply.json()["status"] == "SUCCEEDED"


def test_logs_page_with_after_and_limit(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    run_id = api("api_start_run_wait", body={"graph_id": graph_id, "wait": True}).json()["run_id"]

    first = api("api_run_logs", path=f"/runs/{run_id}/logs", query={"after": "-1", "limit": "3"})
    assert first.status == 200
    page = first.json()
    assert [r["seq"] for r in page["records"]] == [0, 1, 2]
    assert page["records"][0]["type"] == "run_started"
    assert page["next_after"] == 2

    rest = api("api_run_logs", path=f"/runs/{run_id}/logs", query={"after": "2", "limit": "1000"}).json()
    seqs = [r["seq"] for r in rest["records"]]
    assert seqs == list(range(3, 3 + len(seqs)))
    assert rest["records"][-1]["type"] == "run_succeeded"
    assert rest["next_after"] == seqs[-1]

    done = api("api_run_logs", path=f"/runs/{run_id}/logs", query={"after": str(seqs[-1])}).json()
    assert done == {"run_id": run_id, "records": [], "next_after": seqs[-1]}


def test_cancel_then_conflict(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    run_id = api("api_start_run", body={"graph_id": graph_id}).json()["run_id"]
    cancelled = api("api_cancel_run", path=f"/runs/{run_id}/cancel")
    assert cancelled.status == 200
    run = cancelled.json()
    assert run["status"] == "CANCELLED"
    assert run["error"]["message"] == "superseded by a newer run"
    again = api("api_cancel_run", path=f"/runs/{run_id}/cancel", body=None)
    assert again.status == 409
    assert again.json()["code"] == "run_finished"
    records = api("api_run_logs", path=f"/runs/{run_id}/logs", query={}).json()["records"]
    assert [r["type"] for r in records] == ["run_started", "run_cancelled"]


def test_unknown_run_is_404(api: Api) -> None:
    for name in (
        "api_get_run",
        "api_run_logs",
        "api_cancel_run",
        "api_legacy_graph_state",
        "api_legacy_execution",
    ):
        reply = api(name)
        assert reply.status == 404, name
        assert reply.json()["code"] == "run_not_found"


def test_validation_errors_are_422_with_details(api: Api) -> None:
    reply = api("api_start_run", body={"graph_id": "g", "initial_state": [1, 2], "colour": "red"})
    assert reply.status == 422
    body = reply.json()
    assert body["code"] == "validation_error"
    locations = {tuple(e["loc"]) for e in body["details"]["errors"]}
    assert locations == {("body", "initial_state"), ("body", "colour")}

    limit = api("api_run_logs", query={"limit": "0"})
    assert limit.status == 422
    assert [e["loc"] for e in limit.json()["details"]["errors"]] == [["query", "limit"]]
    assert api.drain_queue() == []


def test_malformed_run_request(api: Api) -> None:
    reply = api("api_start_run", body='{"graph_id": ')
    assert reply.status == 400
    assert reply.json()["code"] == "malformed_json"


def test_unsupported_media_type(api: Api) -> None:
    reply = api("api_start_run", headers={"content-type": "text/csv"})
    assert reply.status == 415
    assert reply.json()["code"] == "unsupported_media_type"


# tools, documents, errors


def test_tools(api: Api) -> None:
    reply = api("api_list_tools")
    assert reply.status == 200
    tools = {t["name"]: t for t in reply.json()["tools"]}
    assert tools["test.inc"] == {"name": "test.inc", "description": "Add 1 to i", "async": False}
    assert any(name.startswith("dq.") for name in tools)
    assert all(t["description"] for t in tools.values())


def test_openapi_document(api: Api) -> None:
    reply = api("api_openapi")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    doc = reply.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "graphflow"
    paths = doc["paths"]
    expected = {
        "/graphs": {"get", "post"},
        "/graphs/validate": {"post"},
        "/graphs/{graph_id}": {"get", "put", "delete"},
        "/graphs/{graph_id}/diagram": {"get"},
        "/runs": {"get", "post"},
        "/runs/{run_id}": {"get", "delete"},
        "/runs/{run_id}/logs": {"get"},
        "/runs/{run_id}/state/{key}": {"get"},
        "/runs/{run_id}/cancel": {"post"},
        "/runs/{run_id}/redrive": {"post"},
        "/callbacks/{token}": {"post"},
        "/callbacks/{token}/fail": {"post"},
        "/tools": {"get"},
        "/graph/create": {"post"},
        "/graph/run": {"post"},
        "/graph/run/async": {"post"},
        "/graph/state/{run_id}": {"get"},
        "/execution/{run_id}": {"get"},
        "/demo/run_data_quality": {"post"},
    }
    assert {path: set(ops) for path, ops in paths.items()} == expected
    schemas = doc["components"]["schemas"]
    graph_body = paths["/graphs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert graph_body == {"$ref": "#/components/schemas/Graph"}
    assert "Graph" in schemas
    assert paths["/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunRequest"
    }
    assert set(paths["/runs"]["post"]["responses"]) >= {"200", "202", "404", "422", "500"}
    error_schema = paths["/runs/{run_id}"]["get"]["responses"]["404"]["content"]["application/json"]["schema"]
    assert error_schema == {"$ref": "#/components/schemas/ErrorBody"}


def test_swagger_ui_is_served_with_its_assets(api: Api) -> None:
    reply = api("api_docs")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html"
    assert reply.headers.get("Content-Encoding") == "gzip"
    assert reply.base64
    html = gzip.decompress(base64.b64decode(reply.text)).decode()
    assert "SwaggerUIBundle" in html
    assert re.findall(r"<script[^>]*\bsrc=|<link\b", html) == []
    assert '"/runs/{run_id}/logs"' in html

    plain = api("api_docs", headers={"accept-encoding": "identity"})
    assert plain.status == 200
    assert not plain.base64
    assert "SwaggerUIBundle" in plain.text

    spec = api("api_docs", headers={"accept-encoding": "identity"}, query={"format": "json"})
    assert spec.status == 200
    assert spec.json()["paths"].keys() == api("api_openapi").json()["paths"].keys()


def test_index(api: Api) -> None:
    reply = api("api_root")
    assert reply.status == 200
    assert reply.json()["openapi"] == "/openapi.json"


def test_unknown_route_is_404(api: Api) -> None:
    for path, method in (("/nowhere", "GET"), ("/graphs/a/b/c", "GET")):
        reply = api("api_list_graphs", path=path, method=method)
        assert reply.status == 404
        assert reply.json() == {"code": "route_not_found", "message": f"no route for {method} {path}"}
    for path, method, allowed in (("/graphs", "DELETE", "GET, POST"), ("/runs", "DELETE", "GET, POST")):
        reply = api("api_list_graphs", path=path, method=method)
        assert reply.status == 405
        assert reply.json()["code"] == "method_not_allowed"
        assert reply.headers["Allow"] == allowed


def test_unexpected_error_is_500_without_internals(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    service = wiring.service()

    def broken(limit: int = 100) -> Any:
        raise RuntimeError("secret table name in this message")

    monkeypatch.setattr(service, "list_graphs", broken)
    reply = api("api_list_graphs")
    assert reply.status == 500
    assert reply.json() == {"code": "internal_error", "message": "internal error"}


# legacy routes and the demo


def test_legacy_create_run_and_read(api: Api) -> None:
    created = api("api_legacy_graph_create", body={**LOOP_GRAPH, "nodes": [
        {"name": "a", "tool": "test.inc"}, {"name": "b", "tool": "test.noop"}, {"name": "c", "tool": "test.noop"},
    ]})  # fmt: skip
    assert created.status == 200
    graph_id = created.json()["graph_id"]

    ran = api("api_legacy_graph_run", body={"graph_id": graph_id, "initial_state": {"i": 1}})
    assert ran.status == 200
    result = ran.json()
    assert result["status"] == "SUCCEEDED"
    assert result["final_state"] == {"i": 3}
    assert result["logs"][0]["type"] == "run_started"
    assert result["logs"][-1]["type"] == "run_succeeded"

    for name, path in (("api_legacy_graph_state", "/graph/state"), ("api_legacy_execution", "/execution")):
        reply = api(name, path=f"{path}/{result['run_id']}")
        assert reply.status == 200
        execution = reply.json()
        assert execution["status"] == "SUCCEEDED"
        assert execution["state"] == {"i": 3}
        assert execution["graph_id"] == graph_id
        assert [r["seq"] for r in execution["logs"]] == list(range(len(result["logs"])))


def test_legacy_async_run(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    reply = api("api_legacy_graph_run_async", body={"graph_id": graph_id, "initial_state": {}})
    assert reply.status == 200
    run_id = reply.json()["run_id"]
    assert reply.json()["status"] == "PENDING"
    assert api.drain_queue() == [StepMessage(run_id=run_id, step=0)]
    state = api("api_legacy_execution", path=f"/execution/{run_id}").json()
    assert (state["status"], state["current_node"], state["state"]) == ("PENDING", "a", {})
    assert [r["type"] for r in state["logs"]] == ["run_started"]


def test_demo_creates_its_graph_once(api: Api) -> None:
    first = api("api_demo_run_data_quality")
    assert first.status == 200
    assert first.json()["graph_id"] == demo_graph_id(CALLER)
    assert first.json()["graph_id"].startswith("data-quality-")
    second = api("api_demo_run_data_quality", body=None)
    assert second.status == 200
    assert second.json()["run_id"] != first.json()["run_id"]
    assert api.graph_ids() == [demo_graph_id(CALLER)]
    queued = {m.run_id for m in api.drain_queue()}
    assert queued == {first.json()["run_id"], second.json()["run_id"]}
    run = api("api_get_run", path=f"/runs/{first.json()['run_id']}").json()
    demo_body = json.loads(load_event("api_demo_run_data_quality")["body"])
    assert {k: run["state"][k] for k in demo_body} == demo_body


def test_demo_survives_a_concurrent_create(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.graphs import load_graph_json

    service = wiring.service()
    service.create_graph(load_graph_json("data_quality"), graph_id=demo_graph_id(CALLER), owner=CALLER)

    def not_yet(graph_id: str, version: int | None = None, *, owner: str = "") -> Any:
        raise GraphNotFoundError(f"no graph {graph_id!r}", graph_id=graph_id)

    with monkeypatch.context() as patched:
        patched.setattr(service, "get_graph", not_yet)
        reply = api("api_demo_run_data_quality", body=None)
    assert reply.status == 200
    assert api.graph_ids() == [demo_graph_id(CALLER)]


@pytest.mark.parametrize(
    "settings",
    [
        {"records": 0},
        {"records": stages.MAX_RECORDS + 1},
        {"max_iterations": stages.MAX_ITERATIONS_CAP + 1},
        {"target_score": 1.5},
        {"colour": "red"},
    ],
)
def test_demo_rejects_settings_its_tools_would_fail_on(api: Api, settings: dict[str, Any]) -> None:
    reply = api("api_demo_run_data_quality", body=settings)
    assert reply.status == 422
    assert api.graph_ids() == []
    assert api.drain_queue() == []


def test_demo_accepts_the_extremes_its_tools_accept(api: Api) -> None:
    settings = {"records": stages.MAX_RECORDS, "max_iterations": stages.MAX_ITERATIONS_CAP, "target_score": 1}
    assert api("api_demo_run_data_quality", body=settings).status == 200


def test_sample_events_are_realistic() -> None:
    for path in sorted(Path(EVENTS).glob("api_*.json")):
        event = json.loads(path.read_text())
        assert event["version"] == "2.0", path.name
        context = event["requestContext"]
        assert context["http"]["path"] == event["rawPath"], path.name
        assert context["stage"] == "$default", path.name
        if "body" in event:
            assert int(event["headers"]["content-length"]) == len(event["body"].encode()), path.name


def test_a_json_body_labelled_as_a_form_is_read_as_json(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    reply = api(
        "api_start_run_wait",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body={"graph_id": graph_id, "initial_state": {"i": 0}, "wait": True},
    )
    assert reply.status == 200, reply.text
    assert reply.json()["status"] == "SUCCEEDED"


def test_read_one_state_value(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)
    run_id = api("api_start_run_wait", body={"graph_id": graph_id, "wait": True}).json()["run_id"]
    reply = api("api_get_run", path=f"/runs/{run_id}/state/i")
    assert reply.status == 200, reply.text
    assert reply.json() == 3
    missing = api("api_get_run", path=f"/runs/{run_id}/state/nope")
    assert missing.status == 404
    assert missing.json()["code"] == "state_key_not_found"


def test_list_runs_over_http_newest_first_and_filtered(api: Api) -> None:
    graph_id = api.create_graph(load_graph_json("data_quality"))
    started = []
    for records in (10, 20):
        reply = api("api_start_run", body={"graph_id": graph_id, "initial_state": {"records": records}})
        assert reply.status == 202, reply.text
        started.append(reply.json()["run_id"])

    reply = api("api_list_runs", query={"limit": "10"})
    assert reply.status == 200, reply.text
    runs = reply.json()["runs"]
    assert [r["run_id"] for r in runs] == started[::-1]
    assert all(r["state"] is None and r["graph_id"] == graph_id for r in runs)

    assert api("api_list_runs", query={"status": "SUCCEEDED"}).json()["runs"] == []
    assert api("api_list_runs", query={"status": "nope"}).status in (400, 422)
