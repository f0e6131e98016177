"""``wf approve``, ``wf reject``, ``wf redrive`` and what ``wf status`` says of a waiting run, on a fake HTTP API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from local import cli
from local.client import ApiError, WorkflowClient

RUN = "0f5a2f3c9b8e4d7a8c1e2b3a4d5e6f70"
TOKEN = f"{RUN}.1.1.q8Zb1xV3kC0nH7dR2yT9mW4pL6sF5gJ8aE1uN0oK3iM"
NOW = 1_800_000_000.0


def view(**fields: Any) -> dict[str, Any]:
    run = {
        "run_id": RUN,
        "graph_id": "g",
        "graph_version": 1,
        "status": "RUNNING",
        "current_node": "publish",
        "step": 2,
        "attempt": 1,
        "created_at": NOW - 60,
        "updated_at": NOW,
    }
    run.update(fields)
    return run


class FakeApi:
    """Answers the routes the commands call; remembers each request as ``(method, raw path, body)``."""

    def __init__(self, answers: dict[tuple[str, str], Callable[[], httpx.Response]]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode().split("?")[0]
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, path, body))
        return self.answers[(request.method, path)]()

    def client(self) -> WorkflowClient:
        return WorkflowClient("http://api.test", transport=httpx.MockTransport(self.handle))


def args(*argv: str) -> Any:
    return cli.build_parser().parse_args(list(argv))


def ok(body: Any, status: int = 200) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(status, json=body)


def test_approve_sends_the_data_and_the_decision(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fake = FakeApi({("POST", f"/callbacks/{TOKEN}"): ok(view())})
    data_file = tmp_path / "data.json"
    data_file.write_text('{"reviewer": "alice"}')

    code = cli.cmd_approve(
        args("approve", TOKEN, "--data", str(data_file), "--decision", "ship"),
        fake.client(),
        cli.Output(False),
    )
    assert code == cli.EXIT_OK
    cli.cmd_approve(
        args("approve", TOKEN, "--data", '{"n": 1}', "--decision", '{"ok": true}'),
        fake.client(),
        cli.Output(True),
    )
    cli.cmd_approve(args("approve", TOKEN), fake.client(), cli.Output(True))

    assert [body for _, _, body in fake.requests] == [
        {"data": {"reviewer": "alice"}, "decision": "ship"},
        {"data": {"n": 1}, "decision": {"ok": True}},
        None,
    ]
    out = capsys.readouterr().out
    assert f"approved: run {RUN} is RUNNING at publish" in out
    assert json.loads(out.strip().splitlines()[-1])["run_id"] == RUN


def test_the_callback_token_is_not_taken_for_the_jwt_option() -> None:
    assert (args("approve", TOKEN).callback_token, args("approve", TOKEN).token) == (TOKEN, None)
    parsed = args("reject", TOKEN, "--reason", "r", "--token", "jwt")
    assert (parsed.callback_token, parsed.token) == (TOKEN, "jwt")


def test_approve_refuses_data_that_is_not_an_object() -> None:
    fake = FakeApi({})
    with pytest.raises(cli.UsageError, match="JSON object"):
        cli.cmd_approve(args("approve", TOKEN, "--data", "[1, 2]"), fake.client(), cli.Output(False))
    assert fake.requests == []


def test_reject_sends_the_reason_and_needs_one(capsys: pytest.CaptureFixture[str]) -> None:
    failed = view(
        status="FAILED",
        error={"type": "CallbackRejected", "message": "the figures do not add up", "node": "approval"},
    )
    fake = FakeApi({("POST", f"/callbacks/{TOKEN}/fail"): ok(failed)})

    cli.cmd_reject(
        args("reject", TOKEN, "--reason", "the figures do not add up"), fake.client(), cli.Output(False)
    )

    assert fake.requests == [("POST", f"/callbacks/{TOKEN}/fail", {"reason": "the figures do not add up"})]
    assert "is FAILED (CallbackRejected: the figures do not add up)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        args("reject", TOKEN)


def test_a_used_token_is_an_api_error_with_its_code() -> None:
    used = {"code": "callback_used", "message": "this callback was approved already"}
    fake = FakeApi({("POST", f"/callbacks/{TOKEN}"): ok(used, 409)})
    with pytest.raises(ApiError) as raised:
        cli.cmd_approve(args("approve", TOKEN), fake.client(), cli.Output(False))
    assert (raised.value.status, raised.value.code) == (409, "callback_used")


def test_redrive_prints_how_to_follow_from_the_redriven_record(capsys: pytest.CaptureFixture[str]) -> None:
    records = [
        {"run_id": RUN, "seq": i, "ts": NOW, "type": t, "step": 1, "message": t}
        for i, t in enumerate(["run_started", "step_started", "step_failed", "run_failed", "run_redriven"])
    ]
    pages = iter([{"run_id": RUN, "records": records, "next_after": 4}, {"run_id": RUN, "records": []}])
    fake = FakeApi(
        {
            ("POST", f"/runs/{RUN}/redrive"): ok(view(current_node="publish", attempt=2), 202),
            ("GET", f"/runs/{RUN}/logs"): lambda: httpx.Response(200, json=next(pages)),
        }
    )

    assert cli.cmd_redrive(args("redrive", RUN), fake.client(), cli.Output(False)) == cli.EXIT_OK

    out = capsys.readouterr().out
    assert f"redriven: run {RUN} is RUNNING at publish" in out
    assert f"wf logs {RUN} --follow --after 3" in out


def test_status_shows_what_a_run_waits_for_and_its_token(capsys: pytest.CaptureFixture[str]) -> None:
    waiting = view(
        current_node="approval",
        waiting={"kind": "callback", "node": "approval", "since": NOW - 60, "until": NOW + 86_400 * 365},
    )
    record = {
        "run_id": RUN,
        "seq": 3,
        "ts": NOW,
        "type": "callback_waiting",
        "step": 1,
        "node": "approval",
        "message": "approval waits for a callback",
        "data": {"token": TOKEN, "node": "approval", "expires_at": NOW + 3600},
    }
    pages = iter([{"run_id": RUN, "records": [record], "next_after": 3}, {"run_id": RUN, "records": []}])
    fake = FakeApi(
        {
            ("GET", f"/runs/{RUN}"): ok(waiting),
            ("GET", f"/runs/{RUN}/logs"): lambda: httpx.Response(200, json=next(pages)),
        }
    )

    cli.cmd_status(args("status", RUN, "--no-state"), fake.client(), cli.Output(False))

    out = capsys.readouterr().out
    assert "a callback at approval; it times out" in out
    assert TOKEN in out
    assert f"wf approve {TOKEN}" in out


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        (
            {"kind": "timer", "node": "pause", "until": NOW + 3 * 86_400 + 4 * 3600},
            "a timer at pause; it ends ",
        ),
        (
            {"kind": "callback", "node": "approval", "until": NOW + 125},
            "a callback at approval; it times out ",
        ),
        ({"kind": "timer", "node": "pause", "until": NOW - 5}, "(due now)"),
    ],
)
def test_describe_waiting(waiting: dict[str, Any], expected: str) -> None:
    assert expected in cli.describe_waiting(waiting, NOW)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (12, "12s"),
        (250, "4m 10s"),
        (7500, "2h 5m"),
        (3 * 86_400 + 4 * 3600 + 59, "3d 4h"),
        (365 * 86_400, "365d 0h"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert cli._duration(seconds) == text


def test_a_callback_waiting_record_shows_its_token() -> None:
    from engine.model import LogRecord

    record = LogRecord.model_validate(
        {
            "run_id": RUN,
            "seq": 3,
            "ts": NOW,
            "type": "callback_waiting",
            "step": 1,
            "node": "approval",
            "message": "approval waits for a callback",
            "data": {"token": TOKEN},
        }
    )
    assert f"(token {TOKEN})" in cli.format_record(record).plain
