"""Step time with WebSocket subscribers: the old sequential posts against the pooled ones, side by side.

Runs a three-node loop graph through the real step handler on moto (in-process)
with 0 and ``--subscribers`` connections following the run, once with the
broadcaster posting to one subscriber after another (as before) and once with
its thread pool. moto answers a post in microseconds, where API Gateway takes
milliseconds: ``--rtt-ms`` adds that round trip to every post (a sleep in moto's
handler, which releases the GIL as a network wait does), and each configuration
is measured with no added round trip and with it.

Usage: ``.venv/bin/python bench/broadcast.py [--subscribers 150] [--loops 5] [--rtt-ms 5]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cost import BENCH_ENV


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=150)
    parser.add_argument("--loops", type=int, default=5, help="times the run goes round a -> b -> c")
    parser.add_argument("--rtt-ms", type=float, default=5.0, help="round trip added to each post")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration (the median is shown)")
    args = parser.parse_args()

    os.environ.update(
        {
            **BENCH_ENV,
            "WS_MANAGEMENT_ENDPOINT": "https://ws.example.execute-api.us-east-1.amazonaws.com/prod",
            "MAX_SUBSCRIBERS_PER_RUN": str(max(args.subscribers, 1)),
        }
    )
    import boto3
    from moto import mock_aws
    from moto.apigatewaymanagementapi.models import ApiGatewayManagementApiBackend

    from engine.aws.broadcast import WebSocketBroadcaster
    from engine.frames import record_frames
    from engine.model import LogRecord, PublishResult, Run
    from functions.shared import wiring
    from functions.step import app as step_app
    from local.esm import EventSourceMapping
    from local.resources import create_resources
    from tests.support.tools import loop_graph

    def sequential_publish(self: WebSocketBroadcaster, run: Run, records: list[LogRecord]) -> PublishResult:
        """The broadcaster's publish before the pool: one subscriber after another."""
        frames = list(record_frames(run.run_id, records))
        for connection_id in run.subscribers:
            self.post(connection_id, frames, run_id=run.run_id)
        return PublishResult(posted=len(run.subscribers))

    pooled_publish = WebSocketBroadcaster.publish
    moto_post = ApiGatewayManagementApiBackend.post_to_connection
    rtt = {"seconds": 0.0}

    def post_with_rtt(self: ApiGatewayManagementApiBackend, data: bytes, connection_id: str) -> None:
        if rtt["seconds"]:
            time.sleep(rtt["seconds"])
        moto_post(self, data, connection_id)

    ApiGatewayManagementApiBackend.post_to_connection = post_with_rtt  # type: ignore[method-assign]

    with mock_aws():
        sqs = boto3.client("sqs")
        resources = create_resources(boto3.client("dynamodb"), sqs, boto3.client("s3"))
        os.environ.update(
            TABLE_NAME=resources.table_name, BLOB_BUCKET=resources.bucket, STEP_QUEUE_URL=resources.queue_url
        )
        wiring.reset()
        service = wiring.service()
        graph_id = service.create_graph(loop_graph(args.loops, "bench-broadcast")).graph_id
        mapping = EventSourceMapping(
            sqs, resources.queue_url, resources.queue_arn, step_app.lambda_handler, batch_size=1
        )

        def step_ms(subscribers: int) -> float:
            run_id = service.start_run(graph_id, {"i": 0}).run_id
            for n in range(subscribers):
                wiring.store().add_subscriber(run_id, f"conn-{n:04d}")
            started = time.perf_counter()
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                mapping.drain()
            elapsed = time.perf_counter() - started
            run = service.get_run(run_id)
            assert run.status.value == "SUCCEEDED", run.status
            return elapsed * 1000 / run.step

        step_ms(0)  # warm up imports and caches
        rows: list[tuple[str, float, int, float]] = []
        for rtt_ms in (0.0, args.rtt_ms):
            rtt["seconds"] = rtt_ms / 1000
            for name, publish in (("sequential", sequential_publish), ("pool", pooled_publish)):
                WebSocketBroadcaster.publish = publish  # type: ignore[method-assign]
                for subscribers in (0, args.subscribers):
                    ms = statistics.median(step_ms(subscribers) for _ in range(args.repeats))
                    rows.append((name, rtt_ms, subscribers, ms))
        WebSocketBroadcaster.publish = pooled_publish  # type: ignore[method-assign]

    print(
        f"ms per step, loop graph ({args.loops * 3} steps per run), median of {args.repeats} runs, moto in-process"
    )
    print(f"{'broadcaster':<12} {'rtt ms':>7} {'subscribers':>12} {'ms/step':>9}")
    for name, rtt_ms, subscribers, ms in rows:
        print(f"{name:<12} {rtt_ms:>7g} {subscribers:>12} {ms:>9.1f}")


if __name__ == "__main__":
    main()
