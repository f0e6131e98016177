"""The client's pure parts: the reorder buffer, the log follower against fakes, endpoints, ``wf`` arguments."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.model import LogRecord
from local import cli, demo
from local.client import (
    ApiError,
    EndpointError,
    Endpoints,
    FollowError,
    LogFollower,
    ReorderBuffer,
    WorkflowClient,
    resolve_endpoints,
)

RUN = "run-1"
Script = Sequence[str | type[Exception]]


def record(seq: int, type_: str = "step_succeeded") -> LogRecord:
    return LogRecord.model_validate(
        {"run_id": RUN, "seq": seq, "ts": 1_700_000_000.0 + seq, "type": type_, "step": seq, "node": "n"}
    )


def log_of(length: int, last: str = "run_succeeded") -> list[LogRecord]:
    """A run's whole log: ``run_started``, steps, and the terminal record ``last`` at ``length - 1``."""
    return [record(0, "run_started"), *(record(i) for i in range(1, length - 1)), record(length - 1, last)]


def seqs(records: Iterable[LogRecord]) -> list[int]:
    return [r.seq for r in records]


def records_frame(*records: LogRecord, run_id: str = RUN) -> str:
    return json.dumps(
        {"type": "records", "run_id": run_id, "records": [r.model_dump(mode="json") for r in records]}
    )


def subscribed(live_from: int = 0, status: str = "RUNNING") -> str:
    return json.dumps(
        {"type": "subscribed", "run_id": RUN, "after": -1, "live_from": live_from, "status": status}
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Drop(Exception):
    """Marks where a scripted connection drops."""


class FakeConnection:
    """Answers ``recv`` from a script; an exhausted script times out (moving the fake clock)."""

    def __init__(self, script: Script, clock: Clock) -> None:
        self.script = list(script)
        self.clock = clock
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    def send(self, message: str) -> None:
        self.sent.append(json.loads(message))

    def recv(self, timeout: float | None = None) -> str:
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, str):
                return item
            raise ConnectionError("connection dropped")
        self.clock.now += timeout or 0.0
        raise TimeoutError

    def close(self) -> None:
        self.closed = True


class FakeServer:
    """One fake WebSocket connection per script, and the run's stored log behind ``GET /runs/{id}/logs``."""

    def __init__(self, stored: list[LogRecord], *scripts: Script) -> None:
        self.stored = stored
        self.clock = Clock()
        self.scripts = list(scripts)
        self.connections: list[FakeConnection] = []
        self.log_requests: list[dict[str, str]] = []

    def connect(self, url: str) -> FakeConnection:
        if not self.scripts:
            raise ConnectionRefusedError(url)
        conn = FakeConnection(self.scripts.pop(0), self.clock)
        self.connections.append(conn)
        return conn

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/runs/{RUN}/logs"
        params = dict(request.url.params)
        self.log_requests.append(params)
        after, limit = int(params.get("after", -1)), int(params.get("limit", 100))
        page = [r for r in self.stored if r.seq > after][:limit]
        body = {
            "run_id": RUN,
            "records": [r.model_dump(mode="json") for r in page],
            "next_after": page[-1].seq if page else after,
        }
        return httpx.Response(200, json=body)

    def client(self, ws: bool = True) -> WorkflowClient:
        return WorkflowClient(
            "http://api.test",
            "ws://ws.test" if ws else None,
            transport=httpx.MockTransport(self.handle),
            connect=self.connect,
        )

    def follow(self, after: int = -1, ws: bool = True, **options: Any) -> LogFollower:
        return LogFollower(self.client(ws), RUN, after, clock=self.clock, sleep=self.clock.sleep, **options)


class TestReorderBuffer:
    def test_in_order_records_pass_straight_through(self) -> None:
        buffer = ReorderBuffer()
        assert seqs(buffer.add([record(0), record(1)], 0)) == [0, 1]
        assert buffer.last == 1
        assert buffer.missing is None

    def test_records_ahead_of_a_gap_wait_for_it(self) -> None:
        buffer = ReorderBuffer()
        assert buffer.add([record(2), record(3)], 0) == []
        assert buffer.missing == (-1, 2)
        assert seqs(buffer.add([record(0)], 0)) == [0]
        assert buffer.missing == (0, 2)
        assert seqs(buffer.add([record(1)], 0)) == [1, 2, 3]
        assert buffer.pending == 0

    def test_duplicates_and_seen_records_are_dropped(self) -> None:
        buffer = ReorderBuffer(after=4)
        assert buffer.add([record(3), record(4)], 0) == []
        assert seqs(buffer.add([record(6), record(6), record(5), record(5)], 0)) == [5, 6]
        assert buffer.add([record(5), record(6)], 0) == []

    def test_gap_deadline_counts_from_the_last_progress(self) -> None:
        buffer = ReorderBuffer()
        assert buffer.gap_deadline(1.0) is None
        buffer.add([record(3)], now=10.0)
        assert buffer.gap_deadline(1.0) == 11.0
        buffer.add([record(5)], now=10.5)
        assert buffer.gap_deadline(1.0) == 11.0
        buffer.add([record(0), record(1), record(2)], now=12.0)
        assert buffer.missing == (3, 5)
        assert buffer.gap_deadline(1.0) == 13.0
        buffer.add([record(4)], now=12.5)
        assert buffer.gap_deadline(1.0) is None


class TestFollow:
    def test_a_live_frame_overtaking_the_backlog_is_put_back_in_order(self) -> None:
        log = log_of(5)
        server = FakeServer(log, [subscribed(3), records_frame(*log[3:]), records_frame(*log[:3])])
        follower = server.follow()
        assert seqs(follower) == [0, 1, 2, 3, 4]
        assert server.connections[0].sent == [{"action": "subscribe", "run_id": RUN, "after": -1}]
        assert server.log_requests == [{"after": "4", "limit": "1"}], "only: does a redrive follow the end?"
        assert server.connections[0].closed

    def test_duplicates_between_backlog_and_live_frames_are_yielded_once(self) -> None:
        log = log_of(4)
        script = [
            subscribed(2),
            records_frame(*log[:3]),
            records_frame(log[2], log[3]),
            records_frame(log[3]),
        ]
        assert seqs(FakeServer(log, script).follow()) == [0, 1, 2, 3]

    def test_records_of_another_run_are_ignored(self) -> None:
        log = log_of(2)
        script = [records_frame(record(0, "run_failed"), run_id="other"), records_frame(*log)]
        assert seqs(FakeServer(log, script).follow()) == [0, 1]

    def test_a_gap_that_stays_open_is_read_over_http(self) -> None:
        log = log_of(6)
        server = FakeServer(log, [subscribed(), records_frame(*log[:2]), records_frame(log[5])])
        follower = server.follow(gap_wait=0.5)
        assert seqs(follower) == [0, 1, 2, 3, 4, 5]
        assert server.log_requests[0]["after"] == "1"
        assert server.clock.now >= 0.5

    def test_a_dropped_connection_resubscribes_after_the_last_yielded_seq(self) -> None:
        log = log_of(5)
        first: Script = [subscribed(), records_frame(*log[:2]), records_frame(log[3]), Drop]
        second = [subscribed(2), records_frame(log[2]), records_frame(log[3], log[4])]
        server = FakeServer(log, first, second)
        follower = server.follow(backoff=0.2)
        assert seqs(follower) == [0, 1, 2, 3, 4]
        assert follower.connections == 2
        assert server.connections[1].sent == [{"action": "subscribe", "run_id": RUN, "after": 1}]
        assert server.clock.sleeps and server.clock.sleeps[0] <= 0.2
        assert server.log_requests == [{"after": "4", "limit": "1"}]

    def test_reconnection_backs_off_and_gives_up_after_max_failures(self) -> None:
        server = FakeServer(log_of(3))
        with pytest.raises(FollowError):
            list(server.follow(backoff=1.0, max_backoff=4.0, max_failures=4))
        assert len(server.clock.sleeps) == 4
        assert server.clock.sleeps[-1] > server.clock.sleeps[0]
        assert max(server.clock.sleeps) <= 4.0

    def test_a_lost_terminal_broadcast_is_read_over_http_when_the_socket_is_quiet(self) -> None:
        log = log_of(3)
        server = FakeServer(log, [subscribed(), records_frame(*log[:2])])
        assert seqs(server.follow(idle_poll=5.0)) == [0, 1, 2]
        assert [r["after"] for r in server.log_requests] == ["1"]

    def test_an_error_frame_raises_api_error(self) -> None:
        error = json.dumps({"type": "error", "code": "run_not_found", "message": "no run 'run-1'"})
        with pytest.raises(ApiError) as raised:
            list(FakeServer([], [error]).follow())
        assert (raised.value.status, raised.value.code) == (404, "run_not_found")

    def test_following_from_past_the_end_of_a_finished_run_stops(self) -> None:
        server = FakeServer(log_of(3), [subscribed(3, status="SUCCEEDED")])
        assert list(server.follow(after=2)) == []

    def test_the_replayed_frame_of_a_finished_run_ends_a_follow_from_past_its_end(self) -> None:
        ack = json.dumps({"type": "subscribed", "run_id": RUN, "after": 2, "status": "SUCCEEDED"})
        done = json.dumps({"type": "replayed", "run_id": RUN, "live_from": 3, "status": "SUCCEEDED"})
        server = FakeServer(log_of(3), [ack, done])
        follower = server.follow(after=2)
        assert list(follower) == []
        assert follower.http_reads == 0

    def test_subscribed_then_backlog_then_replayed_yields_the_backlog_in_order(self) -> None:
        log = log_of(4)
        ack = json.dumps({"type": "subscribed", "run_id": RUN, "after": -1, "status": "RUNNING"})
        done = json.dumps({"type": "replayed", "run_id": RUN, "live_from": 2, "status": "RUNNING"})
        server = FakeServer(log, [ack, records_frame(*log[:2]), done, records_frame(*log[2:])])
        assert seqs(server.follow()) == [0, 1, 2, 3]

    def test_without_a_websocket_url_the_log_is_polled(self) -> None:
        log = log_of(2505, last="run_failed")
        server = FakeServer(log)
        follower = server.follow(ws=False)
        assert seqs(follower) == list(range(2505))
        assert [r["after"] for r in server.log_requests] == ["-1", "999", "1999"]

    def test_following_stops_at_the_terminal_record(self) -> None:
        log = [*log_of(3, last="run_cancelled"), record(3)]
        assert seqs(FakeServer(log).follow(ws=False)) == [0, 1, 2]

    @staticmethod
    def redriven_log() -> list[LogRecord]:
        """Failed at seq 2, redriven at 3, succeeded at 5."""
        return [
            *log_of(3, last="run_failed"),
            record(3, "run_redriven"),
            record(4),
            record(5, "run_succeeded"),
        ]

    def test_a_redriven_runs_log_is_followed_past_its_first_end_over_the_websocket(self) -> None:
        log = self.redriven_log()
        server = FakeServer(log, [subscribed(), records_frame(*log[:3]), records_frame(*log[3:])])
        assert seqs(server.follow()) == [0, 1, 2, 3, 4, 5]
        assert [r["after"] for r in server.log_requests] == ["2", "5"]

    def test_a_redriven_runs_log_is_followed_past_its_first_end_over_http(self) -> None:
        server = FakeServer(self.redriven_log())
        assert seqs(server.follow(ws=False)) == [0, 1, 2, 3, 4, 5]
        assert [r["after"] for r in server.log_requests] == ["-1"], "the page shows what follows each end"

    def test_a_failed_run_not_redriven_is_followed_to_its_failure(self) -> None:
        log = self.redriven_log()[:3]
        server = FakeServer(log, [subscribed(), records_frame(*log)])
        assert seqs(server.follow()) == [0, 1, 2]


class TestHttp:
    @staticmethod
    def client(handler: Callable[[httpx.Request], httpx.Response]) -> WorkflowClient:
        return WorkflowClient("http://api.test/prod", transport=httpx.MockTransport(handler))

    def test_error_answers_raise_api_error_with_code_message_and_details(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            assert request.url.path == "/prod/graphs"
            assert request.url.params["graph_id"] == "g"
            details = {"problems": [{"code": "unknown_tool"}]}
            return httpx.Response(
                400, json={"code": "invalid_graph", "message": "1 problem", "details": details}
            )

        with pytest.raises(ApiError) as raised:
            self.client(handler).create_graph({"nodes": {}}, graph_id="g")
        error = raised.value
        assert (error.status, error.code, error.message) == (400, "invalid_graph", "1 problem")
        assert error.details == {"problems": [{"code": "unknown_tool"}]}

    def test_an_error_without_a_json_body_keeps_its_status(self) -> None:
        client = self.client(lambda request: httpx.Response(502, text="Bad Gateway"))
        with pytest.raises(ApiError) as raised:
            client.list_tools()
        assert (raised.value.status, raised.value.code, raised.value.message) == (
            502,
            "http_502",
            "Bad Gateway",
        )

    def test_ids_are_quoted_in_paths(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            assert request.url.raw_path == b"/prod/runs/a%2Fb?include_state=false"
            return httpx.Response(200, json={"run_id": "a/b"})

        assert self.client(handler).get_run("a/b", include_state=False) == {"run_id": "a/b"}

    def test_start_run_sends_only_what_is_given(self) -> None:
        bodies: list[Any] = []

        def handler(request: httpx.Request) -> httpx.Response:
            bodies.append(json.loads(request.content))
            return httpx.Response(202, json={"run_id": "r", "status": "PENDING"})

        client = self.client(handler)
        client.start_run("g", {"x": 1})
        client.start_run("g", wait=True, idempotency_key="k")
        assert bodies == [
            {"graph_id": "g", "initial_state": {"x": 1}},
            {"graph_id": "g", "initial_state": {}, "wait": True, "idempotency_key": "k"},
        ]


class TestEndpoints:
    @staticmethod
    def write_stack(directory: Path, pid: int = 4242) -> None:
        (directory / ".local-stack").mkdir(parents=True)
        info = {"http_url": "http://127.0.0.1:1111", "ws_url": "ws://127.0.0.1:2222", "pid": pid}
        (directory / ".local-stack" / "stack.json").write_text(json.dumps(info))

    @staticmethod
    def cfn(found: Endpoints | None = None) -> Callable[[str, str | None], Endpoints | None]:
        def lookup(name: str, region: str | None) -> Endpoints | None:
            lookup.calls.append((name, region))  # type: ignore[attr-defined]
            return found

        lookup.calls = []  # type: ignore[attr-defined]
        return lookup

    DEPLOYED = Endpoints("https://api.example", "wss://ws.example/prod", "CloudFormation stack graphflow")

    def test_an_explicit_endpoint_wins_and_brings_no_websocket_of_another_source(
        self, tmp_path: Path
    ) -> None:
        self.write_stack(tmp_path)
        env = {"WF_ENDPOINT": "http://env"}
        found = resolve_endpoints("http://arg", env=env, cwd=tmp_path, alive=lambda pid: True)
        assert found == Endpoints("http://arg", None, "--endpoint")
        found = resolve_endpoints("http://arg", "ws://arg", env=env, cwd=tmp_path)
        assert found == Endpoints("http://arg", "ws://arg", "--endpoint")

    def test_the_environment_comes_next(self, tmp_path: Path) -> None:
        self.write_stack(tmp_path)
        env = {"WF_ENDPOINT": "http://env", "WF_WS_ENDPOINT": "ws://env"}
        found = resolve_endpoints(env=env, cwd=tmp_path, alive=lambda pid: True)
        assert found == Endpoints("http://env", "ws://env", "WF_ENDPOINT")

    def test_a_live_local_stack_is_found_from_a_subdirectory(self, tmp_path: Path) -> None:
        self.write_stack(tmp_path)
        nested = tmp_path / "a" / "b"
        nested.mkdir(parents=True)
        cfn = self.cfn(self.DEPLOYED)
        found = resolve_endpoints(env={}, cwd=nested, alive=lambda pid: pid == 4242, cloudformation=cfn)
        assert (found.http_url, found.ws_url) == ("http://127.0.0.1:1111", "ws://127.0.0.1:2222")
        assert "stack.json" in found.source
        assert cfn.calls == []  # type: ignore[attr-defined]

    def test_a_local_stacks_signing_key_comes_with_its_endpoints(self, tmp_path: Path) -> None:
        key = {
            "access_key": "AKIALOCAL1",
            "secret_key": "s",
            "arn": "arn:aws:iam::123456789012:user/developer",
        }
        (tmp_path / ".local-stack").mkdir()
        info = {
            "http_url": "http://127.0.0.1:1111",
            "ws_url": "ws://127.0.0.1:2222",
            "pid": 1,
            "credential": key,
        }
        (tmp_path / ".local-stack" / "stack.json").write_text(json.dumps(info))
        found = resolve_endpoints(env={"WF_WS_ENDPOINT": "ws://other"}, cwd=tmp_path, alive=lambda pid: True)
        assert found.credential == key

    def test_a_websocket_override_applies_to_the_found_stack(self, tmp_path: Path) -> None:
        self.write_stack(tmp_path)
        found = resolve_endpoints(env={"WF_WS_ENDPOINT": "ws://other"}, cwd=tmp_path, alive=lambda pid: True)
        assert (found.http_url, found.ws_url) == ("http://127.0.0.1:1111", "ws://other")

    def test_a_dead_local_stack_falls_through_to_cloudformation(self, tmp_path: Path) -> None:
        self.write_stack(tmp_path)
        cfn = self.cfn(self.DEPLOYED)
        env = {"WF_STACK_NAME": "mine", "AWS_REGION": "eu-west-1"}
        found = resolve_endpoints(env=env, cwd=tmp_path, alive=lambda pid: False, cloudformation=cfn)
        assert found == self.DEPLOYED
        assert cfn.calls == [("mine", "eu-west-1")]  # type: ignore[attr-defined]
        resolve_endpoints(stack_name="flag", region="us-west-2", env=env, cwd=tmp_path, cloudformation=cfn)
        assert cfn.calls[-1] == ("flag", "us-west-2")  # type: ignore[attr-defined]

    def test_the_default_stack_name_is_graphflow(self, tmp_path: Path) -> None:
        cfn = self.cfn(self.DEPLOYED)
        resolve_endpoints(env={}, cwd=tmp_path, cloudformation=cfn)
        assert cfn.calls == [("graphflow", None)]  # type: ignore[attr-defined]

    def test_a_stack_file_of_this_process_counts_as_live(self, tmp_path: Path) -> None:
        self.write_stack(tmp_path, pid=os.getpid())
        assert (
            resolve_endpoints(env={}, cwd=tmp_path, cloudformation=self.cfn()).http_url
            == "http://127.0.0.1:1111"
        )

    def test_no_source_at_all_is_an_error_that_says_what_to_do(self, tmp_path: Path) -> None:
        (tmp_path / ".local-stack").mkdir()
        (tmp_path / ".local-stack" / "stack.json").write_text("not json")
        with pytest.raises(EndpointError, match="make dev"):
            resolve_endpoints(env={}, cwd=tmp_path, cloudformation=self.cfn())


class TestCliArguments:
    def test_common_options_go_before_or_after_the_command(self) -> None:
        parser = cli.build_parser()
        before = parser.parse_args(["--endpoint", "http://x", "--json", "status", "r1"])
        after = parser.parse_args(["status", "r1", "--endpoint", "http://x", "--json"])
        for args in (before, after):
            assert (args.command, args.run_id, args.endpoint, args.json) == ("status", "r1", "http://x", True)
        plain = parser.parse_args(["tools"])
        assert (plain.endpoint, plain.ws_endpoint, plain.json, plain.stack_name) == (None, None, False, None)

    def test_graph_commands(self) -> None:
        parser = cli.build_parser()
        create = parser.parse_args(["graphs", "create", "g.json", "--id", "dq"])
        assert (create.graph_command, create.file, create.graph_id) == ("create", "g.json", "dq")
        assert parser.parse_args(["graphs", "list"]).graph_command == "list"
        show = parser.parse_args(["graphs", "show", "dq", "--version", "2"])
        assert (show.graph_id, show.version) == ("dq", 2)

    def test_run_and_logs_options(self) -> None:
        parser = cli.build_parser()
        run = parser.parse_args(["run", "g", "--state", '{"a": 1}', "--wait", "--follow"])
        assert (run.graph_id, run.state, run.wait, run.follow) == ("g", '{"a": 1}', True, True)
        assert parser.parse_args(["run", "g"]).state == "{}"
        logs = parser.parse_args(["logs", "r", "-f", "--after", "7"])
        assert (logs.follow, logs.after) == (True, 7)
        assert parser.parse_args(["logs", "r"]).after == -1

    @pytest.mark.parametrize(
        "argv", [[], ["graphs"], ["logs", "r", "--after", "x"], ["run"], ["nope"], ["cancel"]]
    )
    def test_bad_usage_exits_2(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as raised:
            cli.build_parser().parse_args(argv)
        assert raised.value.code == 2
        assert "usage: wf" in capsys.readouterr().err

    def test_json_arguments_inline_from_a_file_or_stdin(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        path.write_text('{"records": 5}')
        assert cli.load_json_argument('{"records": 5}') == {"records": 5}
        assert cli.load_json_argument(str(path)) == {"records": 5}
        assert cli.load_json_argument(f"@{path}") == {"records": 5}
        assert cli.load_json_argument("-", stdin=lambda: "[1]") == [1]
        with pytest.raises(cli.UsageError, match="neither JSON nor a readable file"):
            cli.load_json_argument(str(tmp_path / "missing.json"))
        with pytest.raises(cli.UsageError, match="invalid JSON"):
            cli.load_json_argument("{nope")

    def test_a_connection_error_says_how_to_start_the_stack(self, capsys: pytest.CaptureFixture[str]) -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        assert cli.main(["--endpoint", f"http://127.0.0.1:{port}", "tools"]) == cli.EXIT_ERROR
        err = capsys.readouterr().err
        assert err.startswith("error unreachable: cannot reach")
        assert "make dev" in err
        assert "usage" not in err

    def test_an_unusable_argument_is_not_called_a_usage_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        missing = tmp_path / "missing.json"
        assert (
            cli.main(["--endpoint", "http://127.0.0.1:9", "graphs", "create", str(missing)]) == cli.EXIT_USAGE
        )
        err = capsys.readouterr().err
        assert err.startswith("error invalid_argument: ")
        assert "neither JSON nor a readable file" in err
        assert "usage" not in err

    def test_state_values_by_dotted_path(self) -> None:
        state = {"report": {"quality": {"history": [{"score": 0.5}, {"score": 0.9}]}}}
        assert cli.state_value(state, "report.quality.history.-1.score") == 0.9
        with pytest.raises(KeyError, match="missing"):
            cli.state_value(state, "report.missing")


class TestCliMain:
    @pytest.fixture
    def api(self, monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
        """``wf`` against a fake API: ``/tools`` answers, every other path is a 404 ``run_not_found``."""
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            if request.url.path == "/tools":
                return httpx.Response(
                    200, json={"tools": [{"name": "dq.profile", "description": "P", "async": False}]}
                )
            return httpx.Response(404, json={"code": "run_not_found", "message": "no run 'r9'"})

        def make(http_url: str, ws_url: str | None = None, auth: Any = None) -> WorkflowClient:
            return WorkflowClient(http_url, ws_url, transport=httpx.MockTransport(handler))

        monkeypatch.setattr(cli, "WorkflowClient", make)
        return seen

    def test_json_output(self, api: list[httpx.Request], capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.main(["--endpoint", "http://api.test", "tools", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == [
            {"name": "dq.profile", "description": "P", "async": False}
        ]

    def test_api_errors_exit_1_with_code_and_message_on_stderr(
        self, api: list[httpx.Request], capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert cli.main(["--endpoint", "http://api.test", "status", "r9"]) == 1
        captured = capsys.readouterr()
        assert "run_not_found" in captured.err
        assert "no run 'r9'" in captured.err
        assert captured.out == ""

    def test_unusable_state_exits_2(
        self, api: list[httpx.Request], capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        assert cli.main(["--endpoint", "http://api.test", "run", "g", "--state", "[1]"]) == 2
        assert "JSON object" in capsys.readouterr().err
        assert api == []


class TestDemoTracker:
    def test_progress_follows_nodes_iterations_steps_and_the_end(self) -> None:
        tracker = demo.Tracker(demo.Scenario("300 records", 300))
        script = [
            ("run_started", "initialize", None),
            ("step_started", "initialize", 1),
            ("step_succeeded", "initialize", 1),
            ("step_started", "profile", 1),
            ("step_failed", "profile", 1),
            ("retry_scheduled", "profile", 2),
            ("step_started", "profile", 2),
            ("step_succeeded", "profile", 2),
            ("step_started", "profile", 1),
            ("step_succeeded", "profile", 1),
            ("run_succeeded", "report", None),
        ]
        lines = []
        for seq, (type_, node, attempt) in enumerate(script):
            data = {
                "run_id": RUN,
                "seq": seq,
                "ts": 0.0,
                "type": type_,
                "step": 0,
                "node": node,
                "attempt": attempt,
            }
            lines.append(tracker.observe(LogRecord.model_validate(data)))
        assert (tracker.iteration, tracker.steps, tracker.node, tracker.status) == (
            2,
            3,
            "report",
            "SUCCEEDED",
        )
        assert tracker.done
        assert [line for line in lines if line and "iteration" in line] == [
            "iteration 1 starts",
            "iteration 2 starts",
        ]

    @pytest.mark.parametrize("records", ["", "0,5", "a,b"])
    def test_bad_record_counts_exit_2(self, records: str, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as raised:
            demo.main(["--records", records])
        assert raised.value.code == 2
        assert "--records" in capsys.readouterr().err
