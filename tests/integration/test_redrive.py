"""Redrive through the handlers on moto: ``POST /runs/{id}/redrive`` (the sample event ``api_redrive_run``).

A failed run goes on from the node that failed, with the same id, its log
continuing after a ``run_redriven`` record; the step Lambda drives it from the
queue, the DLQ Lambda fails a run whose message was poisoned.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from engine.model import RunStatus
from functions.shared import wiring
from functions.shared.observability import metrics
from tests.integration.conftest import AwsEnv
from tests.support.api import Api, Reply
from tests.support.durable import (
    TOOL_MODULES,
    Steps,
    flaky_publish_graph,
    get_run,
    logs,
    review_graph,
    start,
    tokens,
    visited,
)
from tests.support.tools import LOOP_GRAPH

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

BOB = "arn:aws:iam::123456789012:user/bob"


@pytest.fixture
def api(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", TOOL_MODULES)
    monkeypatch.delenv("WAIT_BUDGET_SECONDS", raising=False)
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.queue_url, Attributes={"VisibilityTimeout": "0"})
    wiring.reset()
    return Api(aws)


@pytest.fixture
def steps(api: Api) -> Steps:
    return Steps(api.env)


def redrive(api: Api, run_id: str, **options: Any) -> Reply:
    return api("api_redrive_run", path=f"/runs/{run_id}/redrive", **options)


def code(reply: Reply) -> tuple[int, str]:
    return reply.status, reply.json()["code"]


def failed_run(api: Api, steps: Steps, flag: Path) -> str:
    """A run of :func:`flaky_publish_graph` that failed at ``publish`` (``flag`` does not exist yet)."""
    run_id = start(api, flaky_publish_graph(), {"pass_when": str(flag)})
    steps.drain()
    run = get_run(api, run_id)
    assert (run["status"], run["error"]["node"]) == ("FAILED", "publish"), run
    return run_id


def test_a_failed_run_goes_on_from_the_failed_node_with_its_id_log_and_state(
    api: Api, steps: Steps, tmp_path: Path
) -> None:
    flag = tmp_path / "publish-may-pass"
    run_id = failed_run(api, steps, flag)
    failed = get_run(api, run_id)
    before = logs(api, run_id)
    flag.touch()

    reply = redrive(api, run_id)

    assert reply.status == 202, reply.text
    assert reply.headers["Location"] == f"/runs/{run_id}"
    answered = reply.json()
    assert (answered["run_id"], answered["status"], answered["current_node"]) == (
        run_id,
        "RUNNING",
        "publish",
    )
    assert (answered["step"], answered["attempt"]) == (failed["step"], failed["attempt"] + 1)
    assert answered["redriven_at"] is not None
    steps.drain()
    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert visited(run) == {"review", "notify"}
    assert (run["state"]["passed_at"], run["state"]["passed_attempt"]) == (
        failed["step"],
        failed["attempt"] + 1,
    )
    after = logs(api, run_id)
    assert after[: len(before)] == before, "the log before the redrive is kept as it was"
    redriven = after[len(before)]
    assert (redriven["type"], redriven["seq"], redriven["node"]) == (
        "run_redriven",
        before[-1]["seq"] + 1,
        "publish",
    )
    assert redriven["data"]["from_status"] == "FAILED"
    assert redriven["data"]["error"]["node"] == "publish"
    assert after[-1]["type"] == "run_succeeded"
    starts = [r for r in after if r["type"] == "step_started" and r["node"] == "review"]
    assert len(starts) == 1, "the nodes before the failure do not run again"


def test_a_run_that_fails_again_can_be_redriven_again(api: Api, steps: Steps, tmp_path: Path) -> None:
    flag = tmp_path / "not-yet"
    run_id = failed_run(api, steps, flag)

    assert redrive(api, run_id).status == 202
    steps.drain()
    assert get_run(api, run_id)["status"] == "FAILED"
    flag.touch()
    assert redrive(api, run_id).status == 202
    steps.drain()

    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED"
    assert [r["type"] for r in logs(api, run_id)].count("run_redriven") == 2


def test_a_succeeded_or_running_run_is_409(api: Api, steps: Steps) -> None:
    succeeded = start(api, LOOP_GRAPH, {"i": 0})
    steps.drain()
    assert get_run(api, succeeded)["status"] == "SUCCEEDED"
    waiting = start(api, review_graph())
    steps.drain()
    queued = start(api, LOOP_GRAPH, {"i": 0})

    for run_id in (succeeded, waiting, queued):
        before = logs(api, run_id)
        assert code(redrive(api, run_id)) == (409, "run_not_redrivable")
        assert logs(api, run_id) == before


def test_a_cancelled_run_is_409(api: Api, steps: Steps) -> None:
    run_id = start(api, review_graph())
    steps.drain()
    assert api("api_cancel_run", path=f"/runs/{run_id}/cancel").status == 200

    assert code(redrive(api, run_id)) == (409, "run_not_redrivable")


def test_a_redriven_run_is_running_so_a_second_redrive_is_409(api: Api, steps: Steps, tmp_path: Path) -> None:
    run_id = failed_run(api, steps, tmp_path / "flag")

    assert redrive(api, run_id).status == 202
    assert code(redrive(api, run_id)) == (409, "run_not_redrivable")
    steps.drain()
    assert [r["type"] for r in logs(api, run_id)].count("run_redriven") == 1


def test_another_owners_run_is_404_and_an_unknown_run_too(api: Api, steps: Steps, tmp_path: Path) -> None:
    run_id = failed_run(api, steps, tmp_path / "flag")

    assert code(redrive(api, run_id, caller=BOB)) == (404, "run_not_found")
    assert code(redrive(api, "0123456789abcdef0123456789abcdef")) == (404, "run_not_found")
    assert redrive(api, run_id, caller=None).status == 401
    assert get_run(api, run_id)["status"] == "FAILED"


def test_a_run_that_went_through_the_dlq_is_redriven(
    api: Api, steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = start(api, LOOP_GRAPH, {"i": 0})
    store = wiring.store()
    original = store.commit
    poisoned = {"on": True}

    def commit(run: Any, changes: Any, records: Any) -> Any:
        if (
            poisoned["on"]
            and run.run_id == run_id
            and run.step == 4
            and changes.status is not RunStatus.FAILED
        ):
            raise RuntimeError("simulated storage fault on step 4's commit")
        return original(run, changes, records)

    monkeypatch.setattr(store, "commit", commit)
    steps.drain()
    assert steps.drain_dlq() == 1
    failed = get_run(api, run_id)
    assert failed["status"] == "FAILED"
    assert failed["error"]["type"] == "StepDeliveryFailed"
    assert failed["step"] == 4
    poisoned["on"] = False

    assert redrive(api, run_id).status == 202
    steps.drain()

    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert (run["state"]["i"], run["step"]) == (3, 9)
    records = logs(api, run_id)
    types = [r["type"] for r in records]
    assert types.index("run_failed") < types.index("run_redriven") < types.index("run_succeeded")
    assert [r["step"] for r in records if r["type"] == "step_succeeded"] == list(range(9))


def test_a_timed_out_run_is_redriven_and_its_timeout_counts_from_the_redrive(
    api: Api, steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = {**LOOP_GRAPH, "timeout_seconds": 60}
    run_id = start(api, graph, {"i": 0})
    service = wiring.service()
    now = service.clock()
    monkeypatch.setattr(service, "clock", lambda: now + 120)
    steps.drain()
    timed_out = get_run(api, run_id)
    assert (timed_out["status"], timed_out["error"]["type"]) == ("TIMED_OUT", "RunTimedOut")

    reply = redrive(api, run_id)

    assert reply.status == 202, reply.text
    steps.drain()
    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    [redriven] = [r for r in logs(api, run_id) if r["type"] == "run_redriven"]
    assert redriven["data"]["from_status"] == "TIMED_OUT"


def test_a_failed_branch_is_redriven_from_its_fan_out_node(api: Api, steps: Steps, tmp_path: Path) -> None:
    flag = tmp_path / "branch-may-pass"
    graph = {
        "name": "fan",
        "start_node": "split",
        "nodes": {"split": "test.noop", "good": "test.tag", "bad": "test.fail_until", "merge": "test.tag"},
        "edges": {
            "split": {"parallel": ["good", "bad"], "join": "merge"},
            "good": "merge",
            "bad": "merge",
            "merge": "__end__",
        },
        "reducers": {"count": "sum"},
    }
    run_id = start(api, graph, {"pass_when": str(flag)})
    steps.drain()
    failed = get_run(api, run_id)
    assert (failed["status"], failed["error"]["node"]) == ("FAILED", "bad"), failed
    flag.touch()

    reply = redrive(api, run_id)

    assert reply.status == 202, reply.text
    assert reply.json()["current_node"] == "split"
    steps.drain()
    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert visited(run) == {"good", "merge"}
    [redriven] = [r for r in logs(api, run_id) if r["type"] == "run_redriven"]
    assert redriven["node"] == "split"
    good_starts = [r for r in logs(api, run_id) if r["type"] == "step_started" and r["node"] == "good"]
    assert len(good_starts) == 2, "every branch runs again"


def test_a_rejected_callback_is_redriven_with_a_new_token(api: Api, steps: Steps) -> None:
    run_id = start(api, review_graph(expired=False))
    steps.drain()
    [first] = tokens(api, run_id)
    assert (
        api("api_reject_callback", path=f"/callbacks/{first}/fail", body={"reason": "not yet"}).status == 200
    )
    assert get_run(api, run_id)["status"] == "FAILED"

    assert redrive(api, run_id).status == 202
    steps.drain()

    issued = tokens(api, run_id)
    assert len(issued) == 2 and issued[0] == first
    assert get_run(api, run_id)["waiting"]["node"] == "approval"
    assert api("api_approve_callback", path=f"/callbacks/{first}", body=None).status == 409
    assert api("api_approve_callback", path=f"/callbacks/{issued[1]}", body=None).status == 200
    steps.drain()
    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED"
    assert visited(run) == {"review", "publish"}
