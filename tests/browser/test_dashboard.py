"""The dashboard in headless Chromium against a local stack: runs, a run's live view, cancel, callbacks, the editor."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.stack import LocalStack
from tests.browser.conftest import shoot
from tests.e2e.conftest import GATED, create_graph, run_logs, start_run, wait_for_run

FINAL = re.compile(r"run_(succeeded|failed|cancelled|timed_out)")


def gated_state(tmp_path: Path, timeout: float = 20.0) -> dict[str, Any]:
    return {
        "i": 0,
        "gate": str(tmp_path / "open"),
        "gate_reached": str(tmp_path / "reached"),
        "gate_timeout": timeout,
    }


def wait_for_file(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def logged_seqs(page: Any) -> list[int]:
    return [int(s) for s in page.locator("#log li").evaluate_all("els => els.map(e => e.dataset.seq)")]


def test_the_run_list_shows_a_run_started_over_http(page: Any, api: httpx.Client, stack: LocalStack) -> None:
    graph_id = create_graph(api, {**GATED, "name": "listed"})
    page.goto(f"/dashboard#/graphs/{graph_id}")
    page.locator("#graph-diagram svg").wait_for()
    page.fill("#initial-state", json.dumps({"i": 0, "gate": "/dev/null"}))
    page.click("#start-run")
    page.wait_for_url(re.compile(r"#/runs/[0-9a-f]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    page.click("nav >> text=Runs")
    row = page.locator(f'#runs-table tr[data-run-id="{run_id}"]')
    row.wait_for()
    assert graph_id in row.inner_text()
    # The list refreshes itself: the row turns SUCCEEDED without a reload.
    page.locator(f'#runs-table tr[data-run-id="{run_id}"][data-status="SUCCEEDED"]').wait_for(timeout=30_000)
    assert wait_for_run(api, run_id)["status"] == "SUCCEEDED"
    page.select_option("#filter-status", "FAILED")
    page.locator("#runs-table tbody td.hint").wait_for()
    shoot(page, "runs-list")


def test_the_run_list_shows_a_run_another_client_started(page: Any, api: httpx.Client) -> None:
    run_id = start_run(api, create_graph(api, {**GATED, "name": "elsewhere"}), {"gate": "/dev/null"})
    page.goto("/dashboard#/runs")
    page.locator(f'#runs-table tr[data-run-id="{run_id}"]').wait_for(timeout=8_000)


def test_a_run_shows_its_diagram_and_its_log_live_until_the_final_record(
    page: Any, api: httpx.Client, stack: LocalStack, tmp_path: Path
) -> None:
    state = gated_state(tmp_path)
    run_id = start_run(api, create_graph(api, GATED), state)
    wait_for_file(Path(state["gate_reached"]))
    page.goto(f"/dashboard#/runs/{run_id}")
    page.locator("#run-diagram svg").wait_for()
    page.locator("#run-diagram[data-current='gate'][data-visited='start']").wait_for()
    assert page.locator("#run-diagram svg g.node.current").count() == 1
    assert page.locator("#run-diagram svg g.node.visited").count() == 1
    page.locator("#log li[data-type='step_started']").first.wait_for()
    before = logged_seqs(page)
    assert not page.locator("#log li[data-type='run_succeeded']").count()
    shoot(page, "run-live-before")
    # Drop the WebSocket from the server's side: the page reconnects with `after` = the last seq it has.
    for connection in list(stack.gateway.connections.values()):
        if connection.ws is not None:
            stack._loop.run(connection.ws.close(code=1001, message=b"Going away"))
    page.locator("#log-status", has_text="reconnecting").wait_for(timeout=5_000)
    Path(state["gate"]).touch()
    page.locator("#log li[data-type='run_succeeded']").wait_for(timeout=30_000)
    seqs = logged_seqs(page)
    assert seqs == list(range(len(seqs))), seqs
    assert len(seqs) > len(before)
    assert [r["seq"] for r in run_logs(api, run_id)] == seqs
    page.locator("#run-status", has_text="SUCCEEDED").wait_for()
    page.locator("#run-diagram[data-current='']").wait_for()
    page.locator("#state details[data-key='i'], #state .json-leaf").first.wait_for()
    assert "i: 3" in page.locator("#state").inner_text()
    layout = page.locator("#log").bounding_box()
    assert layout is not None and 300 <= layout["height"] <= 440
    shoot(page, "run-live-after")


def test_cancel_ends_a_running_run(page: Any, api: httpx.Client, tmp_path: Path) -> None:
    state = gated_state(tmp_path, timeout=6.0)
    run_id = start_run(api, create_graph(api, {**GATED, "name": "to-cancel"}), state)
    wait_for_file(Path(state["gate_reached"]))
    page.goto(f"/dashboard#/runs/{run_id}")
    page.locator("#run-status", has_text="RUNNING").wait_for()
    page.get_by_role("button", name="Cancel").click()
    page.locator("#run-status", has_text="CANCELLED").wait_for()
    page.locator("#log li[data-type='run_cancelled']").wait_for(timeout=15_000)
    assert wait_for_run(api, run_id)["status"] == "CANCELLED"
    assert not page.get_by_role("button", name="Cancel").count()
    shoot(page, "run-cancelled")


CALLBACK_GRAPH = {
    "name": "review",
    "start_node": "review",
    "nodes": {
        "review": "test.noop",
        "approval": {"callback": {"timeout_seconds": 3600}},
        "publish": "test.noop",
    },
    "edges": {"review": "approval", "approval": "publish"},
}


def test_approving_a_callback_resumes_its_run(page: Any, api: httpx.Client) -> None:
    run_id = start_run(api, create_graph(api, CALLBACK_GRAPH), {})
    page.goto(f"/dashboard#/runs/{run_id}")
    page.locator("#log li[data-type='callback_waiting']").wait_for(timeout=20_000)
    page.fill("#callback-data", json.dumps({"approved_by": "browser"}))
    page.click("#approve")
    page.locator("#log li[data-type='run_succeeded']").wait_for(timeout=30_000)
    run = wait_for_run(api, run_id)
    assert run["status"] == "SUCCEEDED"
    assert run["state"]["approved_by"] == "browser"
    shoot(page, "callback-approved")


BAD_GRAPH = {
    "name": "draft",
    "start_node": "load",
    "nodes": {"load": "test.noop", "check": "no.such.tool"},
    "edges": {"load": "check"},
}
GOOD_GRAPH = {
    "name": "drafted",
    "start_node": "load",
    "nodes": {"load": "test.noop", "check": "test.inc"},
    "edges": {"load": "check"},
}


def test_the_editor_shows_a_problem_by_its_node_then_creates_a_good_graph(
    page: Any, api: httpx.Client
) -> None:
    page.goto("/dashboard#/editor")
    page.locator("#editor-status", has_text="valid").wait_for()
    page.fill("#editor-text", json.dumps(BAD_GRAPH, indent=2))
    problem = page.locator("#editor-nodes li[data-node='check'] .problem")
    problem.wait_for()
    assert "nodes.check" in problem.inner_text() and "no.such.tool" in problem.inner_text()
    assert not page.locator("#editor-nodes li[data-node='load'] .problem").count()
    page.locator("#editor-status", has_text="1 problem").wait_for()
    shoot(page, "editor-problem")
    page.fill("#editor-text", json.dumps(GOOD_GRAPH, indent=2))
    page.locator("#editor-status", has_text="valid").wait_for()
    page.locator("#preview svg g.node").first.wait_for()
    assert (page.locator("#preview svg").text_content() or "").count("test.inc") == 1
    page.fill("#graph-id", "drafted-graph")
    page.click("#save-graph")
    page.wait_for_url(re.compile(r"#/graphs/drafted-graph$"))
    page.locator("#graph-json", has_text='"test.inc"').wait_for()
    assert api.get("/graphs/drafted-graph").json()["definition"]["name"] == "drafted"
    shoot(page, "editor-created")


GATED_PARALLEL = {
    "name": "branches",
    "start_node": "split",
    "nodes": {"split": "test.noop", "left": "test.gate", "right": "test.gate", "merge": "test.noop"},
    "edges": {"split": {"parallel": ["left", "right"], "join": "merge"}, "left": "merge", "right": "merge"},
    "reducers": {"gate_passed": "last"},
}


def test_a_parallel_run_shows_its_branches(page: Any, api: httpx.Client, tmp_path: Path) -> None:
    state = gated_state(tmp_path)
    run_id = start_run(api, create_graph(api, GATED_PARALLEL), state)
    wait_for_file(Path(state["gate_reached"]))
    page.goto(f"/dashboard#/runs/{run_id}")
    progress = page.locator("#fanout-progress")
    progress.wait_for()
    assert "Parallel at split" in progress.inner_text()
    page.locator("#fanout-progress li[data-branch='left']").wait_for()
    page.locator("#fanout-progress li[data-branch='right']").wait_for()
    page.locator("#run-diagram svg").wait_for()
    page.wait_for_function("document.querySelectorAll('#run-diagram svg g.node.current').length === 2")
    shoot(page, "parallel-running")
    Path(state["gate"]).touch()
    page.locator("#log li[data-type='run_succeeded']").wait_for(timeout=30_000)
    page.locator("#fanout li[data-branch='left']", has_text="arrived").wait_for()
    page.locator("#fanout li[data-branch='right']", has_text="arrived").wait_for()
    assert page.locator("#log li .branch", has_text="left").count() >= 2
    shoot(page, "parallel-done")


def test_keyboard_and_a_phone_screen(page: Any, api: httpx.Client) -> None:
    graph_id = create_graph(api, {**GATED, "name": "phone"})
    run_id = start_run(api, graph_id, {"i": 0, "gate": "/dev/null"})
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/dashboard#/graphs")
    page.locator("#graphs-table tbody a").first.wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    # Each view takes the focus (main), so Tab goes on from the view's content.
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#graphs-table') !== null"):
            break
    else:
        pytest.fail("the graphs table's links cannot be reached with Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "a focused link shows no focus ring"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"#/graphs/[^/]+$"))
    page.locator("#graph-diagram svg").wait_for()
    shoot(page, "phone-graph")
    page.goto(f"/dashboard#/runs/{run_id}")
    page.locator("#log li[data-type='run_succeeded']").wait_for(timeout=30_000)
    # The run had ended before the page opened: every node it went through is marked visited.
    page.locator("#run-diagram[data-current=''][data-visited='a,b,gate,start']").wait_for()
    assert page.locator("#run-diagram svg g.node.visited").count() == 4
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    shoot(page, "phone-run")


FAILING = {
    "name": "failing",
    "start_node": "start",
    "nodes": {"start": "test.noop", "boom": "test.fail"},
    "edges": {"start": "boom"},
}


def test_a_failed_run_shows_its_error_and_node(page: Any, api: httpx.Client) -> None:
    run_id = start_run(api, create_graph(api, FAILING), {})
    run = wait_for_run(api, run_id)
    assert run["status"] == "FAILED"
    page.goto(f"/dashboard#/runs/{run_id}")
    alert = page.locator("#run-error [role='alert']")
    alert.wait_for()
    assert "in boom" in alert.inner_text() and "failed on purpose" in alert.inner_text()
    page.locator("#run-diagram[data-visited='start']").wait_for()
    assert page.locator("#run-diagram svg g.node.failed").count() == 1
    assert page.get_by_role("button", name="Redrive").is_visible()
    assert not page.get_by_role("button", name="Cancel").count()
    shoot(page, "run-failed")
