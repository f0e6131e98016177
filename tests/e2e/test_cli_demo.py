"""``wf`` and the demo against a local stack started on free ports: HTTP, WebSocket, queue, the real handlers.

The ``stack`` fixture (``tests/e2e/conftest.py``) also loads ``tests.support.tools``:
``test.gate`` holds a run at a node until the test creates a file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from engine.graphs import load_graph_json
from local import cli, demo
from local.client import WorkflowClient, WsConnection, websocket_connect
from local.stack import LocalStack
from tests.e2e.conftest import signer

pytestmark = pytest.mark.e2e

TERMINAL = {"run_succeeded", "run_failed", "run_cancelled", "run_timed_out"}


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


Wf = Callable[..., Result]


@pytest.fixture
def client(stack: LocalStack) -> Iterator[WorkflowClient]:
    with WorkflowClient(stack.http_url, stack.ws_url, auth=signer(stack)) as c:
        yield c


@pytest.fixture
def wf(stack: LocalStack, capsys: pytest.CaptureFixture[str], developer_env: None) -> Wf:
    """Run ``wf`` in this process against the stack; returns its exit code and output."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = cli.main(["--endpoint", stack.http_url, "--ws-endpoint", stack.ws_url, *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("graphs") / "data_quality.json"
    path.write_text(json.dumps(load_graph_json("data_quality")))
    return path


@pytest.fixture
def graph_id(wf: Wf, graph_file: Path) -> str:
    created = wf("graphs", "create", str(graph_file), "--json")
    assert created.code == 0, created.err
    return str(created.json()["graph_id"])


@pytest.fixture(scope="module")
def gated_graph(stack: LocalStack) -> str:
    """A graph that waits at ``wait`` until the file ``state['gate']`` exists, then runs ``done``."""
    definition = {
        "name": "gated",
        "start_node": "wait",
        "nodes": {"wait": {"tool": "test.gate"}, "done": {"tool": "test.noop"}},
        "edges": {"wait": "done"},
    }
    with WorkflowClient(stack.http_url, auth=signer(stack)) as client:
        return str(client.create_graph(definition)["graph_id"])


def assert_whole_log(records: list[dict[str, Any]], after: int = -1) -> None:
    """Every record once, in order from ``after + 1``, ending with the terminal record."""
    assert [r["seq"] for r in records] == list(range(after + 1, after + 1 + len(records)))
    assert records[-1]["type"] in TERMINAL
    assert not any(r["type"] in TERMINAL for r in records[:-1])


def test_graphs_create_list_show_and_diagram(wf: Wf, graph_file: Path) -> None:
    created = wf("graphs", "create", str(graph_file), "--json")
    assert created.code == 0, created.err
    graph = created.json()
    assert graph["version"] == 1

    listed = wf("graphs", "list", "--json")
    assert listed.code == 0
    assert graph["graph_id"] in {g["graph_id"] for g in listed.json()}
    human = wf("graphs", "list")
    assert graph["graph_id"] in human.out

    shown = wf("graphs", "show", graph["graph_id"], "--json")
    assert shown.code == 0
    assert shown.json()["definition"]["start_node"] == "initialize"
    assert "generate_rules" in wf("graphs", "show", graph["graph_id"]).out

    diagram = wf("diagram", graph["graph_id"])
    assert diagram.code == 0
    assert diagram.out.lstrip().startswith(("flowchart", "graph", "---"))
    for node in ("initialize", "evaluate", "report"):
        assert node in diagram.out
    assert wf("diagram", graph["graph_id"], "--json").json()["mermaid"].strip() == diagram.out.strip()


def test_an_invalid_graph_is_rejected_with_its_code(wf: Wf, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"name": "bad", "start_node": "a", "nodes": {"a": {"tool": "no.such"}}, "edges": {}})
    )
    result = wf("graphs", "create", str(bad))
    assert result.code == 1
    assert "invalid_graph" in result.err
    assert result.out == ""


def test_run_wait_status_and_logs(wf: Wf, graph_id: str) -> None:
    ran = wf("run", graph_id, "--state", '{"records": 40, "seed": 3}', "--wait", "--json")
    assert ran.code == 0, ran.err
    run = ran.json()
    assert run["status"] == "SUCCEEDED"
    run_id = run["run_id"]

    status = wf("status", run_id, "--json").json()
    assert status["status"] == "SUCCEEDED"
    assert status["state"]["records"] == 40
    assert "report" in status["state"]
    quality = wf("status", run_id, "--key", "report.quality", "--json").json()
    assert quality["iterations"] == status["state"]["iteration"]
    human = wf("status", run_id)
    assert "SUCCEEDED" in human.out
    assert run_id in human.out

    records = wf("logs", run_id, "--json").lines()
    assert_whole_log(records)
    assert records[0]["type"] == "run_started"
    tail = wf("logs", run_id, "--after", "5", "--json").lines()
    assert tail == records[6:]
    assert "run_succeeded" in wf("logs", run_id).out


def test_run_follow_and_logs_follow_over_the_websocket(wf: Wf, graph_id: str) -> None:
    followed = wf("run", graph_id, "--state", '{"records": 50}', "--follow", "--json")
    assert followed.code == 0, followed.err
    *records, final = followed.lines()
    assert_whole_log(records)
    assert final["status"] == "SUCCEEDED"
    run_id = final["run_id"]

    again = wf("logs", run_id, "--follow", "--json").lines()
    assert again == records
    resumed = wf("logs", run_id, "--follow", "--after", "3", "--json").lines()
    assert_whole_log(resumed, after=3)

    started = wf("run", graph_id, "--state", '{"records": 60}', "--json")
    assert started.code == 0
    live = wf("logs", started.json()["run_id"], "-f", "--json").lines()
    assert_whole_log(live)
    assert live[-1]["type"] == "run_succeeded"


def test_follow_resumes_after_a_dropped_connection(
    stack: LocalStack, gated_graph: str, tmp_path: Path
) -> None:
    """The first connection drops after its first frame, while the run waits at its gate; the rest comes live."""
    opened: list[WsConnection] = []

    class DropsOnce:
        def __init__(self, conn: WsConnection, drop: bool) -> None:
            self.conn, self.drop = conn, drop

        def send(self, message: str) -> None:
            self.conn.send(message)

        def recv(self, timeout: float | None = None) -> str | bytes:
            frame = self.conn.recv(timeout)
            if self.drop and json.loads(frame).get("type") == "records":
                self.conn.close()
            return frame

        def close(self) -> None:
            self.conn.close()

    def connect(url: str) -> WsConnection:
        conn = DropsOnce(websocket_connect(url), drop=not opened)
        opened.append(conn)
        return conn

    gate = tmp_path / "gate"
    records: list[dict[str, Any]] = []
    with WorkflowClient(stack.http_url, stack.ws_url, connect=connect, auth=signer(stack)) as client:
        run_id = client.start_run(gated_graph, {"gate": str(gate)})["run_id"]
        follower = client.follow(run_id, timeout=60)
        for record in follower:
            records.append(record.model_dump(mode="json"))
            gate.touch()
    assert_whole_log(records)
    assert records[-1]["type"] == "run_succeeded"
    assert follower.connections == 2


def test_cancel(wf: Wf, gated_graph: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    started = wf("run", gated_graph, "--state", json.dumps({"gate": str(gate)}), "--json").json()
    cancelled = wf("cancel", started["run_id"], "--reason", "e2e", "--json")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json()["status"] == "CANCELLED"
    gate.touch()
    records = wf("logs", started["run_id"], "--follow", "--json").lines()
    assert records[-1]["type"] == "run_cancelled"
    assert wf("status", started["run_id"], "--json").json()["status"] == "CANCELLED"

    again = wf("cancel", started["run_id"])
    assert again.code == 1
    assert "run_finished" in again.err


def test_tools_and_errors(wf: Wf) -> None:
    tools = wf("tools", "--json")
    assert tools.code == 0
    names = {t["name"] for t in tools.json()}
    assert {"dq.initialize", "dq.profile", "dq.evaluate", "dq.report"} <= names
    assert "dq.profile" in wf("tools").out

    missing = wf("status", "no-such-run")
    assert missing.code == 1
    assert "not_found" in missing.err
    failed = wf("run", "no-such-graph", "--wait")
    assert failed.code == 1
    assert "not_found" in failed.err
    assert "usage" not in missing.err + failed.err


def test_the_demo_runs_three_scenarios_at_once(stack: LocalStack, client: WorkflowClient) -> None:
    out = io.StringIO()
    console = Console(file=out, width=120)
    report = demo.run_demo(client, demo.scenarios_for([30, 60, 90], seed=5), console=console, timeout=120)
    demo.print_report(report, client, console)
    assert report.ok, out.getvalue()
    assert [r.scenario.records for r in report.results] == [30, 60, 90]
    for result in report.results:
        assert result.status == "SUCCEEDED"
        assert result.quality["rows_in"] == result.scenario.records
        assert result.quality["score_after"] >= result.quality["score_before"]
        assert result.quality["iterations"] >= 1
        assert result.steps == 2 + 5 * result.quality["iterations"]
    assert report.total_steps == sum(r.steps for r in report.results)
    text = out.getvalue()
    assert "3/3 scenarios succeeded" in text
    assert "steps/s" in text
    assert f"wf status {report.results[0].run_id} --key report" in text


def test_the_demo_command_exits_0_when_every_scenario_succeeds(
    stack: LocalStack, capsys: pytest.CaptureFixture[str], developer_env: None
) -> None:
    code = demo.main(["--endpoint", stack.http_url, "--ws-endpoint", stack.ws_url, "--records", "20,30,40"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3/3 scenarios succeeded" in out
    assert "total wall time" in out
