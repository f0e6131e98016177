"""The README's screenshots: a data-quality run's view and the editor showing a problem.

Saved under ``.artifacts/browser/``; ``make screenshots`` sets ``GRAPHFLOW_SCREENSHOTS=docs/screenshots``
to write ``run.png`` and ``editor.png`` there instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

from engine.graphs import load_graph_json
from tests.browser.conftest import ARTIFACTS
from tests.e2e.conftest import create_graph, start_run, wait_for_run

ROOT = Path(__file__).resolve().parents[2]


def target(name: str) -> Path:
    folder = os.environ.get("GRAPHFLOW_SCREENSHOTS")
    base = ROOT / folder if folder else ARTIFACTS
    base.mkdir(parents=True, exist_ok=True)
    return base / f"{name}.png"


def test_the_run_view_of_a_data_quality_run(page: Any, api: httpx.Client) -> None:
    graph_id = create_graph(api, load_graph_json("data_quality"))
    run_id = start_run(api, graph_id, {"records": 200, "seed": 7})
    page.goto(f"/dashboard#/runs/{run_id}")
    page.locator("#log li[data-type='run_succeeded']").wait_for(timeout=60_000)
    assert wait_for_run(api, run_id)["status"] == "SUCCEEDED"
    page.locator("#quality svg.chart polyline").first.wait_for()
    rows = page.locator("#dq-report tbody tr")
    rows.first.wait_for()
    report = api.get(f"/runs/{run_id}/state/report").json()
    assert rows.count() == len(report["results"])
    first = report["results"][0]
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[2:4] == [str(first["result"]["element_count"]), str(first["result"]["unexpected_count"])]
    history = api.get(f"/runs/{run_id}/state/history").json()
    assert page.locator("#quality svg.chart circle.score").count() == len(history)
    page.locator("#run-diagram[data-current=''][data-visited*='report']").wait_for()
    assert page.locator("#run-diagram svg g.node.visited").count() == 7
    page.screenshot(path=str(target("run")), full_page=True)


def test_the_editor_with_a_problem(page: Any) -> None:
    definition = load_graph_json("data_quality")
    page.goto("/dashboard#/editor")
    page.fill("#editor-text", json.dumps(definition, indent=2))
    page.locator("#preview svg", has_text="dq.report").wait_for()
    node = next(iter(definition["nodes"]))
    broken = json.loads(json.dumps(definition))
    spec = broken["nodes"][node]
    broken["nodes"][node] = {**spec, "tool": "dq.nosuchtool"} if isinstance(spec, dict) else "dq.nosuchtool"
    page.fill("#editor-text", json.dumps(broken, indent=2))
    page.locator(f"#editor-nodes li[data-node='{node}'] .problem").wait_for()
    page.locator("#preview-note", has_text="last valid").wait_for()
    page.evaluate("document.querySelector('#editor-text').scrollTop = 0; document.activeElement.blur()")
    page.screenshot(path=str(target("editor")), full_page=False)
