"""``wf``: the graphflow command line, for the local stack and a deployed one alike.

Endpoints come from ``--endpoint``/``--ws-endpoint``, else ``WF_ENDPOINT``/``WF_WS_ENDPOINT``,
else a live local stack's ``.local-stack/stack.json``, else the outputs of the
CloudFormation stack ``graphflow`` (``--stack-name``/``WF_STACK_NAME``).

Authentication (:mod:`local.signing`): with ``--token``/``WF_TOKEN``, the JWT as
``Authorization: Bearer``; else requests are SigV4-signed with the local stack's
key (its ``stack.json``) or with botocore's usual credentials (environment,
``~/.aws``, SSO...), and the WebSocket URL is presigned.

Output is for people by default; ``--json`` prints JSON documents (log records
as JSON lines). Exit codes: 0 done, 1 an API or connection error (its code and
message on stderr), 2 bad usage, 3 a run that ``--wait``/``--follow`` watched
ended other than SUCCEEDED.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from engine.model import LogRecord
from local.client import (
    TERMINAL_STATUSES,
    ApiError,
    ClientError,
    Endpoints,
    UnreachableError,
    WorkflowClient,
    resolve_endpoints,
)
from local.signing import client_auth

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_RUN_NOT_SUCCEEDED = 3

_TYPE_STYLES = {
    "run_started": "bold cyan",
    "step_started": "dim",
    "step_succeeded": "green",
    "step_failed": "red",
    "retry_scheduled": "yellow",
    "edge_taken": "blue",
    "run_succeeded": "bold green",
    "run_failed": "bold red",
    "run_cancelled": "bold yellow",
    "run_timed_out": "bold red",
    "wait_started": "yellow",
    "callback_waiting": "bold yellow",
    "callback_received": "green",
    "run_redriven": "bold cyan",
}
_STATUS_STYLES = {
    "SUCCEEDED": "bold green",
    "FAILED": "bold red",
    "CANCELLED": "bold yellow",
    "TIMED_OUT": "bold red",
    "RUNNING": "cyan",
    "PENDING": "dim",
}


class UsageError(Exception):
    """A command-line value that cannot be used (not an API error): printed with its ``code``, exit 2."""

    code = "invalid_argument"


class StateValueMissing(ClientError):
    """The run has no state value at the ``--key`` path."""

    code = "state_key_not_found"


START_THE_STACK = (
    "is the API up? For the local stack, start it with `make dev` (in another terminal); "
    "for another one, pass --endpoint URL"
)


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """Options every command takes, before or after the command name.

    Subcommands register them with ``SUPPRESS`` defaults so a value given before
    the command name is not overwritten by the subcommand's default.
    """

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("endpoint and output")
    group.add_argument("--endpoint", metavar="URL", default=default(None), help="HTTP API base URL")
    group.add_argument("--ws-endpoint", metavar="URL", default=default(None), help="WebSocket API URL")
    group.add_argument(
        "--stack-name", metavar="NAME", default=default(None), help="CloudFormation stack (default graphflow)"
    )
    group.add_argument("--region", default=default(None), help="AWS region of the deployed stack")
    group.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")
    group.add_argument(
        "--token", metavar="JWT", default=default(None), help="a JWT for an AuthMode jwt API (or WF_TOKEN)"
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(suppress=True)
    parser = argparse.ArgumentParser(
        prog="wf",
        description="Manage graphflow graphs and runs on the local stack or a deployed one.",
        parents=[_common_options(suppress=False)],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    graphs = commands.add_parser("graphs", help="register, list and show graphs", parents=[common])
    graph_commands = graphs.add_subparsers(dest="graph_command", required=True, metavar="ACTION")
    create = graph_commands.add_parser("create", help="register a graph from a JSON file", parents=[common])
    create.add_argument("file", metavar="FILE", help="graph definition (JSON); - reads stdin")
    create.add_argument("--id", dest="graph_id", help="choose the graph id (409 if taken)")
    graph_commands.add_parser("list", help="list graphs", parents=[common])
    show = graph_commands.add_parser("show", help="show a graph's definition", parents=[common])
    show.add_argument("graph_id", metavar="ID")
    show.add_argument("--version", type=int, metavar="N", help="a version (default: the latest)")

    diagram = commands.add_parser("diagram", help="print a graph as a Mermaid flowchart", parents=[common])
    diagram.add_argument("graph_id", metavar="ID")

    run = commands.add_parser("run", help="start a run", parents=[common])
    run.add_argument("graph_id", metavar="GRAPH_ID")
    run.add_argument(
        "--state",
        default="{}",
        metavar="JSON_OR_FILE",
        help="initial state: JSON text, a file, or - for stdin",
    )
    run.add_argument("--wait", action="store_true", help="wait for the run to end and show it")
    run.add_argument("--follow", action="store_true", help="stream the run's log until it ends")
    run.add_argument("--idempotency-key", metavar="KEY", help="a repeated key returns the first run")
    run.add_argument("--timeout", type=float, metavar="SECONDS", help="give up waiting after this long")

    status = commands.add_parser(
        "status", help="show a run: status, position, error, state", parents=[common]
    )
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument(
        "--key", metavar="PATH", help="print only this state value (dotted path, e.g. report)"
    )
    status.add_argument("--no-state", action="store_true", help="leave the state out")

    logs = commands.add_parser("logs", help="print a run's log", parents=[common])
    logs.add_argument("run_id", metavar="RUN_ID")
    logs.add_argument("--follow", "-f", action="store_true", help="stream new records until the run ends")
    logs.add_argument("--after", type=int, default=-1, metavar="N", help="only records with seq > N")
    logs.add_argument("--timeout", type=float, metavar="SECONDS", help="stop following after this long")

    cancel = commands.add_parser("cancel", help="cancel a run", parents=[common])
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument("--reason", help="why (kept in the run's error)")

    redrive = commands.add_parser(
        "redrive", help="resume a FAILED or TIMED_OUT run from the node that failed", parents=[common]
    )
    redrive.add_argument("run_id", metavar="RUN_ID")

    approve = commands.add_parser(
        "approve",
        help="approve the callback a run waits for (the token is in its callback_waiting log record)",
        parents=[common],
    )
    approve.add_argument("callback_token", metavar="TOKEN")
    approve.add_argument(
        "--data",
        metavar="JSON_OR_FILE",
        help="merged into the run's state: a JSON object as text, a file, or - for stdin",
    )
    approve.add_argument(
        "--decision", metavar="JSON", help="kept at state key decision: a JSON value, or else taken as text"
    )

    reject = commands.add_parser(
        "reject", help="reject the callback a run waits for: its node fails", parents=[common]
    )
    reject.add_argument("callback_token", metavar="TOKEN")
    reject.add_argument("--reason", required=True, metavar="TEXT", help="why (the node's error message)")

    commands.add_parser("tools", help="list the registered tools", parents=[common])
    commands.add_parser("endpoints", help="show which endpoints wf would use, and why", parents=[common])
    return parser


def load_json_argument(value: str, *, stdin: Callable[[], str] | None = None) -> Any:
    """JSON given inline (starting with ``{`` or ``[``), as ``-`` (stdin), or as a file path (``@`` optional)."""
    text = value.strip()
    if text == "-":
        source, text = "stdin", (stdin or sys.stdin.read)()
    elif text.startswith(("{", "[")):
        source = "the argument"
    else:
        path = Path(text.removeprefix("@")).expanduser()
        if not path.is_file():
            raise UsageError(f"{value!r} is neither JSON nor a readable file")
        source, text = str(path), path.read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"invalid JSON in {source}: {exc}") from exc


class Output:
    """Where results go: rich rendering for people, JSON for machines; errors to stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, default=str) + "\n")
        sys.stdout.flush()

    def print(self, *items: Any) -> None:
        self.out.print(*items)

    def note(self, message: str) -> None:
        self.err.print(Text(message, style="dim"))

    def error(self, code: str, message: str) -> None:
        self.err.print(Text.assemble(("error", "bold red"), f" {code}: {message}"))

    def record(self, record: LogRecord) -> None:
        if self.as_json:
            self.json(record.model_dump(mode="json", exclude_none=True))
        else:
            self.print(format_record(record))


def format_record(record: LogRecord) -> Text:
    """One log line: seq, time, type, node, duration, message."""
    clock = time.strftime("%H:%M:%S", time.localtime(record.ts)) + f".{int(record.ts % 1 * 1000):03d}"
    duration = f"{record.duration_ms:.1f} ms" if record.duration_ms is not None else ""
    token = record.data.get("token") if record.type.value == "callback_waiting" and record.data else None
    return Text.assemble(
        (f"{record.seq:>5} ", "dim"),
        f"{clock} ",
        (f"{record.type.value:<16}", _TYPE_STYLES.get(record.type.value, "")),
        f" {record.node or '-':<18}",
        (f"{duration:>10}  ", "dim"),
        record.message,
        (f" (token {token})" if token else "", "bold"),
    )


def _when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _short(value: Any, width: int = 100) -> str:
    text = json.dumps(value, default=str, separators=(",", ":"))
    if isinstance(value, list | dict) and len(text) > width:
        kind = f"{len(value)} items" if isinstance(value, list) else f"{len(value)} keys"
        return f"{text[: width - len(kind) - 5]}... ({kind})"
    return text if len(text) <= width else text[: width - 3] + "..."


def state_value(state: Any, path: str) -> Any:
    """The value at a dotted path (list items by index); ``KeyError`` naming the missing part."""
    value = state
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(part)
    return value


def _duration(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``, ``12s``: the two largest units."""
    total = max(0, round(seconds))
    parts = [
        (total // 86400, "d"),
        (total % 86400 // 3600, "h"),
        (total % 3600 // 60, "m"),
        (total % 60, "s"),
    ]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{value}{unit}" for value, unit in parts[:2])


def describe_waiting(waiting: dict[str, Any], now: float) -> str:
    """What a run waits for and until when: ``a callback at approval; it times out 2026-12-02 10:00:00 (in 23h 59m)``."""
    what = "a callback" if waiting.get("kind") == "callback" else "a timer"
    until = waiting.get("until")
    left = ""
    if isinstance(until, int | float):
        left = f" (in {_duration(until - now)})" if until > now else " (due now)"
    timeout = " times out" if waiting.get("kind") == "callback" else " ends"
    return f"{what} at {waiting.get('node')}; it{timeout} {_when(until)}{left}"


def callback_token(client: WorkflowClient, run_id: str) -> str | None:
    """The token of the run's last ``callback_waiting`` record (read from its log), if it has one."""
    token = None
    for record in client.all_logs(run_id):
        if record.type.value == "callback_waiting" and isinstance(record.data, dict):
            token = record.data.get("token")
    return str(token) if token else None


def show_run(output: Output, run: dict[str, Any], client: WorkflowClient) -> None:
    status = str(run.get("status", "?"))
    token = None
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("run", str(run.get("run_id")))
    table.add_row("graph", f"{run.get('graph_id')} v{run.get('graph_version', '?')}")
    table.add_row("status", Text(status, style=_STATUS_STYLES.get(status, "")))
    if run.get("current_node"):
        table.add_row("node", str(run["current_node"]))
    if "step" in run:
        table.add_row("steps", str(run["step"]))
    fanout = run.get("fanout")
    if fanout:
        running = ", ".join(f"{b['branch']} at {b['node']}" for b in fanout.get("running", []))
        table.add_row(
            "branches",
            f"{fanout['kind']} from {fanout['node']}: {fanout['arrived']} of {fanout['size']} arrived at "
            f"{fanout['join']}" + (f"; running {running}" if running else ""),
        )
    waiting = run.get("waiting")
    if waiting:
        table.add_row("waiting", Text(describe_waiting(waiting, time.time()), style="yellow"))
        if waiting.get("kind") == "callback":
            token = callback_token(client, str(run.get("run_id")))
    table.add_row("created", _when(run.get("created_at")))
    if run.get("redriven_at"):
        table.add_row("redriven", _when(run["redriven_at"]))
    if run.get("finished_at"):
        elapsed = float(run["finished_at"]) - float(run.get("created_at", run["finished_at"]))
        table.add_row("finished", f"{_when(run['finished_at'])} ({elapsed:.2f} s)")
    error = run.get("error")
    if error:
        where = f" at {error['node']}" if error.get("node") else ""
        table.add_row("error", Text(f"{error.get('type')}{where}: {error.get('message')}", style="red"))
    table.add_row("url", client.run_url(str(run.get("run_id"))))
    output.print(table)
    if token:
        output.print(Text.assemble(("token", "bold"), f"    {token}"))
        output.print(
            Text(
                f"approve with `wf approve {token}`, reject with `wf reject {token} --reason TEXT`",
                style="dim",
            )
        )
    state = run.get("state")
    if state:
        keys = Table(title="state", title_justify="left", show_header=True, header_style="bold")
        keys.add_column("key", no_wrap=True)
        keys.add_column("value", overflow="fold")
        for key, value in state.items():
            keys.add_row(key, _short(value))
        output.print(keys)


def _graph_table(graphs: list[dict[str, Any]]) -> Table:
    table = Table(header_style="bold")
    table.add_column("graph id", no_wrap=True)
    table.add_column("v", justify="right", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("created", no_wrap=True)
    for graph in graphs:
        table.add_row(
            str(graph.get("graph_id")),
            str(graph.get("version")),
            _clip(str(graph.get("name") or ""), 24),
            _when(graph.get("created_at")),
        )
    return table


def _follow(output: Output, client: WorkflowClient, run_id: str, after: int, timeout: float | None) -> None:
    for record in client.follow(run_id, after, timeout=timeout, notify=output.note):
        output.record(record)


def _finish(output: Output, client: WorkflowClient, run: dict[str, Any]) -> int:
    """Show a run that was waited for; the exit code says whether it succeeded."""
    if output.as_json:
        output.json(run)
    else:
        show_run(output, run, client)
    return EXIT_OK if run.get("status") == "SUCCEEDED" else EXIT_RUN_NOT_SUCCEEDED


def cmd_graphs(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    if args.graph_command == "create":
        definition = load_json_argument(args.file)
        if not isinstance(definition, dict):
            raise UsageError(f"{args.file}: a graph definition is a JSON object")
        created = client.create_graph(definition, graph_id=args.graph_id)
        if output.as_json:
            output.json(created)
        else:
            output.print(
                Text.assemble("created graph ", (str(created["graph_id"]), "bold"), f" v{created['version']}")
            )
        return EXIT_OK
    if args.graph_command == "list":
        graphs = client.list_graphs()
        if output.as_json:
            output.json(graphs)
        elif graphs:
            output.print(_graph_table(graphs))
        else:
            output.print("no graphs yet: wf graphs create FILE")
        return EXIT_OK
    graph = client.get_graph(args.graph_id, args.version)
    if output.as_json:
        output.json(graph)
    else:
        output.print(_graph_table([graph]))
        if graph.get("description"):
            output.print(str(graph["description"]))
        output.print(JSON.from_data(graph.get("definition", {}), default=str))
    return EXIT_OK


def cmd_diagram(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    diagram = client.diagram(args.graph_id)
    if output.as_json:
        output.json(diagram)
    else:
        sys.stdout.write(str(diagram["mermaid"]).rstrip("\n") + "\n")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    state = load_json_argument(args.state)
    if not isinstance(state, dict):
        raise UsageError("--state: the initial state is a JSON object")
    inline = args.wait and not args.follow
    started = client.start_run(args.graph_id, state, wait=inline, idempotency_key=args.idempotency_key)
    run_id = str(started["run_id"])
    if not (args.wait or args.follow):
        if output.as_json:
            output.json(started)
        else:
            output.print(
                Text.assemble(
                    "started run ",
                    (run_id, "bold"),
                    f" of {started.get('graph_id')} v{started.get('graph_version', '?')} ({started.get('status')})",
                )
            )
            output.print(Text(f"follow it with: wf logs {run_id} --follow", style="dim"))
        return EXIT_OK
    if args.follow:
        if not output.as_json:
            output.note(f"run {run_id} started; following its log")
        _follow(output, client, run_id, -1, args.timeout)
        return _finish(output, client, client.get_run(run_id))
    if started.get("status") not in TERMINAL_STATUSES:
        return _finish(output, client, client.wait(run_id, timeout=args.timeout))
    return _finish(output, client, started)


def cmd_status(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    run = client.get_run(args.run_id, include_state=not args.no_state or bool(args.key))
    if args.key:
        try:
            value = state_value(run.get("state") or {}, args.key)
        except KeyError as exc:
            raise StateValueMissing(
                f"run {args.run_id} has no state value {args.key!r} (missing {exc.args[0]!r})"
            ) from None
        if output.as_json:
            output.json(value)
        else:
            output.print(JSON.from_data(value, default=str))
        return EXIT_OK
    if output.as_json:
        output.json(run)
    else:
        show_run(output, run, client)
    return EXIT_OK


def cmd_logs(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    if args.follow:
        _follow(output, client, args.run_id, args.after, args.timeout)
        return EXIT_OK
    count = 0
    for record in client.all_logs(args.run_id, args.after):
        output.record(record)
        count += 1
    if not count and not output.as_json:
        output.note(f"no records after seq {args.after}")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    run = client.cancel_run(args.run_id, args.reason)
    if output.as_json:
        output.json(run)
    else:
        output.print(
            Text.assemble("run ", (args.run_id, "bold"), " is ", (str(run.get("status")), "bold yellow"))
        )
    return EXIT_OK


def _moved(output: Output, what: str, run: dict[str, Any]) -> None:
    """``what`` happened to ``run``: where it is now."""
    status = str(run.get("status"))
    line = Text.assemble(
        f"{what}: run ",
        (str(run.get("run_id")), "bold"),
        " is ",
        (status, _STATUS_STYLES.get(status, "bold")),
    )
    if run.get("current_node") and status not in TERMINAL_STATUSES:
        line.append(f" at {run['current_node']}")
    error = run.get("error")
    if error and status in TERMINAL_STATUSES:
        line.append(f" ({error.get('type')}: {error.get('message')})", style="red")
    output.print(line)


def cmd_redrive(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    run = client.redrive_run(args.run_id)
    if output.as_json:
        output.json(run)
        return EXIT_OK
    _moved(output, "redriven", run)
    redriven = [r.seq for r in client.all_logs(args.run_id) if r.type.value == "run_redriven"]
    after = f" --after {redriven[-1] - 1}" if redriven else ""
    output.print(Text(f"follow it with: wf logs {args.run_id} --follow{after}", style="dim"))
    return EXIT_OK


def parse_decision(value: str) -> Any:
    """``--decision``: a JSON value, or the text itself if it is not JSON (``--decision ship``)."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def cmd_approve(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    data = load_json_argument(args.data) if args.data is not None else None
    if data is not None and not isinstance(data, dict):
        raise UsageError("--data: the callback's data is a JSON object")
    decision = parse_decision(args.decision) if args.decision is not None else None
    run = client.approve_callback(args.callback_token, data=data, decision=decision)
    if output.as_json:
        output.json(run)
    else:
        _moved(output, "approved", run)
    return EXIT_OK


def cmd_reject(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    run = client.reject_callback(args.callback_token, args.reason)
    if output.as_json:
        output.json(run)
    else:
        _moved(output, "rejected", run)
    return EXIT_OK


def cmd_tools(args: argparse.Namespace, client: WorkflowClient, output: Output) -> int:
    tools = client.list_tools()
    if output.as_json:
        output.json(tools)
        return EXIT_OK
    table = Table(header_style="bold")
    table.add_column("tool", no_wrap=True)
    table.add_column("async")
    table.add_column("description", overflow="fold")
    for item in tools:
        table.add_row(
            str(item.get("name")), "yes" if item.get("async") else "", str(item.get("description", ""))
        )
    output.print(table)
    return EXIT_OK


def cmd_endpoints(endpoints: Endpoints, output: Output) -> int:
    if output.as_json:
        output.json({"http_url": endpoints.http_url, "ws_url": endpoints.ws_url, "source": endpoints.source})
    else:
        output.print(f"http       {endpoints.http_url}")
        output.print(f"websocket  {endpoints.ws_url or '- (logs are polled over HTTP)'}")
        output.print(f"from       {endpoints.source}")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, WorkflowClient, Output], int]] = {
    "graphs": cmd_graphs,
    "diagram": cmd_diagram,
    "run": cmd_run,
    "status": cmd_status,
    "logs": cmd_logs,
    "cancel": cmd_cancel,
    "redrive": cmd_redrive,
    "approve": cmd_approve,
    "reject": cmd_reject,
    "tools": cmd_tools,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wf`` with ``argv`` (default: the process arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    output = Output(args.json)
    try:
        endpoints = resolve_endpoints(
            args.endpoint, args.ws_endpoint, stack_name=args.stack_name, region=args.region
        )
        if args.command == "endpoints":
            return cmd_endpoints(endpoints, output)
        auth = client_auth(
            endpoints.http_url,
            token=args.token or os.environ.get("WF_TOKEN"),
            local_credential=endpoints.credential,
            region=args.region,
        )
        with WorkflowClient(endpoints.http_url, endpoints.ws_url, auth=auth) as client:
            return COMMANDS[args.command](args, client, output)
    except ApiError as exc:
        output.error(exc.code, exc.message)
        if exc.details:
            output.err.print(Text(json.dumps(exc.details, indent=2, default=str), style="dim"))
        return EXIT_ERROR
    except UnreachableError as exc:
        output.error(exc.code, str(exc))
        output.note(START_THE_STACK)
        return EXIT_ERROR
    except ClientError as exc:
        output.error(exc.code, str(exc))
        return EXIT_ERROR
    except UsageError as exc:
        output.error(exc.code, str(exc))
        return EXIT_USAGE
    except TimeoutError as exc:
        output.error("timeout", str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        output.note("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
