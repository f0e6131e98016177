"""How soon a WebSocket subscriber gets its ack and its backlog on the local stack.

Starts the local stack (SigV4, as by default), runs a loop graph to the end (a
backlog of a few hundred records), then, ``--repeats`` times each, measures:

* ``subscribe`` message: from sending it to the ``subscribed`` ack, and to ``replayed``;
* ``?run_id=X&after=-1`` on connect (served through ``WebSocketReplayQueue``, whose
  ``DelaySeconds`` is 1): from opening the connection to the ack, and to ``replayed``.

Usage: ``.venv/bin/python bench/ws_connect.py [--loops 60] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _until(ws: Any, kind: str) -> None:
    while json.loads(ws.recv(timeout=30))["type"] != kind:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--loops", type=int, default=60, help="a -> b -> c rounds of the run (records: ~9 per round)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import httpx
    from botocore.credentials import Credentials
    from websockets.sync.client import connect

    from local.signing import SigV4Signer
    from local.stack import LocalStack
    from tests.support.tools import loop_graph

    with LocalStack(
        port=0, moto_port=0, workers=2, tool_modules=["tests.support.tools"], log_level="WARNING"
    ) as stack:
        assert stack.credential is not None
        signer = SigV4Signer(Credentials(stack.credential.access_key, stack.credential.secret_key))
        with httpx.Client(base_url=stack.http_url, timeout=30.0, auth=signer.http_auth()) as api:
            graph = {**loop_graph(args.loops), "max_steps": 3 * args.loops + 10}
            graph_id = api.post("/graphs", json=graph).json()["graph_id"]
            run_id = api.post("/runs", json={"graph_id": graph_id, "initial_state": {"i": 0}}).json()[
                "run_id"
            ]
            while api.get(f"/runs/{run_id}").json()["status"] not in ("SUCCEEDED", "FAILED"):
                time.sleep(0.2)
            backlog = len(api.get(f"/runs/{run_id}/logs", params={"limit": 1000}).json()["records"])

        timings: dict[str, list[float]] = {
            k: [] for k in ("msg_ack", "msg_replayed", "conn_ack", "conn_replayed")
        }
        for _ in range(args.repeats):
            with connect(signer.websocket_url(stack.ws_url)) as ws:
                start = time.perf_counter()
                ws.send(json.dumps({"action": "subscribe", "run_id": run_id, "after": -1}))
                _until(ws, "subscribed")
                timings["msg_ack"].append(time.perf_counter() - start)
                _until(ws, "replayed")
                timings["msg_replayed"].append(time.perf_counter() - start)
            start = time.perf_counter()
            with connect(signer.websocket_url(f"{stack.ws_url}?run_id={run_id}&after=-1")) as ws:
                _until(ws, "subscribed")
                timings["conn_ack"].append(time.perf_counter() - start)
                _until(ws, "replayed")
                timings["conn_replayed"].append(time.perf_counter() - start)

    print(f"backlog: {backlog} records, {args.repeats} repeats, median (min-max) in ms")
    for name, values in timings.items():
        ms = [v * 1000 for v in values]
        print(f"  {name:14} {statistics.median(ms):8.1f} ({min(ms):.1f}-{max(ms):.1f})")


if __name__ == "__main__":
    main()
