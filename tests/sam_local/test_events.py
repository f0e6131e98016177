"""Every event in ``events/`` through the built functions in Docker (``sam local start-lambda``).

The graph and the run the events name (``GRAPH_ID``, ``RUN_ID``) are stored on moto first,
the run at its first step, so that every event meets what it refers to. The cases run in
the order of :data:`CASES`: the step event advances the seeded run before it is read, the
DLQ event, now stale, leaves it running, the callback events find it waiting for no callback
(404), the cancel event cancels it, the redrive event is refused for it (409: only a failed or
timed-out run is redriven), and the delete events remove it and its graph.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.aws.dynamodb import DynamoStore
from engine.aws.s3 import S3BlobStore
from engine.aws.sqs import SqsStepQueue
from engine.registry import REGISTRY, load_tool_modules
from engine.service import WorkflowService
from tests.sam_local.conftest import ROOT, Moto, sam_command, sam_env
from tests.sam_local.invoking import body, invoke, text
from tests.support.events import CALLER, EVENTS, load_event

GRAPH_ID = "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
RUN_ID = "0f5a2f3c9b8e4d7a8c1e2b3a4d5e6f70"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}


def store(moto: Moto) -> DynamoStore:
    blobs = S3BlobStore(moto.client("s3"), moto.resources.bucket)
    return DynamoStore(moto.client("dynamodb"), moto.resources.table_name, blobs=blobs)


@pytest.fixture(scope="module")
def seeded(moto: Moto) -> Iterator[DynamoStore]:
    """The events' graph (the body of ``api_create_graph.json``) and run, not queued, on moto."""
    load_tool_modules(("engine.tools.dq",))
    runs = store(moto)
    service = WorkflowService(
        graphs=runs,
        runs=runs,
        queue=SqsStepQueue(moto.client("sqs"), moto.resources.queue_url),
        registry=REGISTRY,
        ids=lambda: RUN_ID,
    )
    service.create_graph(json.loads(load_event("api_create_graph")["body"]), graph_id=GRAPH_ID, owner=CALLER)
    start = json.loads(load_event("api_start_run")["body"])
    service.start_run(GRAPH_ID, start["initial_state"], enqueue=False, owner=CALLER)
    yield runs


Check = Callable[[Any, DynamoStore], None]


def http(status: int, shape: Callable[[Any], bool] = lambda _: True) -> Check:
    """The API answered ``status`` with a JSON body for which ``shape`` holds."""

    def check(answer: Any, _: DynamoStore) -> None:
        assert answer["statusCode"] == status, answer
        assert shape(body(answer)), text(answer)[:2000]

    return check


def http_status(status: int) -> Check:
    """The API answered ``status`` (an answer without a body, such as 204)."""

    def check(answer: Any, _: DynamoStore) -> None:
        assert answer["statusCode"] == status, answer

    return check


def http_text(status: int, needle: str) -> Check:
    def check(answer: Any, _: DynamoStore) -> None:
        assert answer["statusCode"] == status, answer
        assert needle in text(answer), text(answer)[:2000]

    return check


def ended(run: Any) -> bool:
    return isinstance(run, dict) and run.get("status") in TERMINAL


def no_batch_failures(then: Callable[[DynamoStore], None]) -> Check:
    def check(answer: Any, runs: DynamoStore) -> None:
        assert answer == {"batchItemFailures": []}, answer
        then(runs)

    return check


def seeded_run_advanced(runs: DynamoStore) -> None:
    run = runs.get_run(RUN_ID)
    assert run.current_node != "initialize" or run.status.value != "RUNNING", run


def seeded_run_still_running(runs: DynamoStore) -> None:
    """The DLQ event names step 3, not the run's position (the step event moved it to step 1): stale."""
    assert runs.get_run(RUN_ID).status.value == "RUNNING"


def ws(status: int) -> Check:
    def check(answer: Any, _: DynamoStore) -> None:
        assert answer["statusCode"] == status, answer

    return check


# (event file, function, check), in the order they run.
CASES: list[tuple[str, str, Check]] = [
    ("api_root", "ApiFunction", http(200, lambda b: b["openapi"] == "/openapi.json")),
    (
        "api_list_tools",
        "ApiFunction",
        http(200, lambda b: any(t["name"] == "dq.profile" for t in b["tools"])),
    ),
    ("api_openapi", "ApiFunction", http(200, lambda b: "/runs" in b["paths"])),
    ("api_docs", "ApiFunction", http_text(200, "Swagger UI")),
    ("api_dashboard", "ApiFunction", http_text(200, 'id="graphflow-config"')),
    ("api_dashboard_asset", "ApiFunction", http_text(200, "import")),
    (
        "api_validate_graph",
        "ApiFunction",
        http(200, lambda b: b["valid"] is False and len(b["problems"]) == 2),
    ),
    ("api_create_graph", "ApiFunction", http(201, lambda b: b["graph_id"] != GRAPH_ID and b["version"] == 1)),
    ("api_legacy_graph_create", "ApiFunction", http(200, lambda b: bool(b["graph_id"]))),
    ("api_list_graphs", "ApiFunction", http(200, lambda b: GRAPH_ID in json.dumps(b))),
    ("api_get_graph", "ApiFunction", http(200, lambda b: b["graph_id"] == GRAPH_ID)),
    ("api_graph_diagram", "ApiFunction", http_text(200, "initialize")),
    ("api_update_graph", "ApiFunction", http(201, lambda b: b["graph_id"] == GRAPH_ID and b["version"] == 2)),
    ("api_start_run", "ApiFunction", http(202, lambda b: b["run_id"] != RUN_ID and b["status"] == "PENDING")),
    ("api_start_run_wait", "ApiFunction", http(200, lambda b: b["status"] == "SUCCEEDED")),
    ("api_legacy_graph_run", "ApiFunction", http(200, ended)),
    ("api_legacy_graph_run_async", "ApiFunction", http(200, lambda b: bool(b["run_id"]))),
    ("api_demo_run_data_quality", "ApiFunction", http(200)),
    ("step_sqs", "StepFunction", no_batch_failures(seeded_run_advanced)),
    ("api_get_run", "ApiFunction", http(200, lambda b: b["run_id"] == RUN_ID)),
    ("api_list_runs", "ApiFunction", http(200, lambda b: isinstance(b["runs"], list))),
    ("api_run_logs", "ApiFunction", http(200)),
    ("api_legacy_graph_state", "ApiFunction", http(200)),
    ("api_legacy_execution", "ApiFunction", http(200)),
    ("ws_connect", "WebSocketFunction", ws(200)),
    ("ws_subscribe", "WebSocketFunction", ws(200)),
    ("ws_default", "WebSocketFunction", ws(400)),  # "ping" is no action: an error frame and 400
    ("ws_unsubscribe", "WebSocketFunction", ws(200)),
    ("ws_disconnect", "WebSocketFunction", ws(200)),
    ("dlq_sqs", "DeadLetterFunction", no_batch_failures(seeded_run_still_running)),
    ("api_approve_callback", "ApiFunction", http(404, lambda b: b["code"] == "callback_not_found")),
    ("api_reject_callback", "ApiFunction", http(404, lambda b: b["code"] == "callback_not_found")),
    ("trigger_upload", "TriggerFunction", lambda answer, _: answer["started"] is True or pytest.fail(answer)),
    # The seeded graph declares no triggers: a schedule of its trigger 0 is stale and starts nothing.
    (
        "trigger_schedule",
        "TriggerFunction",
        lambda answer, _: answer == {"started": False, "reason": "trigger_removed"} or pytest.fail(answer),
    ),
    ("api_cancel_run", "ApiFunction", http(200, lambda b: b["status"] == "CANCELLED")),
    ("api_redrive_run", "ApiFunction", http(409, lambda b: b["code"] == "run_not_redrivable")),
    ("api_delete_run", "ApiFunction", http_status(204)),
    ("api_delete_graph", "ApiFunction", http_status(204)),
]


def test_every_event_file_is_a_case() -> None:
    assert sorted(name for name, _, _ in CASES) == sorted(p.stem for p in EVENTS.glob("*.json"))


@pytest.mark.sam_local
@pytest.mark.parametrize(("name", "function", "check"), CASES, ids=[name for name, _, _ in CASES])
def test_event(lambda_client: Any, seeded: DynamoStore, name: str, function: str, check: Check) -> None:
    check(invoke(lambda_client, function, load_event(name)), seeded)


@pytest.mark.sam_local
def test_sam_local_invoke_with_an_event_file(env_vars_file: Any, seeded: DynamoStore) -> None:
    """One plain ``sam local invoke -e``: a container of its own, the answer on stdout."""
    done = subprocess.run(
        [
            *sam_command("invoke", "ApiFunction"),
            "--event",
            str(EVENTS / "api_list_tools.json"),
            "--env-vars",
            str(env_vars_file),
        ],
        capture_output=True,
        text=True,
        env=sam_env(),
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["statusCode"] == 200, answer
    assert "dq.profile" in json.dumps(body(answer))
