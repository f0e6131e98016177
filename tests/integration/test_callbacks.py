"""Callbacks through the handlers on moto: ``review -> approval (callback) -> publish``.

The run is driven by the step Lambda from the queue; the token is read from the
run's log, used through ``POST /callbacks/{token}[/fail]`` (the sample events
``api_approve_callback`` and ``api_reject_callback``); the time-out is the timer
message in the queue, fired by moving the service's clock.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from engine.service import MAX_CALLBACK_DATA_BYTES
from functions.shared import wiring
from functions.shared.observability import metrics
from tests.integration.conftest import AwsEnv
from tests.support.api import Api, Reply
from tests.support.durable import TOOL_MODULES, Steps, get_run, logs, review_graph, start, tokens, visited
from tests.support.events import load_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

BOB = "arn:aws:iam::123456789012:user/bob"
HOUR = 3600


@pytest.fixture
def api(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("WORKFLOW_TOOL_MODULES", TOOL_MODULES)
    monkeypatch.delenv("WAIT_BUDGET_SECONDS", raising=False)
    monkeypatch.delenv("MAX_BODY_BYTES", raising=False)
    monkeypatch.setattr(metrics, "namespace", os.environ["POWERTOOLS_METRICS_NAMESPACE"])
    aws.sqs.set_queue_attributes(QueueUrl=aws.resources.queue_url, Attributes={"VisibilityTimeout": "0"})
    wiring.reset()
    return Api(aws)


@pytest.fixture
def steps(api: Api) -> Steps:
    return Steps(api.env)


def approve(api: Api, token: str, body: Any = None, **options: Any) -> Reply:
    return api("api_approve_callback", path=f"/callbacks/{token}", body=body, **options)


def reject(api: Api, token: str, reason: str = "the figures do not add up", **options: Any) -> Reply:
    return api("api_reject_callback", path=f"/callbacks/{token}/fail", body={"reason": reason}, **options)


def waiting_run(api: Api, steps: Steps, graph: dict[str, Any] | None = None) -> tuple[str, str]:
    """A run of ``graph`` (default :func:`review_graph`) driven to its callback: ``(run_id, token)``."""
    run_id = start(api, graph or review_graph())
    steps.drain()
    [token] = tokens(api, run_id)
    return run_id, token


def code(reply: Reply) -> tuple[int, str]:
    return reply.status, reply.json()["code"]


def test_the_run_waits_showing_what_for_and_the_token_only_in_its_log(api: Api, steps: Steps) -> None:
    run_id, token = waiting_run(api, steps)

    reply = api("api_get_run", path=f"/runs/{run_id}")
    run = reply.json()
    assert (run["status"], run["current_node"]) == ("RUNNING", "approval")
    waiting = run["waiting"]
    assert set(waiting) == {"kind", "node", "since", "until"}
    assert (waiting["kind"], waiting["node"]) == ("callback", "approval")
    assert waiting["until"] - waiting["since"] == pytest.approx(HOUR)
    secret = token.rsplit(".", 1)[1]
    assert secret not in reply.text and "digest" not in reply.text
    [record] = [r for r in logs(api, run_id) if r["type"] == "callback_waiting"]
    assert record["node"] == "approval"
    assert record["data"]["expires_at"] == waiting["until"]
    assert token.startswith(f"{run_id}.{run['step']}.{run['attempt']}.")
    assert steps.drain() == 0, "nothing runs while the run waits"


def test_approved_merges_its_data_and_the_run_succeeds(api: Api, steps: Steps) -> None:
    run_id, token = waiting_run(api, steps)

    reply = approve(api, token, {"decision": {"ship": True}, "data": {"reviewer": "alice", "notes": "ok"}})

    assert reply.status == 200, reply.text
    answered = reply.json()
    assert (answered["run_id"], answered["status"], answered["current_node"]) == (
        run_id,
        "RUNNING",
        "publish",
    )
    assert answered["waiting"] is None
    assert answered["state"]["reviewer"] == "alice"
    steps.drain()
    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert visited(run) == {"review", "publish"}
    assert (run["state"]["reviewer"], run["state"]["notes"], run["state"]["decision"]) == (
        "alice",
        "ok",
        {"ship": True},
    )
    types = [r["type"] for r in logs(api, run_id)]
    assert types.index("callback_waiting") < types.index("callback_received") < types.index("run_succeeded")
    [received] = [r for r in logs(api, run_id) if r["type"] == "callback_received"]
    assert received["data"] == {"approved": True, "decision": {"ship": True}, "keys": ["notes", "reviewer"]}


def test_approved_without_a_body_moves_the_run_on(api: Api, steps: Steps) -> None:
    run_id, token = waiting_run(api, steps)

    assert approve(api, token).status == 200
    steps.drain()
    assert get_run(api, run_id)["status"] == "SUCCEEDED"


def test_the_sample_event_approves_when_its_token_is_live(api: Api, steps: Steps) -> None:
    _, token = waiting_run(api, steps)
    sample = api("api_approve_callback")
    assert code(sample) == (404, "callback_not_found")

    reply = approve(api, token, json.loads(load_event("api_approve_callback")["body"]))

    assert reply.status == 200, reply.text
    assert reply.json()["state"]["reviewer"] == "alice"


def test_a_token_is_a_capability_any_authenticated_caller_may_use_once(api: Api, steps: Steps) -> None:
    run_id, token = waiting_run(api, steps)
    assert approve(api, token, caller=None).status == 401
    assert api("api_get_run", path=f"/runs/{run_id}", caller=BOB).status == 404, "bob cannot read the run"

    reply = approve(api, token, {"data": {"by": "bob"}}, caller=BOB)

    assert reply.status == 200, reply.text
    answered = reply.json()
    assert (answered["run_id"], answered["current_node"]) == (run_id, "publish")
    assert answered["state"] is None, "the token lets bob decide, not read the run's state"
    steps.drain()
    assert get_run(api, run_id)["state"]["by"] == "bob"


def test_a_token_used_twice_is_409_and_changes_nothing(api: Api, steps: Steps) -> None:
    run_id, token = waiting_run(api, steps)
    assert approve(api, token, {"data": {"first": True}}).status == 200
    steps.drain()
    before = logs(api, run_id)

    assert code(approve(api, token, {"data": {"second": True}})) == (409, "callback_used")
    assert code(reject(api, token)) == (409, "callback_used")

    run = get_run(api, run_id)
    assert "second" not in run["state"] and run["status"] == "SUCCEEDED"
    assert logs(api, run_id) == before


@pytest.mark.parametrize(
    "forged",
    [
        "nope",
        "a.b.c.d",
        "{run_id}.{step}.1.short",
        "{run_id}.{step}.1." + "A" * 43,
        "{run_id}.{step}.2.{secret}",
        "0123456789abcdef0123456789abcdef.{step}.1.{secret}",
    ],
)
def test_an_unknown_or_forged_token_is_404(api: Api, steps: Steps, forged: str) -> None:
    run_id, token = waiting_run(api, steps)
    secret = token.rsplit(".", 1)[1]
    step = token.split(".")[1]
    forged = forged.format(run_id=run_id, step=step, secret=secret)

    assert code(approve(api, forged)) == (404, "callback_not_found")
    assert code(reject(api, forged)) == (404, "callback_not_found")

    assert get_run(api, run_id)["waiting"]["kind"] == "callback", "the run still waits"
    assert approve(api, token).status == 200


def test_a_token_used_after_its_timeout_is_410_and_the_timer_takes_the_catch(
    api: Api, steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, token = waiting_run(api, steps)
    service = wiring.service()
    now = service.clock()
    monkeypatch.setattr(service, "clock", lambda: now + HOUR + 1)

    assert code(approve(api, token)) == (410, "callback_expired")
    assert get_run(api, run_id)["status"] == "RUNNING", "the use changed nothing; the timer decides"

    steps.fire_timers(monkeypatch, HOUR + 1)

    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert visited(run) == {"review", "expired"}
    assert run["state"]["error"]["type"] == "CallbackTimedOut"
    assert code(approve(api, token)) == (410, "callback_expired")
    assert code(reject(api, token)) == (410, "callback_expired")
    taken = [r for r in logs(api, run_id) if r["type"] == "edge_taken" and r["node"] == "approval"]
    assert [r["data"]["to"] for r in taken] == ["expired"]


def test_a_timeout_without_a_catch_fails_the_run(
    api: Api, steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, token = waiting_run(api, steps, review_graph(expired=False))

    steps.fire_timers(monkeypatch, HOUR + 1)

    run = get_run(api, run_id)
    assert run["status"] == "FAILED"
    assert (run["error"]["type"], run["error"]["node"]) == ("CallbackTimedOut", "approval")
    assert code(approve(api, token)) == (410, "callback_expired")


def test_the_timer_of_an_approved_callback_does_nothing_when_it_fires(
    api: Api, steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, token = waiting_run(api, steps)
    assert steps.timers, "the time-out is a message hidden in the queue"
    assert approve(api, token).status == 200
    steps.drain()
    before = logs(api, run_id)

    steps.fire_timers(monkeypatch, HOUR + 1)

    assert get_run(api, run_id)["status"] == "SUCCEEDED"
    assert logs(api, run_id) == before


def test_rejected_without_a_catch_fails_the_run_with_the_reason(api: Api, steps: Steps) -> None:
    _, token = waiting_run(api, steps)

    reply = reject(api, token, "the figures do not add up")

    assert reply.status == 200, reply.text
    run = reply.json()
    assert run["status"] == "FAILED"
    assert run["error"] == {
        "type": "CallbackRejected",
        "message": "the figures do not add up",
        "node": "approval",
    }
    assert code(approve(api, token)) == (409, "callback_used")


def test_rejected_takes_the_nodes_catch(api: Api, steps: Steps) -> None:
    run_id, token = waiting_run(api, steps, review_graph(rejected="rework"))

    assert reject(api, token).status == 200
    steps.drain()

    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED", run
    assert visited(run) == {"review", "rework"}
    assert run["state"]["error"]["type"] == "CallbackRejected"


def test_rejected_with_retries_left_issues_a_new_token(
    api: Api, steps: Steps, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, first = waiting_run(api, steps, review_graph(retries=2))

    assert reject(api, first).status == 200
    steps.fire_timers(monkeypatch, 2)  # the retry's 1 s interval

    issued = tokens(api, run_id)
    assert len(issued) == 2 and issued[0] == first
    second = issued[1]
    assert second.split(".")[2] == "2", "attempt 2's token"
    assert code(approve(api, first)) == (409, "callback_used")
    assert approve(api, second, {"data": {"second_try": True}}).status == 200
    steps.drain()
    run = get_run(api, run_id)
    assert run["status"] == "SUCCEEDED"
    assert run["state"]["second_try"] is True


def test_cancel_during_a_callback_closes_its_token(api: Api, steps: Steps) -> None:
    run_id, token = waiting_run(api, steps)

    assert api("api_cancel_run", path=f"/runs/{run_id}/cancel").status == 200

    assert code(approve(api, token)) == (409, "callback_used")
    assert get_run(api, run_id)["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ("{not json", 400, "malformed_json"),
        ('{"data": {"a": 1}, "extra": 1}', 422, "validation_error"),
        ('{"data": [1, 2]}', 422, "validation_error"),
        ('{"data": "text"}', 422, "validation_error"),
        ('{"data": {"n": 1e400}}', 400, "bad_request"),
        ('{"data": {"s": "\\ud83d"}}', 400, "bad_request"),
    ],
)
def test_a_malformed_approval_is_refused_and_the_run_still_waits(
    api: Api, steps: Steps, body: str, status: int, error: str
) -> None:
    run_id, token = waiting_run(api, steps)

    reply = approve(api, token, body)

    assert code(reply) == (status, error), reply.text
    assert get_run(api, run_id)["waiting"] is not None
    assert approve(api, token).status == 200


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"": 1}, "bad_request", "cannot be empty"),
        ({"k" * 300: 1}, "bad_request", "the limit is 256"),
        ({f"k{i}": i for i in range(300)}, "bad_request", "top-level keys"),
        ({"deep": nested(70)}, "too_deep", "levels deep"),
    ],
    ids=["empty-key", "long-key", "too-many-keys", "too-deep"],
)
def test_data_that_would_make_the_state_unusable_is_400_and_the_run_still_waits(
    api: Api, steps: Steps, data: dict[str, Any], error: str, message: str
) -> None:
    run_id, token = waiting_run(api, steps)

    reply = approve(api, token, {"data": data})

    assert code(reply) == (400, error), reply.text
    assert message in reply.json()["message"]
    run = get_run(api, run_id)
    assert (run["status"], run["waiting"]["kind"]) == ("RUNNING", "callback")
    assert approve(api, token).status == 200


@pytest.mark.parametrize("body", ["{}", '{"reason": ""}', '{"reason": "x", "why": "y"}', "[1]"])
def test_a_rejection_needs_a_reason(api: Api, steps: Steps, body: str) -> None:
    run_id, token = waiting_run(api, steps)

    reply = api("api_reject_callback", path=f"/callbacks/{token}/fail", body=body)

    assert reply.status == 422, reply.text
    assert get_run(api, run_id)["waiting"] is not None


HALF = MAX_CALLBACK_DATA_BYTES // 2 + 10


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"blob": "x" * MAX_CALLBACK_DATA_BYTES}},
        {"decision": "x" * MAX_CALLBACK_DATA_BYTES},
        {"data": {"blob": "x" * HALF}, "decision": "x" * HALF},
    ],
    ids=["data", "decision", "both"],
)
def test_data_too_large_is_413_and_the_run_still_waits(api: Api, steps: Steps, body: dict[str, Any]) -> None:
    run_id, token = waiting_run(api, steps)

    reply = approve(api, token, body)

    assert code(reply) == (413, "payload_too_large"), reply.text
    assert get_run(api, run_id)["waiting"] is not None
    assert approve(api, token, {"data": {"blob": "x" * 1000}}).status == 200


def test_the_openapi_document_lists_the_callback_routes(api: Api) -> None:
    paths = api("api_openapi").json()["paths"]
    approve_op = paths["/callbacks/{token}"]["post"]
    assert {"200", "404", "409", "410", "413"} <= set(approve_op["responses"])
    assert "/callbacks/{token}/fail" in paths
    assert "202" in paths["/runs/{run_id}/redrive"]["post"]["responses"]
