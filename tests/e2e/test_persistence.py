"""``python -m local.stack`` keeps its data across restarts, and a run in flight when it stopped completes.

Each test starts the stack as ``make dev`` does, as a process, on free ports and
on a temporary data folder, and stops it with SIGINT (Ctrl-C) or SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials

from local import snapshot
from local.signing import SigV4Signer
from local.state_file import ROOT
from tests.e2e.conftest import GATED, create_graph, run_logs, start_run, wait_for_run

pytestmark = pytest.mark.e2e

START_TIMEOUT = 120.0

COUNTER: dict[str, Any] = {
    "name": "counter",
    "start_node": "a",
    "nodes": {"a": {"tool": "test.inc"}},
    "edges": {"a": [{"when": {"key": "i", "op": "<", "value": 2}, "to": "a"}, {"to": "__end__"}]},
}


@contextmanager
def dev_stack(data_dir: Path, *args: str, stop_signal: int = signal.SIGINT) -> Iterator[httpx.Client]:
    """``python -m local.stack`` on ``data_dir``; an HTTP client for it; stopped with ``stop_signal``."""
    state = data_dir.parent / f"stack-{data_dir.name}.json"
    log_path = data_dir.parent / f"stack-{data_dir.name}.log"
    command = [
        sys.executable,
        "-m",
        "local.stack",
        "--port",
        "0",
        "--moto-port",
        "0",
        "--workers",
        "2",
        "--visibility-timeout",
        "2",
        "--log-level",
        "WARNING",
        "--tool-modules",
        "tests.support.tools",
        "--state-file",
        str(state),
        "--data-dir",
        str(data_dir),
        *args,
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not state.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the stack did not start: {log_path.read_text()[-3000:]}")
                time.sleep(0.1)
            info = json.loads(state.read_text())
            key = info["credential"]
            auth = SigV4Signer(Credentials(key["access_key"], key["secret_key"])).http_auth()
            with httpx.Client(base_url=info["http_url"], timeout=30.0, auth=auth) as client:
                yield client
        finally:
            if process.poll() is None:
                process.send_signal(stop_signal)
            try:
                code = process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"the stack did not stop on {stop_signal!r}")
    assert code == 0, log_path.read_text()[-3000:]
    assert not state.exists(), "the state file is removed on a clean stop"


def wait_for_file(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear")
        time.sleep(0.1)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_graphs_runs_and_logs_survive_a_restart_and_the_run_in_flight_succeeds(
    tmp_path: Path, stop_signal: int
) -> None:
    data_dir = tmp_path / "data"
    gate = tmp_path / "gate"
    with dev_stack(data_dir, stop_signal=stop_signal) as api:
        counter_id = create_graph(api, COUNTER)
        finished_id = start_run(api, counter_id, {})
        finished = wait_for_run(api, finished_id)
        assert finished["status"] == "SUCCEEDED", finished
        finished_logs = run_logs(api, finished_id)

        gated_id = create_graph(api, GATED)
        reached = tmp_path / "reached"
        in_flight_id = start_run(
            api, gated_id, {"gate": str(gate), "gate_reached": str(reached), "gate_timeout": 120}
        )
        wait_for_file(reached)
        assert api.get(f"/runs/{in_flight_id}").json()["status"] == "RUNNING"

    saved = snapshot.read(data_dir / snapshot.FILE_NAME)
    assert saved is not None and saved["format"] == snapshot.FORMAT
    assert any(saved["sqs"].values()), "the step being executed is kept"

    gate.touch()
    with dev_stack(data_dir) as api:
        listed = {g["graph_id"] for g in api.get("/graphs").json()["graphs"]}
        assert {counter_id, gated_id} <= listed
        assert api.get(f"/runs/{finished_id}").json()["status"] == "SUCCEEDED"
        assert run_logs(api, finished_id) == finished_logs

        resumed = wait_for_run(api, in_flight_id, timeout=120)
        assert resumed["status"] == "SUCCEEDED", resumed
        assert resumed["state"]["gate_passed"] is True
        assert resumed["state"]["i"] == 3
        types = [r["type"] for r in run_logs(api, in_flight_id)]
        assert types.count("run_started") == 1
        assert types[-1] == "run_succeeded"

    with dev_stack(data_dir, "--fresh") as api:
        assert api.get("/graphs").json()["graphs"] == []
        assert api.get(f"/runs/{finished_id}").status_code == 404


def test_a_save_is_written_only_when_the_data_changed(tmp_path: Path) -> None:
    from local.stack import LocalStack

    data_dir = tmp_path / "data"
    with LocalStack(
        port=0, moto_port=0, workers=1, data_dir=data_dir, snapshot_interval=3600, log_level="WARNING"
    ) as stack:
        assert stack.save() is True
        assert stack.save() is False
        stack.client("s3").put_object(Bucket=stack.resources.bucket, Key="k", Body=b"v")  # type: ignore[union-attr]
        assert stack.save() is True
    saved = snapshot.read(data_dir / snapshot.FILE_NAME)
    assert saved is not None
    assert saved["s3"]["graphflow-state"] == [{"key": "k", "body_base64": "dg=="}]
    assert os.listdir(data_dir) == [snapshot.FILE_NAME]
