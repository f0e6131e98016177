"""What ``make demo`` prints on a fresh clone (no ``make dev`` running): no warnings, no internal notes,
each iteration's quality score while the runs go, and ``wf`` hints before the runs end."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from local.state_file import ROOT

pytestmark = pytest.mark.e2e

INTERNAL_NOTES = ("gap after seq", "reading it over HTTP", "resuming after seq")


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """stdout and stderr of ``python -m local.demo`` run from a folder with no ``.local-stack/stack.json``."""
    cwd = tmp_path_factory.mktemp("no-stack")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run(
        [sys.executable, "-m", "local.demo", "--records", "40,80"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_the_demo_prints_no_warning(demo_output: str) -> None:
    assert "Warning" not in demo_output
    assert "UserWarning" not in demo_output
    assert "WARNING" not in demo_output
    assert "Traceback" not in demo_output


def test_the_demo_prints_no_internal_note(demo_output: str) -> None:
    for note in INTERNAL_NOTES:
        assert note not in demo_output


def test_each_iteration_shows_its_quality_score_and_anomalies_as_it_goes(demo_output: str) -> None:
    lines = demo_output.splitlines()
    scored = [
        i
        for i, line in enumerate(lines)
        if re.search(r"iteration \d+: quality \d\.\d{3}, \d+ anomal(y|ies) left", line)
    ]
    assert scored, demo_output
    finished = min(i for i, line in enumerate(lines) if "SUCCEEDED:" in line)
    assert scored[0] < finished, "the first score comes before a run ends"
    assert any(line.strip().startswith("per iteration") and "1: " in line for line in lines), demo_output


def test_the_wf_hints_come_while_the_runs_go(demo_output: str) -> None:
    lines = demo_output.splitlines()
    hint = next(
        i for i, line in enumerate(lines) if "wf --endpoint http://127.0.0.1:" in line and " status " in line
    )
    assert "logs" in lines[hint] and "--follow" in lines[hint]
    finished = min(i for i, line in enumerate(lines) if "SUCCEEDED:" in line)
    assert hint < finished


def test_the_demo_compares_the_parallel_variant_with_the_sequential_pipeline() -> None:
    from local.client import WorkflowClient
    from local.demo import compare_variants, scenarios_for
    from local.signing import client_auth
    from local.stack import LocalStack

    with LocalStack(port=0, moto_port=0, workers=4, log_level="WARNING") as stack:
        auth = client_auth(stack.http_url, local_credential=stack.info().get("credential"))
        with WorkflowClient(stack.http_url, stack.ws_url, auth=auth) as client:
            from engine.graphs import load_graph_json

            sequential = str(client.create_graph(load_graph_json("data_quality"))["graph_id"])
            [scenario] = scenarios_for([200], seed=5)
            comparison = compare_variants(client, scenario, sequential, chunks=(1, 3), timeout=120)

    assert [v.name for v in comparison.variants] == ["sequential", "parallel, 1 chunks", "parallel, 3 chunks"]
    assert all(v.status == "SUCCEEDED" for v in comparison.variants), comparison
    assert comparison.same_report
    assert comparison.variants[0].quality["rows_in"] == 200
    assert comparison.variants[2].steps > comparison.variants[0].steps, "branch steps count"
