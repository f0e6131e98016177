"""A step invocation that outlasts the step queue's (lowered) visibility timeout is not raced by the other pollers.

The stack's step handler is :mod:`tests.support.slow_step`: every invocation
whose batch holds a step-1 message first waits :data:`SLOW_START` seconds, more
than ``maxReceiveCount`` times the queue's visibility timeout, as a loaded
machine can leave an environment without CPU. Eight pollers are free to
receive the message again meanwhile. Before the mapping held its batches, they
did, their receives moved the message to the DLQ while the first delivery still
waited, and the run failed with ``StepDeliveryFailed: ... no error was recorded``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from local.stack import LocalStack
from tests.e2e.conftest import signer, tool_modules, wait_for_run
from tests.support.tools import loop_graph

pytestmark = pytest.mark.e2e

VISIBILITY_TIMEOUT = 2
MAX_RECEIVE_COUNT = 5  # the step queue's redrive policy in template.yaml
SLOW_START = (MAX_RECEIVE_COUNT + 1) * VISIBILITY_TIMEOUT + 2


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(
        workers=8,
        visibility_timeout=VISIBILITY_TIMEOUT,
        tool_modules=tool_modules(),
        log_level="WARNING",
        handlers={"step": "tests.support.slow_step:lambda_handler"},
        environment={"SLOW_STEP_SECONDS": str(SLOW_START)},
        api_concurrency=2,
        ws_concurrency=1,
    ) as running:
        yield running


def test_a_slow_invocation_is_not_received_again_while_it_runs(stack: LocalStack) -> None:
    with httpx.Client(base_url=stack.http_url, timeout=30.0, auth=signer(stack).http_auth()) as api:
        created = api.post("/graphs", json=loop_graph(1, "slow-start"))
        assert created.status_code == 201, created.text
        started = api.post("/runs", json={"graph_id": created.json()["graph_id"], "initial_state": {"i": 0}})
        assert started.status_code == 202, started.text
        run = wait_for_run(api, started.json()["run_id"], timeout=SLOW_START * 4 + 30)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert stack.poller is not None
    assert stack.poller.stats["dlq"].received == 0
