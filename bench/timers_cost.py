"""What a wait and a callback cost: AWS requests by operation through the real step handler, on moto.

Runs ``a -> pause -> b`` with a one-day wait and ``a -> approve -> b`` with a
callback (approved through :meth:`WorkflowService.resolve_callback`, as the
callback route calls it) next to ``a -> b``, and reports the difference: the
requests the wait or the callback adds. The scheduler's firing is done by hand
(moto does not fire schedules): one ``SendMessage`` in the wake-up's group,
counted as the scheduler's invocation and its SQS request. SQS receives and
deletes are those of one event source mapping polling one run alone (no
batching: the dearest case).

Usage: ``.venv/bin/python bench/timers_cost.py``
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cost import BENCH_ENV

DAY = 86400


def _graphs() -> dict[str, dict[str, Any]]:
    base: dict[str, Any] = {"start_node": "a", "nodes": {"a": "test.noop", "b": "test.noop"}}
    return {
        "plain": {**base, "name": "plain", "edges": {"a": "b"}},
        "wait": {
            **base,
            "name": "wait",
            "nodes": {**base["nodes"], "pause": {"wait": {"seconds": DAY}}},
            "edges": {"a": "pause", "pause": "b"},
        },
        "callback": {
            **base,
            "name": "callback",
            "nodes": {**base["nodes"], "approve": {"callback": {"timeout_seconds": DAY}}},
            "edges": {"a": "approve", "approve": "b"},
        },
    }


def main() -> None:
    os.environ.update(BENCH_ENV, POWERTOOLS_METRICS_DISABLED="true")
    import boto3
    from moto import mock_aws

    from engine.model import LogType, RunStatus
    from functions.shared import wiring
    from functions.step import app as step_app
    from local.esm import EventSourceMapping
    from local.resources import create_resources, create_scheduler_resources

    counts: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        service, _, operation = event_name.removeprefix("before-call.").partition(".")
        counts[f"{service}.{operation}"] += 1

    with mock_aws(), tempfile.TemporaryDirectory() as scratch:
        region = "us-east-1"
        sqs = boto3.client("sqs", region_name=region)
        made = create_resources(
            boto3.client("dynamodb", region_name=region), sqs, boto3.client("s3", region_name=region)
        )
        scheduler = boto3.client("scheduler", region_name=region)
        group = create_scheduler_resources(scheduler, boto3.client("iam", region_name=region))
        clock_file = Path(scratch) / "offset"
        clock_file.write_text("0.0")
        sqs.set_queue_attributes(QueueUrl=made.queue_url, Attributes={"VisibilityTimeout": "0"})
        os.environ.update(
            TABLE_NAME=made.table_name,
            BLOB_BUCKET=made.bucket,
            STEP_QUEUE_URL=made.queue_url,
            STEP_QUEUE_ARN=made.queue_arn,
            SCHEDULER_GROUP=group.group,
            SCHEDULER_ROLE_ARN=group.role_arn,
            LOCAL_CLOCK_FILE=str(clock_file),
        )
        wiring.reset()
        wiring.session().register("before-call", count)
        service = wiring.service()
        esm = EventSourceMapping(
            wiring.client("sqs"), made.queue_url, made.queue_arn, step_app.lambda_handler
        )

        def fire_all() -> int:
            fired = 0
            for summary in scheduler.list_schedules(GroupName=group.group)["Schedules"]:
                schedule = scheduler.get_schedule(GroupName=group.group, Name=summary["Name"])
                target = schedule["Target"]
                wiring.client("sqs").send_message(
                    QueueUrl=made.queue_url,
                    MessageBody=target["Input"],
                    MessageGroupId=target["SqsParameters"]["MessageGroupId"],
                )
                scheduler.delete_schedule(GroupName=group.group, Name=summary["Name"])
                fired += 1
            return fired

        results: dict[str, Counter[str]] = {}
        invocations: dict[str, int] = {}
        fired: dict[str, int] = {}
        for name, graph in _graphs().items():
            graph_id = service.create_graph(graph).graph_id
            counts.clear()
            calls = 0

            def handler(event: dict[str, Any], context: Any) -> Any:
                nonlocal calls
                calls += 1
                return step_app.lambda_handler(event, context)

            esm.handler = handler
            run = service.start_run(graph_id, {})
            esm.drain()
            fired[name] = 0
            if name == "wait":
                clock_file.write_text(repr(float(clock_file.read_text()) + DAY + 1))
                fired[name] = fire_all()
            if name == "callback":
                before = Counter(counts)
                [record] = [r for r in service.list_logs(run.run_id) if r.type is LogType.CALLBACK_WAITING]
                counts.clear()
                counts.update(before)  # reading the token is the caller's, not the mechanism's
                service.resolve_callback(str(record.data["token"]))
            esm.drain()
            assert service.get_run(run.run_id).status is RunStatus.SUCCEEDED
            results[name] = Counter(counts)
            invocations[name] = calls

    plain = results["plain"]
    for name in ("wait", "callback"):
        extra = Counter(results[name])
        extra.subtract(plain)
        added = {k: v for k, v in sorted(extra.items()) if v}
        print(
            f"{name}: step invocations {invocations[name]} (plain {invocations['plain']}), schedules fired {fired[name]}"
        )
        print(f"  requests added: {added} (total {sum(added.values())})")


if __name__ == "__main__":
    main()
