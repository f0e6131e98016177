"""AWS requests and dollars per branch step: the real step handler on moto, in-process.

Cases: a 4-branch parallel graph (``tests.support.tools.parallel_graph``) and a
100-item map with ``max_concurrency`` 10 (``map_graph``). The step queue is
drained by :class:`local.esm.EventSourceMapping` with the real
``functions.step.app.lambda_handler``; every request the handler makes is
counted and billed as ``bench/state.py`` bills them (its :class:`Meter`). SQS is
priced at three requests per message (the send the step makes, the receive and
the delete of the event source mapping; the mapping's own client is not
watched). Branch steps are the messages that name a branch; the figures are
per message of the whole run (fan-out, branch steps, join, the rest) and per
branch step.

The mapping here delivers one batch at a time, so siblings never race for a
commit. On AWS, branches of one run commit concurrently: a branch step that
loses its commit to a sibling reads the run again and commits again (one
``GetItem``, one ``PutItem`` of its log item and one ``UpdateItem`` more per
lost race); ``--contention`` reports what that adds at a given rate of lost races.

Usage: ``.venv/bin/python bench/parallel.py [--items 100] [--concurrency 10] [--contention 0.3] [--json]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from cost import BENCH_ENV  # bench/ is sys.path[0] when this runs as a script
from state import MEMORY_GB, PRICE, Meter

ROOT = Path(__file__).resolve().parent.parent
STEP_FUNCTIONS_STANDARD_PER_MILLION = 25.0


def measure(items: int, concurrency: int, contention: float) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from engine.model import StepMessage
    from functions.shared import wiring
    from functions.step import app as step_app
    from local.esm import EventSourceMapping
    from local.resources import create_resources
    from tests.support.tools import map_graph, parallel_graph

    results: dict[str, Any] = {}
    with mock_aws():
        sqs, dynamodb, s3 = boto3.client("sqs"), boto3.client("dynamodb"), boto3.client("s3")
        resources = create_resources(dynamodb, sqs, s3)
        os.environ.update(
            TABLE_NAME=resources.table_name, BLOB_BUCKET=resources.bucket, STEP_QUEUE_URL=resources.queue_url
        )
        sqs.set_queue_attributes(QueueUrl=resources.queue_url, Attributes={"VisibilityTimeout": "0"})
        wiring.reset()
        service = wiring.service()
        meter = Meter(boto3.client("dynamodb"), resources.table_name)
        for name in ("dynamodb", "sqs", "s3"):
            meter.watch(wiring.client(name))
        messages: list[StepMessage] = []

        def handler(event: dict[str, Any], context: Any) -> Any:
            for record in event["Records"]:
                messages.append(StepMessage.model_validate_json(record["body"]))
            tick = time.process_time()
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                out = step_app.lambda_handler(event, context)
            cpu[0] += time.process_time() - tick
            return out

        cases = {
            "parallel, 4 branches": (parallel_graph(4), {}),
            f"map, {items} items, max_concurrency {concurrency}": (map_graph(concurrency), {"n": items}),
        }
        for name, (graph, state) in cases.items():
            graph_id = service.create_graph(graph).graph_id
            cpu = [0.0]
            messages.clear()
            meter.ops.clear()
            meter.wru = meter.rru = 0.0
            meter.on = True
            run_id = service.start_run(graph_id, state).run_id
            EventSourceMapping(sqs, resources.queue_url, resources.queue_arn, handler).drain()
            meter.on = False
            run = service.get_run(run_id)
            assert run.status == "SUCCEEDED", run.error
            total = len(messages)
            branch_steps = sum(1 for m in messages if m.branch is not None)
            ops = {op: n / total for op, n in sorted(meter.ops.items())}
            cpu_ms = cpu[0] / total * 1000
            dollars = {
                "dynamodb": (meter.wru * PRICE["wru"] + meter.rru * PRICE["rru"]) / total,
                "s3": ops.get("s3.PutObject", 0) * PRICE["s3_put"]
                + ops.get("s3.GetObject", 0) * PRICE["s3_get"],
                "sqs": 3 * PRICE["sqs"],
                "lambda": PRICE["lambda_request"] + cpu_ms / 1000 * MEMORY_GB * PRICE["gb_second"],
            }
            per_message = sum(dollars.values()) * 1e6
            # A lost race: one GetItem (the run item, about 1 KB: 1 RRU), a PutItem of the log item (1 WRU) and a
            # failed conditional UpdateItem (billed as a write of the item: 1 WRU for a run item under 1 KB).
            race = PRICE["rru"] + 2 * PRICE["wru"]
            results[name] = {
                "messages": total,
                "branch_steps": branch_steps,
                "requests_per_message": ops,
                "wru_per_message": meter.wru / total,
                "rru_per_message": meter.rru / total,
                "cpu_ms_per_message": cpu_ms,
                "usd_per_million_messages": {k: v * 1e6 for k, v in dollars.items()},
                "total_per_million_messages": per_message,
                "with_contention_per_million": per_message + contention * race * 1e6,
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--contention", type=float, default=0.3, help="lost races per branch step")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.update(BENCH_ENV)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("WORKFLOW_TOOL_MODULES", "tests.support.tools")
    results = measure(args.items, args.concurrency, args.contention)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, r in results.items():
        print(f"{name}: {r['messages']} messages, {r['branch_steps']} branch steps")
        print(
            f"  per message: {r['wru_per_message']:.2f} WRU, {r['rru_per_message']:.2f} RRU, "
            f"{r['cpu_ms_per_message']:.1f} ms CPU, requests "
            + ", ".join(f"{op} {n:.2f}" for op, n in r["requests_per_message"].items())
        )
        parts = ", ".join(f"{k} {v:.2f}" for k, v in r["usd_per_million_messages"].items())
        print(f"  $ per million messages: {r['total_per_million_messages']:.2f} ({parts})")
        print(
            f"  with {args.contention:g} lost races per branch step: {r['with_contention_per_million']:.2f}; "
            f"Step Functions Standard: {STEP_FUNCTIONS_STANDARD_PER_MILLION:.2f} per million transitions"
        )


if __name__ == "__main__":
    main()
