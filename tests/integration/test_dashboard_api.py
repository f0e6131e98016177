"""The dashboard's routes and ``POST /graphs/validate`` through the API handler on moto."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re

import pytest

from functions.api.routes import dashboard
from functions.shared import wiring
from functions.shared.observability import metrics
from tests.integration.conftest import AwsEnv
from tests.support.api import Api
from tests.support.tools import parallel_graph

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@pytest.fixture
def api(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", "engine.tools.dq,tests.support.tools")
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    wiring.reset()
    return Api(aws)


def config_of(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="graphflow-config">(.*?)</script>', html, re.S)
    assert match, html[:500]
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_the_page_needs_no_caller_and_names_the_websocket_api(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", "https://ws123.execute-api.eu-west-1.amazonaws.com/prod")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    wiring.reset()
    reply = api("api_dashboard")
    assert reply.status == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/html")
    assert config_of(reply.text) == {
        "ws_url": "wss://ws123.execute-api.eu-west-1.amazonaws.com/prod",
        "region": "eu-west-1",
    }
    policy = reply.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "connect-src 'self' wss://ws123.execute-api.eu-west-1.amazonaws.com;" in policy
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert '<script type="module" src="/dashboard/assets/app.js">' in reply.text


def test_the_root_is_the_page_for_a_browser_and_the_index_for_others(api: Api) -> None:
    page = api("api_root", headers={"accept": "text/html,*/*;q=0.8"}, caller=None)
    assert page.status == 200
    assert 'id="graphflow-config"' in page.text
    index = api("api_root", caller=None)
    assert index.json()["dashboard"] == "/dashboard"
    assert index.json()["openapi"] == "/openapi.json"


def test_assets_are_served_with_their_types(api: Api) -> None:
    reply = api("api_dashboard_asset")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert 'from "./api.js"' in reply.text
    css = api("api_dashboard_asset", path="/dashboard/assets/style.css")
    assert css.headers["Content-Type"] == "text/css; charset=utf-8"
    assert ".log {" in css.text


def test_the_vendored_mermaid_is_served_gzipped_to_who_accepts_it(api: Api) -> None:
    reply = api(
        "api_dashboard_asset",
        path="/dashboard/assets/vendor/mermaid.min.js",
        headers={"accept-encoding": "gzip, deflate, br"},
    )
    assert reply.status == 200
    assert reply.base64 and reply.headers["Content-Encoding"] == "gzip"
    source = gzip.decompress(base64.b64decode(reply.text))
    assert source == (dashboard.DASHBOARD_DIR / "vendor" / "mermaid.min.js").read_bytes()
    assert len(reply.text) < 6 * 1024 * 1024 / 2


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/assets/nothing.js",
        "/dashboard/assets/index.html",
        "/dashboard/assets/vendor/mermaid.LICENSE",
        "/dashboard/assets/..%2Fapp.py",
        "/dashboard/assets/vendor/..%2F..%2Froutes%2Fdashboard.py",
    ],
)
def test_nothing_else_is_served(api: Api, path: str) -> None:
    reply = api("api_dashboard_asset", path=path)
    assert reply.status == 404, reply.text


def test_validate_lists_every_problem_with_its_path(api: Api) -> None:
    reply = api("api_validate_graph")
    assert reply.status == 200, reply.text
    body = reply.json()
    assert body["valid"] is False and body["mermaid"] is None
    wheres = sorted(p["where"] for p in body["problems"])
    assert wheres == ["edges.check", "nodes.check.tool"]
    assert all(p["message"] for p in body["problems"])


def test_validate_draws_a_valid_graph_and_stores_nothing(api: Api) -> None:
    reply = api("api_validate_graph", body=parallel_graph(2))
    body = reply.json()
    assert (body["valid"], body["problems"]) == (True, [])
    assert body["mermaid"].startswith("flowchart TD")
    assert 'subgraph sg_1["branch b0"]' in body["mermaid"]
    assert api("api_list_graphs").json()["graphs"] == []


def test_validate_refuses_what_is_not_json_and_needs_a_caller(api: Api) -> None:
    assert api("api_validate_graph", body="{nope").status == 400
    assert api("api_validate_graph", caller=None).status == 401


def test_the_validate_route_is_in_the_openapi_document(api: Api) -> None:
    paths = api("api_openapi").json()["paths"]
    assert "post" in paths["/graphs/validate"]
    assert "/dashboard" not in paths
