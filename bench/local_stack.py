"""The local stack's throughput and per-step latency, at 1 and at 20 concurrent runs.

Starts a :class:`local.stack.LocalStack` on free ports (moto server, gateway,
pollers, the real handlers), creates a three-node loop graph over HTTP and
starts runs of it over HTTP. Per-step latency is the time between consecutive
``step_started`` records of a run: the queue hop, the read, the tool, the
commit and the enqueue of one step. Steps per second is all steps over the
time from the first ``run_started`` record to the last ``run_succeeded``; the
benchmark polls each run only twice a second, so as not to load moto itself.

Usage: ``.venv/bin/python bench/local_stack.py [--loops 10] [--workers 4] [--concurrency 1,20]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local.signing import SigV4Signer
from local.stack import LocalStack
from tests.support.tools import loop_graph

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"}


def signer(stack: LocalStack) -> SigV4Signer:
    """Requests are signed with the stack's developer key, as every client of the local stack signs."""
    assert stack.credential is not None
    return SigV4Signer(Credentials(stack.credential.access_key, stack.credential.secret_key))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_once(api: httpx.Client, graph_id: str) -> tuple[str, float]:
    """Start a run over HTTP and wait for it; returns its id and when it was seen finished."""
    run_id = api.post("/runs", json={"graph_id": graph_id, "initial_state": {"i": 0}}).json()["run_id"]
    while True:
        status = api.get(f"/runs/{run_id}", params={"include_state": "false"}).json()["status"]
        if status in TERMINAL:
            if status != "SUCCEEDED":
                raise RuntimeError(f"run {run_id} ended {status}")
            return run_id, time.perf_counter()
        time.sleep(0.5)


def measure(api: httpx.Client, graph_id: str, concurrency: int) -> dict[str, Any]:
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda _: run_once(api, graph_id), range(concurrency)))
    gaps: list[float] = []
    steps = 0
    first, last = float("inf"), 0.0
    for run_id, _ in results:
        records = api.get(f"/runs/{run_id}/logs", params={"limit": 1000}).json()["records"]
        first, last = min(first, records[0]["ts"]), max(last, records[-1]["ts"])
        starts = [r["ts"] for r in records if r["type"] == "step_started"]
        steps += len(starts)
        gaps.extend((b - a) * 1000 for a, b in itertools.pairwise(starts))
    wall = last - first
    return {
        "concurrent_runs": concurrency,
        "steps": steps,
        "wall_seconds": round(wall, 3),
        "steps_per_second": round(steps / wall, 1),
        "step_latency_ms_p50": round(statistics.median(gaps), 1),
        "step_latency_ms_p95": round(percentile(gaps, 0.95), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loops", type=int, default=10, help="times each run goes round a -> b -> c")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", default="1,20")
    args = parser.parse_args()
    with (
        LocalStack(workers=args.workers, tool_modules=["tests.support.tools"], log_level="WARNING") as stack,
        httpx.Client(base_url=stack.http_url, timeout=60, auth=signer(stack).http_auth()) as api,
    ):
        graph_id = api.post("/graphs", json=loop_graph(args.loops, "bench-loop")).json()["graph_id"]
        run_once(api, graph_id)
        results = [measure(api, graph_id, int(n)) for n in args.concurrency.split(",")]
    print(f"{'runs':>5}{'steps':>7}{'wall s':>8}{'steps/s':>9}{'p50 ms':>8}{'p95 ms':>8}")
    for r in results:
        print(
            f"{r['concurrent_runs']:>5}{r['steps']:>7}{r['wall_seconds']:>8}{r['steps_per_second']:>9}"
            f"{r['step_latency_ms_p50']:>8}{r['step_latency_ms_p95']:>8}"
        )
    print(json.dumps({"workers": args.workers, "loops": args.loops, "results": results}))


if __name__ == "__main__":
    main()
