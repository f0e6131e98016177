"""Ownership at the handlers: another caller's graphs and runs do not exist for a caller (404, never 403).

The sample events carry the IAM caller ``alice`` (:data:`CALLER`); ``bob`` is
the same events with another ``userArn``. Each test also checks that the
owner still sees what the other caller could not touch.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from functions.api.routes.legacy import demo_graph_id
from functions.shared import wiring
from functions.shared.observability import metrics
from functions.ws import app as ws_app
from local.lambda_context import LocalContext
from tests.integration.conftest import AwsEnv
from tests.support import ws
from tests.support.api import Api
from tests.support.events import CALLER, load_event
from tests.support.tools import LOOP_GRAPH

BOB = "arn:aws:iam::123456789012:user/bob"

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@pytest.fixture
def api(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "engine.tools.dq,tests.support.tools")
    monkeypatch.delenv("WAIT_BUDGET_SECONDS", raising=False)
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    wiring.reset()
    return Api(aws)


def alice_run(api: Api, **request: Any) -> tuple[str, str]:
    graph_id = api.create_graph(LOOP_GRAPH)
    reply = api("api_start_run", body={"graph_id": graph_id, "initial_state": {"i": 0}, **request})
    assert reply.status == 202, reply.text
    return graph_id, str(reply.json()["run_id"])


def assert_not_found(reply: Any, code: str) -> None:
    assert reply.status == 404, reply.text
    assert reply.json()["code"] == code


def test_another_callers_graph_is_not_found_listed_or_versioned(api: Api) -> None:
    graph_id = api.create_graph(LOOP_GRAPH)

    assert_not_found(api("api_get_graph", path=f"/graphs/{graph_id}", caller=BOB), "graph_not_found")
    assert_not_found(
        api("api_get_graph", path=f"/graphs/{graph_id}", query={"version": "1"}, caller=BOB),
        "graph_not_found",
    )
    assert_not_found(
        api("api_graph_diagram", path=f"/graphs/{graph_id}/diagram", caller=BOB), "graph_not_found"
    )
    put = api("api_update_graph", path=f"/graphs/{graph_id}", body=LOOP_GRAPH, caller=BOB)
    assert_not_found(put, "graph_not_found")
    assert api("api_list_graphs", query={}, caller=BOB).json()["graphs"] == []
    started = api("api_start_run", body={"graph_id": graph_id}, caller=BOB)
    assert_not_found(started, "graph_not_found")
    legacy = api("api_legacy_graph_run_async", body={"graph_id": graph_id, "initial_state": {}}, caller=BOB)
    assert_not_found(legacy, "graph_not_found")

    assert api.graph_ids() == [graph_id]
    assert api("api_get_graph", path=f"/graphs/{graph_id}").json()["version"] == 1
    assert api.drain_queue() == []


def test_another_callers_run_is_not_found_read_or_cancelled(api: Api) -> None:
    _, run_id = alice_run(api)

    for event, path in [
        ("api_get_run", f"/runs/{run_id}"),
        ("api_get_run", f"/runs/{run_id}/state/i"),
        ("api_run_logs", f"/runs/{run_id}/logs"),
        ("api_legacy_execution", f"/execution/{run_id}"),
        ("api_legacy_graph_state", f"/graph/state/{run_id}"),
    ]:
        assert_not_found(api(event, path=path, caller=BOB), "run_not_found")
    cancel = api("api_cancel_run", path=f"/runs/{run_id}/cancel", caller=BOB)
    assert_not_found(cancel, "run_not_found")
    unknown = api("api_get_run", path="/runs/no-such-run", caller=BOB)
    assert unknown.json()["message"] == "no run 'no-such-run'"
    assert api("api_get_run", path=f"/runs/{run_id}", caller=BOB).json()["message"] == f"no run {run_id!r}"

    assert api("api_get_run", path=f"/runs/{run_id}").json()["status"] == "PENDING"


def test_an_idempotency_key_is_the_callers_own(api: Api) -> None:
    graph_id, run_id = alice_run(api, idempotency_key="order-7")
    again = api("api_start_run", body={"graph_id": graph_id, "idempotency_key": "order-7"})
    assert again.json()["run_id"] == run_id

    reply = api("api_create_graph", body=LOOP_GRAPH, caller=BOB)
    bobs_graph_id = reply.json()["graph_id"]
    bobs = api("api_start_run", body={"graph_id": bobs_graph_id, "idempotency_key": "order-7"}, caller=BOB)
    assert bobs.status == 202
    assert bobs.json()["run_id"] != run_id
    assert bobs.json()["graph_id"] == bobs_graph_id
    stranger = api(
        "api_start_run", body={"graph_id": "does-not-exist", "idempotency_key": "order-7"}, caller=BOB
    )
    assert stranger.status == 202
    assert stranger.json()["run_id"] == bobs.json()["run_id"]
    third = api(
        "api_start_run",
        body={"graph_id": "does-not-exist", "idempotency_key": "order-7"},
        caller="arn:aws:iam::123456789012:user/carol",
    )
    assert_not_found(third, "graph_not_found")


def test_a_request_without_a_caller_is_401_and_stores_nothing(api: Api) -> None:
    for event in ("api_create_graph", "api_list_graphs", "api_start_run", "api_demo_run_data_quality"):
        reply = api(event, caller=None)
        assert reply.status == 401, (event, reply.text)
        assert reply.json()["code"] == "unauthenticated"
    assert api.graph_ids() == []
    assert api.drain_queue() == []


def test_the_demo_graph_is_one_per_caller(api: Api) -> None:
    alices = api("api_demo_run_data_quality").json()
    bobs = api("api_demo_run_data_quality", caller=BOB).json()
    assert alices["graph_id"] == demo_graph_id(CALLER)
    assert bobs["graph_id"] == demo_graph_id(BOB) != alices["graph_id"]
    assert api.graph_ids() == [alices["graph_id"]]
    assert_not_found(api("api_get_run", path=f"/runs/{alices['run_id']}", caller=BOB), "run_not_found")


def ws_invoke(name: str, connection_id: str, caller: str, **fields: Any) -> dict[str, Any]:
    event = load_event(name, **fields)
    event["requestContext"]["connectionId"] = connection_id
    event["requestContext"]["identity"]["userArn"] = caller
    return ws_app.lambda_handler(event, LocalContext())  # type: ignore[no-any-return]


def test_another_callers_run_cannot_be_subscribed_to(api: Api) -> None:
    _, run_id = alice_run(api)

    refused = ws_invoke("ws_connect", "bob-1", BOB, queryStringParameters={"run_id": run_id})
    assert refused["statusCode"] == 404
    subscribe = ws_invoke(
        "ws_subscribe", "bob-2", BOB, body=f'{{"action": "subscribe", "run_id": "{run_id}"}}'
    )
    assert subscribe["statusCode"] == 404
    assert ws.frames("bob-2")[0]["code"] == "run_not_found"
    assert wiring.store().get_run(run_id).subscribers == []

    ok = ws_invoke("ws_subscribe", "alice-1", CALLER, body=f'{{"action": "subscribe", "run_id": "{run_id}"}}')
    assert ok["statusCode"] == 200
    assert wiring.store().get_run(run_id).subscribers == ["alice-1"]


def test_a_websocket_without_a_caller_is_refused(api: Api) -> None:
    event = load_event("ws_connect", queryStringParameters=None)
    del event["requestContext"]["identity"]["userArn"]
    assert ws_app.lambda_handler(event, LocalContext())["statusCode"] == 401
