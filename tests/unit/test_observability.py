"""The handlers' metrics: published when an invocation added some, silent (no warning) when it added none."""

from __future__ import annotations

import json
import warnings

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from functions.shared.observability import metrics


@pytest.fixture(autouse=True)
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics.clear_metrics()


def test_an_invocation_without_metrics_prints_and_warns_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    handler = metrics.log_metrics(lambda event, context: "done")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert handler({}, None) == "done"
    assert capsys.readouterr().out == ""


def test_metrics_that_were_added_are_published(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(event: object, context: object) -> str:
        metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=1)
        return "done"

    assert metrics.log_metrics(handler)({}, None) == "done"
    emf = json.loads(capsys.readouterr().out)
    assert emf["RunsStarted"] in (1.0, [1.0])
    assert [m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["RunsStarted"]


def test_metadata_of_an_invocation_without_metrics_does_not_leak_into_the_next(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def first(event: object, context: object) -> None:
        metrics.add_metadata(key="start_mode", value="async")

    def second(event: object, context: object) -> None:
        metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=1)

    metrics.log_metrics(first)({}, None)
    metrics.log_metrics(second)({}, None)
    assert "start_mode" not in json.loads(capsys.readouterr().out)
