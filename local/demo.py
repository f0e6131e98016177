"""``make demo``: the Data Quality Pipeline end to end on the local stack, three scenarios at once.

Uses the local stack that ``.local-stack/stack.json`` points to if its process
lives (``make dev``), else starts one in this process and stops it at the end
(``--endpoint``/``--ws-endpoint`` aim it at any stack, a deployed one too).
It registers the data-quality graph over HTTP, starts one run per scenario,
follows the three logs over the WebSocket concurrently with a progress bar per
run, printing each iteration's quality score and anomaly count as the run's
``evaluate`` step is logged (read from the run's ``history``), then prints a
table per scenario and the stack's throughput. ``--verbose`` also prints what
the log follower does behind the scenes (reconnections, gaps read over HTTP).

Then it runs the largest scenario alone twice: with the sequential graph and with
its parallel variant (``engine/graphs/data_quality_parallel.json``, the dataset
split into ``--chunks`` chunks, each profiled, checked and repaired in its own
branch), and prints both durations and whether their reports are equal.

Exit code 0 only when every run SUCCEEDED (and the variants' reports are equal). Without a terminal (CI) the progress
bars become plain lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from engine.model import LogRecord
from local.client import ClientError, Endpoints, WorkflowClient, is_terminal, local_stack_endpoints
from local.signing import client_auth

GRAPH_NAME = "data_quality"
DEFAULT_RECORDS = (300, 600, 1000)
DEFAULT_SEED = 42
DEFAULT_MAX_ITERATIONS = 5
DEFAULT_TIMEOUT = 300.0
REPORTS = Path(__file__).resolve().parent.parent / ".local-stack" / "reports"
"""Where each scenario's full report is written, to read after the stack has stopped."""
LOOP_NODE = "profile"
SCORE_NODE = "evaluate"
STEPS_PER_ITERATION = 5


@dataclass(frozen=True)
class Scenario:
    """One run of the pipeline: how many records to generate, from which seed."""

    name: str
    records: int
    seed: int = DEFAULT_SEED

    def initial_state(self) -> dict[str, Any]:
        return {"records": self.records, "seed": self.seed}


def scenarios_for(records: Sequence[int], seed: int = DEFAULT_SEED) -> list[Scenario]:
    return [Scenario(f"{count} records", count, seed) for count in records]


@dataclass
class Tracker:
    """What a follower has seen of one run, read by the progress display."""

    scenario: Scenario
    run_id: str = ""
    node: str = "queued"
    iteration: int = 0
    steps: int = 0
    status: str = "PENDING"
    last_message: str = ""
    finished_at: float | None = None
    error: str | None = None
    run: dict[str, Any] = field(default_factory=dict)
    scores: list[dict[str, Any]] = field(default_factory=list)
    """The ``history`` entries of the iterations evaluated so far (``quality_score``, ``anomaly_count``...)."""
    evaluated: int = 0

    @property
    def quality(self) -> str:
        """The last iteration's score and anomalies, for the progress bar."""
        if not self.scores:
            return ""
        last = self.scores[-1]
        return f"quality {_score(last.get('quality_score'))}, {_anomalies(last.get('anomaly_count'))}"

    def observe(self, record: LogRecord) -> str | None:
        """Take one log record; return a line worth printing without a progress bar, if any."""
        kind = record.type.value
        if record.node:
            self.node = record.node
        if kind == "run_started":
            self.status = "RUNNING"
        elif kind == "step_started" and record.node == LOOP_NODE and record.attempt in (None, 1):
            self.iteration += 1
            return f"iteration {self.iteration} starts"
        elif kind == "step_succeeded":
            self.steps += 1
            if record.node == SCORE_NODE:
                self.evaluated += 1
        elif kind in ("step_failed", "retry_scheduled"):
            return f"{kind} at {record.node}: {record.message}"
        elif is_terminal(record):
            self.status = kind.removeprefix("run_").upper()
            self.finished_at = time.monotonic()
            self.last_message = record.message
            return f"{self.status}: {record.message}"
        return None

    @property
    def done(self) -> bool:
        return self.finished_at is not None or self.error is not None


@dataclass
class ScenarioResult:
    scenario: Scenario
    run_id: str
    status: str
    steps: int
    duration_seconds: float | None
    quality: dict[str, Any]
    error: str | None = None
    report_file: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


@dataclass
class DemoReport:
    graph_id: str
    results: list[ScenarioResult]
    wall_seconds: float
    run_seconds: float

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.succeeded for r in self.results)

    @property
    def total_steps(self) -> int:
        return sum(r.steps for r in self.results)

    @property
    def steps_per_second(self) -> float:
        return self.total_steps / self.run_seconds if self.run_seconds > 0 else 0.0


def _iteration_line(client: WorkflowClient, tracker: Tracker) -> str | None:
    """The score line of the iteration just evaluated, from the run's ``history`` (``None`` if unreadable)."""
    try:
        history = client.get_state_value(tracker.run_id, "history")
    except ClientError:
        return None
    entries = [e for e in history if isinstance(e, dict)] if isinstance(history, list) else []
    entry = next((e for e in entries if e.get("iteration") == tracker.evaluated), None)
    if entry is None:
        return None
    tracker.scores.append(entry)
    return (
        f"iteration {entry['iteration']}: quality {_score(entry.get('quality_score'))}, "
        f"{_anomalies(entry.get('anomaly_count'))} left"
    )


def _anomalies(count: Any) -> str:
    return f"{_count(count)} {'anomaly' if count == 1 else 'anomalies'}"


def _follow(
    client: WorkflowClient,
    tracker: Tracker,
    timeout: float,
    say: Callable[[str], None],
    show: Callable[[str], None],
    verbose: bool = False,
) -> None:
    """Follow one run: ``show`` the iteration scores (live too), ``say`` the other lines (without live bars)."""
    try:
        for record in client.follow(tracker.run_id, timeout=timeout, notify=say if verbose else None):
            evaluated = tracker.evaluated
            line = tracker.observe(record)
            if line:
                say(line)
            if tracker.evaluated > evaluated:
                scored = _iteration_line(client, tracker)
                if scored:
                    show(scored)
    except (ClientError, TimeoutError) as exc:
        tracker.error = f"{type(exc).__name__}: {exc}"
        say(tracker.error)


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("iteration {task.fields[iteration]}"),
        TextColumn("{task.fields[node]:<15}"),
        TextColumn("{task.fields[quality]:<30}"),
        TextColumn("{task.fields[status]:<9}"),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=10,
    )


def _watch(
    client: WorkflowClient,
    trackers: list[Tracker],
    console: Console,
    timeout: float,
    max_steps: int,
    verbose: bool = False,
) -> None:
    """Follow every run in its own thread, with a progress bar per run (plain lines without a terminal)."""
    live = console.is_interactive
    lock = threading.Lock()

    def sayer(tracker: Tracker, always: bool = False) -> Callable[[str], None]:
        def say(line: str) -> None:
            if live and not always:
                return
            with lock:
                console.print(Text.assemble((f"[{tracker.scenario.name}] ", "bold"), line))

        return say

    threads = [
        threading.Thread(
            target=_follow,
            args=(client, tracker, timeout, sayer(tracker), sayer(tracker, always=True), verbose),
            name=f"follow-{tracker.scenario.records}",
            daemon=True,
        )
        for tracker in trackers
    ]
    for thread in threads:
        thread.start()
    with _progress(console) if live else contextlib.nullcontext() as progress:
        tasks = (
            [
                progress.add_task(
                    t.scenario.name, total=max_steps, node="", iteration=0, quality="", status=""
                )
                for t in trackers
            ]
            if progress is not None
            else []
        )
        while any(thread.is_alive() for thread in threads):
            if progress is not None:
                _update(progress, tasks, trackers, max_steps)
            time.sleep(0.1)
        if progress is not None:
            _update(progress, tasks, trackers, max_steps)
    for thread in threads:
        thread.join()


def _update(progress: Progress, tasks: list[Any], trackers: list[Tracker], max_steps: int) -> None:
    for task, tracker in zip(tasks, trackers, strict=True):
        finished = tracker.done and tracker.status == "SUCCEEDED"
        progress.update(
            task,
            completed=tracker.steps,
            total=tracker.steps if finished else max(max_steps, tracker.steps),
            node=tracker.node,
            iteration=tracker.iteration,
            quality=tracker.quality,
            status=tracker.status if tracker.done else "",
        )


def _result(client: WorkflowClient, tracker: Tracker) -> ScenarioResult:
    try:
        run = client.get_run(tracker.run_id)
    except ClientError as exc:
        return ScenarioResult(
            tracker.scenario, tracker.run_id, tracker.status, tracker.steps, None, {}, str(exc)
        )
    state = run.get("state") or {}
    quality = (state.get("report") or {}).get("quality") or {}
    report_file = None
    if state.get("report"):
        REPORTS.mkdir(parents=True, exist_ok=True)
        report_file = REPORTS / f"{tracker.scenario.name.replace(' ', '-')}-{tracker.run_id}.json"
        report_file.write_text(json.dumps(state["report"], indent=2))
    created, finished = run.get("created_at"), run.get("finished_at")
    duration = float(finished) - float(created) if created is not None and finished is not None else None
    error = run.get("error")
    message = tracker.error or (f"{error.get('type')}: {error.get('message')}" if error else None)
    history = [e for e in state.get("history") or [] if isinstance(e, dict)]
    return ScenarioResult(
        tracker.scenario,
        tracker.run_id,
        str(run.get("status")),
        int(run.get("step", 0)),
        duration,
        quality,
        message,
        report_file,
        history,
    )


def run_demo(
    client: WorkflowClient,
    scenarios: Sequence[Scenario] | None = None,
    *,
    console: Console | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_iterations: int | None = None,
    verbose: bool = False,
    wf: str = "wf",
) -> DemoReport:
    """Register the data-quality graph, run every scenario at once, follow them, and gather the results.

    ``wf`` is how the hints printed while the runs go call the CLI (with ``--endpoint``
    when ``wf`` would not find this stack by itself).

    Raises:
        ClientError: the graph could not be created or a run not started.
    """
    from engine.graphs import load_graph_json

    console = console or Console()
    scenarios = list(scenarios or scenarios_for(DEFAULT_RECORDS))
    started = time.monotonic()
    definition = load_graph_json(GRAPH_NAME)
    graph = client.create_graph(definition)
    graph_id = str(graph["graph_id"])
    console.print(
        Text.assemble("graph ", (graph_id, "bold"), f" v{graph['version']} ({definition.get('name')})")
    )

    trackers = [Tracker(scenario) for scenario in scenarios]
    runs_started = time.monotonic()
    for tracker in trackers:
        state = tracker.scenario.initial_state()
        if max_iterations is not None:
            state["max_iterations"] = max_iterations
        accepted = client.start_run(graph_id, state)
        tracker.run_id = str(accepted["run_id"])
        console.print(Text.assemble(f"{tracker.scenario.name:>14}: run ", (tracker.run_id, "bold")))
    first = trackers[0].run_id
    console.print(
        Text.assemble(
            ("while they run, in another terminal: ", "dim"),
            f"{wf} status {first}",
            ("  or  ", "dim"),
            f"{wf} logs {first} --follow",
        ),
        soft_wrap=True,
    )

    iterations = max_iterations or DEFAULT_MAX_ITERATIONS
    max_steps = min(int(definition.get("max_steps", 100)), 2 + STEPS_PER_ITERATION * iterations)
    _watch(client, trackers, console, timeout, max_steps, verbose)
    finished = [t.finished_at for t in trackers if t.finished_at is not None]
    run_seconds = (max(finished) if finished else time.monotonic()) - runs_started
    results = [_result(client, tracker) for tracker in trackers]
    return DemoReport(graph_id, results, time.monotonic() - started, run_seconds)


PARALLEL_GRAPH_NAME = "data_quality_parallel"
_TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})
DEFAULT_CHUNKS = 4


@dataclass(frozen=True)
class VariantResult:
    """One run of a variant of the pipeline, alone on the stack."""

    name: str
    run_id: str
    status: str
    steps: int
    duration_seconds: float | None
    quality: dict[str, Any]


@dataclass(frozen=True)
class VariantComparison:
    """The sequential pipeline and its parallel (chunked map) variant on the same dataset, one after the other."""

    scenario: Scenario
    variants: list[VariantResult]

    @property
    def same_report(self) -> bool:
        first = self.variants[0].quality
        return bool(first) and all(v.quality == first for v in self.variants[1:])

    @property
    def ok(self) -> bool:
        return self.same_report and all(v.status == "SUCCEEDED" for v in self.variants)


def _run_alone(
    client: WorkflowClient, name: str, graph_id: str, state: dict[str, Any], timeout: float
) -> VariantResult:
    """Start one run and poll it until it ends (or ``timeout`` passes)."""
    run_id = str(client.start_run(graph_id, state)["run_id"])
    deadline = time.monotonic() + timeout
    run = client.get_run(run_id, include_state=False)
    while run.get("status") not in _TERMINAL_STATUSES and time.monotonic() < deadline:
        time.sleep(0.2)
        run = client.get_run(run_id, include_state=False)
    created, finished = run.get("created_at"), run.get("finished_at")
    duration = float(finished) - float(created) if created is not None and finished is not None else None
    quality: dict[str, Any] = {}
    if run.get("status") == "SUCCEEDED":
        report = client.get_state_value(run_id, "report")
        quality = dict(report.get("quality") or {}) if isinstance(report, dict) else {}
    return VariantResult(name, run_id, str(run.get("status")), int(run.get("step", 0)), duration, quality)


def compare_variants(
    client: WorkflowClient,
    scenario: Scenario,
    sequential_graph_id: str,
    *,
    chunks: Sequence[int] = (DEFAULT_CHUNKS,),
    timeout: float = DEFAULT_TIMEOUT,
    max_iterations: int | None = None,
) -> VariantComparison:
    """Run ``scenario`` alone with the sequential graph, then with the parallel one per chunk count."""
    from engine.graphs import load_graph_json

    parallel = str(client.create_graph(load_graph_json(PARALLEL_GRAPH_NAME))["graph_id"])
    state = scenario.initial_state()
    if max_iterations is not None:
        state["max_iterations"] = max_iterations
    variants = [_run_alone(client, "sequential", sequential_graph_id, state, timeout)]
    for count in chunks:
        variants.append(
            _run_alone(
                client, f"parallel, {count} chunks", parallel, {**state, "chunks_count": count}, timeout
            )
        )
    return VariantComparison(scenario, variants)


def print_comparison(comparison: VariantComparison, console: Console) -> None:
    console.print(
        Text.assemble(
            (f"{comparison.scenario.name}, sequential and parallel (each run alone)", "bold underline")
        ),
        soft_wrap=True,
    )
    for variant in comparison.variants:
        duration = f"{variant.duration_seconds:.2f} s" if variant.duration_seconds is not None else "-"
        q = variant.quality
        console.print(
            Text.assemble(
                (f"  {variant.name:<20}", "bold"),
                (f"{variant.status:<10}", "green" if variant.status == "SUCCEEDED" else "red"),
                f" {duration:>8}, {variant.steps} steps, quality {_score(q.get('score_before'))} -> "
                f"{_score(q.get('score_after'))}, {_count(q.get('anomalies_fixed'))} fixed  run {variant.run_id}",
            ),
            soft_wrap=True,
        )
    same = "the same report" if comparison.same_report else "DIFFERENT reports"
    console.print(
        Text.assemble(("  ", ""), (same, "bold green" if comparison.same_report else "bold red")),
        soft_wrap=True,
    )


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _count(value: Any) -> str:
    return str(value) if value is not None else "-"


def scenario_rows(result: ScenarioResult, client: WorkflowClient) -> list[tuple[str, str]]:
    """The rows of one scenario's table: scores, anomalies, rows, iterations, steps, duration, the report."""
    q = result.quality
    target = (
        f" (target {_score(q.get('target_score'))}, {'met' if q.get('target_met') else 'not met'})"
        if q
        else ""
    )
    duration = f"{result.duration_seconds:.2f} s" if result.duration_seconds is not None else "-"
    rows = [
        ("quality score", f"{_score(q.get('score_before'))} -> {_score(q.get('score_after'))}{target}"),
        (
            "anomalies",
            f"{_count(q.get('anomalies_found'))} found, {_count(q.get('anomalies_fixed'))} fixed, "
            f"{_count(q.get('anomalies_quarantined'))} quarantined, {_count(q.get('anomalies_remaining'))} left",
        ),
        (
            "rows",
            f"{_count(q.get('rows_in'))} in, {_count(q.get('rows_out'))} out, "
            f"{_count(q.get('quarantined_count'))} quarantined, "
            f"{_count(q.get('dropped_duplicate_count'))} duplicates dropped",
        ),
        ("iterations", _count(q.get("iterations"))),
        ("per iteration", _per_iteration(result.history)),
        ("steps", str(result.steps)),
        ("duration", duration),
    ]
    if result.error:
        rows.append(("error", result.error))
    if result.report_file is not None:
        rows.append(("full report", str(result.report_file)))
    rows.append(("report again", f"wf status {result.run_id} --key report"))
    rows.append(("", f"GET {client.run_url(result.run_id)} (in state.report)"))
    return rows


def _per_iteration(history: list[dict[str, Any]]) -> str:
    """``1: 0.812 (40 anomalies) -> 2: 0.950 (0)``: each iteration's quality score and anomalies left."""
    if not history:
        return "-"
    steps = [
        f"{e.get('iteration')}: {_score(e.get('quality_score'))} ({_count(e.get('anomaly_count'))})"
        for e in history
    ]
    return " -> ".join(steps) + "  (score, anomalies left)"


def print_report(report: DemoReport, client: WorkflowClient, console: Console) -> None:
    """A table per scenario (printed unwrapped: ids and URLs stay whole), then the totals."""
    for result in report.results:
        style = "bold green" if result.succeeded else "bold red"
        console.print(
            Text.assemble((result.scenario.name, "bold underline"), "  ", (result.status, style)),
            soft_wrap=True,
        )
        for key, value in scenario_rows(result, client):
            console.print(
                Text.assemble((f"  {key:<15}", "bold"), (value, "red" if key == "error" else "")),
                soft_wrap=True,
            )
        console.print()
    succeeded = sum(r.succeeded for r in report.results)
    console.print(
        Text.assemble(
            (
                f"{succeeded}/{len(report.results)} scenarios succeeded",
                "bold green" if report.ok else "bold red",
            ),
            f"; the stack ran {report.total_steps} steps in {report.run_seconds:.2f} s: ",
            (f"{report.steps_per_second:.1f} steps/s", "bold"),
        ),
        soft_wrap=True,
    )


def wf_command(endpoints: Endpoints) -> str:
    """``wf``, or ``wf --endpoint URL`` when ``wf`` alone would not find these endpoints (``.local-stack/stack.json``)."""
    if endpoints.source.startswith("local stack ("):
        return "wf"
    ws = f" --ws-endpoint {endpoints.ws_url}" if endpoints.ws_url else ""
    return f"wf --endpoint {endpoints.http_url}{ws}"


@contextlib.contextmanager
def demo_stack(
    endpoint: str | None, ws_endpoint: str | None, console: Console, cwd: Path | None = None
) -> Iterator[Endpoints]:
    """The endpoints to use: given ones, a live ``make dev`` stack, else a local stack started here."""
    if endpoint:
        yield Endpoints(endpoint, ws_endpoint, "--endpoint")
        return
    found = local_stack_endpoints(cwd or Path.cwd())
    if found is not None:
        yield found
        return
    from local.stack import LocalStack

    console.print(Text("no running local stack (make dev): starting one in this process", style="dim"))
    with LocalStack(port=0, moto_port=0, workers=4, log_level="WARNING", log_format="text") as stack:
        yield Endpoints(
            stack.http_url, stack.ws_url, "local stack started by the demo", stack.info().get("credential")
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.demo", description="Run the Data Quality Pipeline demo on the local stack."
    )
    parser.add_argument(
        "--records",
        default=",".join(map(str, DEFAULT_RECORDS)),
        help="comma-separated record counts, one scenario each (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="dataset seed (default %(default)s)")
    parser.add_argument("--max-iterations", type=int, help="fix-and-evaluate loops at most (graph default 5)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for the runs")
    parser.add_argument("--endpoint", metavar="URL", help="HTTP API of a running stack")
    parser.add_argument("--ws-endpoint", metavar="URL", help="its WebSocket API")
    parser.add_argument(
        "--verbose", action="store_true", help="also print the log follower's reconnections and gap reads"
    )
    parser.add_argument(
        "--chunks",
        type=lambda text: [int(part) for part in text.split(",") if part.strip()],
        default=[DEFAULT_CHUNKS],
        metavar="N[,N...]",
        help="after the scenarios, run the largest alone sequentially and with the parallel graph "
        "split into N chunks, and compare (default %(default)s; '' skips it)",
    )
    args = parser.parse_args(argv)
    try:
        records = [int(part) for part in args.records.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--records: {args.records!r} is not a comma-separated list of integers")
    if not records or min(records) < 1:
        parser.error("--records: give at least one positive count")

    console = Console(highlight=False, soft_wrap=True)
    started = time.monotonic()
    try:
        with demo_stack(args.endpoint, args.ws_endpoint, console) as endpoints:
            console.print(
                Text.assemble(
                    ("Data Quality Pipeline demo", "bold"),
                    f" on {endpoints.http_url} ({endpoints.source}); log over {endpoints.ws_url or 'HTTP polling'}",
                )
            )
            auth = client_auth(endpoints.http_url, local_credential=endpoints.credential)
            with WorkflowClient(endpoints.http_url, endpoints.ws_url, auth=auth) as client:
                report = run_demo(
                    client,
                    scenarios_for(records, args.seed),
                    console=console,
                    timeout=args.timeout,
                    max_iterations=args.max_iterations,
                    verbose=args.verbose,
                    wf=wf_command(endpoints),
                )
                console.print()
                print_report(report, client, console)
                comparison = None
                if args.chunks:
                    console.print()
                    largest = max(scenarios_for(records, args.seed), key=lambda s: s.records)
                    comparison = compare_variants(
                        client,
                        largest,
                        report.graph_id,
                        chunks=args.chunks,
                        timeout=args.timeout,
                        max_iterations=args.max_iterations,
                    )
                    print_comparison(comparison, console)
    except ClientError as exc:
        console.print(Text(f"demo failed: {exc}", style="bold red"))
        return 1
    except KeyboardInterrupt:
        console.print(Text("interrupted", style="yellow"))
        return 130
    console.print(
        Text.assemble(("total wall time ", "bold"), f"{time.monotonic() - started:.2f} s"), soft_wrap=True
    )
    return 0 if report.ok and (comparison is None or comparison.ok) else 1


if __name__ == "__main__":
    sys.exit(main())
