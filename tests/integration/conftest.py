"""Handlers and ``engine.aws`` on moto: one fresh account per test, the handlers' environment pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from functions.shared import wiring
from tests.support.moto_env import AwsEnv, moto_account

__all__ = ["WS_ENDPOINT", "AwsEnv"]

WS_ENDPOINT = "https://ws.example.execute-api.us-east-1.amazonaws.com/prod"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsEnv]:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "graphflow-test")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with moto_account(monkeypatch) as env:
        monkeypatch.setenv("TABLE_NAME", env.resources.table_name)
        monkeypatch.setenv("BLOB_BUCKET", env.resources.bucket)
        monkeypatch.setenv("STEP_QUEUE_URL", env.resources.queue_url)
        monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", WS_ENDPOINT)
        monkeypatch.setenv("WS_REPLAY_QUEUE_URL", env.resources.replay_url)
        wiring.reset()
        yield env
        wiring.reset()
