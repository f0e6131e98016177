"""The dashboard against a local stack in JWT mode: the token pasted in Settings, sent as Bearer and ``?token=``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.signing import BearerToken
from local.stack import LocalStack
from tests.browser.conftest import shoot
from tests.e2e.conftest import tool_modules
from tests.support.jwt_keys import AUDIENCE, ISSUER, Issuer
from tests.support.tools import LOOP_GRAPH

ISSUING = Issuer()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(
        port=0,
        moto_port=0,
        workers=2,
        tool_modules=tool_modules(),
        log_level="WARNING",
        auth="jwt",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks=ISSUING.jwks(),
    ) as running:
        yield running


def test_a_pasted_jwt_reads_the_callers_runs_and_follows_one_live(page: Any, stack: LocalStack) -> None:
    token = ISSUING.token("alice")
    alice = BearerToken(token).http_auth()
    graph_id = httpx.post(f"{stack.http_url}/graphs", json=LOOP_GRAPH, auth=alice).json()["graph_id"]
    run_id = httpx.post(f"{stack.http_url}/runs", json={"graph_id": graph_id}, auth=alice).json()["run_id"]

    page.goto("/dashboard")
    page.get_by_text("This API expects a JWT").wait_for()
    config = page.evaluate("JSON.parse(document.getElementById('graphflow-config').textContent)")
    assert config["auth"] == "jwt" and "credentials" not in config
    page.get_by_role("button", name="Open settings").click()
    page.locator("#settings input[value='jwt']").check()
    page.fill("#settings textarea[name='jwt']", token)
    page.get_by_role("button", name="Save").click()
    page.locator("#runs-table").wait_for()
    page.fill("#open-run", run_id)
    page.get_by_role("button", name="Open", exact=True).click()
    page.wait_for_url(re.compile(f"#/runs/{run_id}$"))
    page.locator("#log li[data-type='run_succeeded']").wait_for(timeout=30_000)
    page.locator("#run-diagram svg").wait_for()
    shoot(page, "jwt-run")
    page.click("nav >> text=Runs")
    page.locator(f'#runs-table tr[data-run-id="{run_id}"][data-status="SUCCEEDED"]').wait_for()


def test_another_callers_token_sees_nothing_of_alices(page: Any, stack: LocalStack) -> None:
    alice = BearerToken(ISSUING.token("alice")).http_auth()
    graph_id = httpx.post(f"{stack.http_url}/graphs", json=LOOP_GRAPH, auth=alice).json()["graph_id"]
    page.goto("/dashboard")
    page.get_by_role("button", name="Open settings").click()
    page.locator("#settings input[value='jwt']").check()
    page.fill("#settings textarea[name='jwt']", ISSUING.token("bob"))
    page.get_by_role("button", name="Save").click()
    page.goto(f"/dashboard#/graphs/{graph_id}")
    page.locator("#graph-diagram .error", has_text="404").wait_for()
