"""The handlers' settings: each variable's parsing, the errors that name a bad one, and when they are read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.limits import MAX_BODY_BYTES
from engine.model import DEFAULT_MAX_SUBSCRIBERS_PER_RUN
from engine.registry import DEFAULT_TOOL_MODULES
from functions.shared import wiring
from functions.shared.environment import AuthSettings, ObservabilitySettings
from functions.shared.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
BASE = {"TABLE_NAME": "t", "STEP_QUEUE_URL": "https://sqs/q.fifo"}


def read(**env: str) -> Settings:
    return Settings.from_env({**BASE, **env})


def test_the_defaults() -> None:
    config = read()
    assert config.table_name == "t"
    assert config.step_queue_url == "https://sqs/q.fifo"
    assert config.blob_bucket is None
    assert config.ws_endpoint is None
    assert config.tool_modules == DEFAULT_TOOL_MODULES
    assert config.ttl_days == 30.0
    assert config.isolation == "suspects"
    assert config.step_function_timeout_seconds is None
    assert config.function_memory_mb is None
    assert config.max_subscribers == DEFAULT_MAX_SUBSCRIBERS_PER_RUN
    assert config.wait_budget_seconds == 25.0
    assert config.max_body_bytes == MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("variable", "text", "attribute", "value"),
    [
        ("BLOB_BUCKET", "bucket", "blob_bucket", "bucket"),
        ("WS_MANAGEMENT_ENDPOINT", "https://ws/prod", "ws_endpoint", "https://ws/prod"),
        ("RUN_TTL_DAYS", "7.5", "ttl_days", 7.5),
        ("STEP_ISOLATION", " Always ", "isolation", "always"),
        ("STEP_FUNCTION_TIMEOUT_SECONDS", "120", "step_function_timeout_seconds", 120.0),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512", "function_memory_mb", 512),
        ("MAX_SUBSCRIBERS_PER_RUN", "3", "max_subscribers", 3),
        ("WAIT_BUDGET_SECONDS", "0", "wait_budget_seconds", 0.0),
        ("MAX_BODY_BYTES", "64", "max_body_bytes", 64),
    ],
)
def test_each_variable_is_parsed(variable: str, text: str, attribute: str, value: Any) -> None:
    assert getattr(read(**{variable: text}), attribute) == value


def test_tool_modules_follow_the_builtins_unless_they_are_left_out() -> None:
    assert read(WORKFLOW_TOOL_MODULES="a, b,a").tool_modules == (*DEFAULT_TOOL_MODULES, "a", "b")
    assert read(WORKFLOW_TOOL_MODULES="a", WORKFLOW_BUILTIN_TOOLS="off").tool_modules == ("a",)
    assert read(WORKFLOW_BUILTIN_TOOLS="yes").tool_modules == DEFAULT_TOOL_MODULES


def test_an_empty_value_counts_as_unset() -> None:
    config = read(BLOB_BUCKET="", RUN_TTL_DAYS="  ", STEP_ISOLATION="")
    assert (config.blob_bucket, config.ttl_days, config.isolation) == (None, 30.0, "suspects")


@pytest.mark.parametrize(
    ("variable", "text", "says"),
    [
        ("RUN_TTL_DAYS", "a month", "RUN_TTL_DAYS must be a valid number"),
        ("RUN_TTL_DAYS", "0", "RUN_TTL_DAYS must be greater than 0"),
        ("RUN_TTL_DAYS", "inf", "RUN_TTL_DAYS must be a finite number"),
        (
            "STEP_ISOLATION",
            "sometimes",
            "STEP_ISOLATION must be one of suspects, always, never, not 'sometimes'",
        ),
        ("STEP_FUNCTION_TIMEOUT_SECONDS", "-1", "STEP_FUNCTION_TIMEOUT_SECONDS must be greater than 0"),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "512MB",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE must be a valid integer",
        ),
        ("MAX_SUBSCRIBERS_PER_RUN", "0", "MAX_SUBSCRIBERS_PER_RUN must be greater than or equal to 1"),
        ("WAIT_BUDGET_SECONDS", "-2", "WAIT_BUDGET_SECONDS must be greater than or equal to 0"),
        ("MAX_BODY_BYTES", "1.5", "MAX_BODY_BYTES must be a valid integer"),
        ("WORKFLOW_BUILTIN_TOOLS", "maybe", "WORKFLOW_BUILTIN_TOOLS must be true or false, not 'maybe'"),
    ],
)
def test_a_malformed_variable_is_one_error_naming_it(variable: str, text: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        read(**{variable: text})
    assert says in str(caught.value)
    assert str(caught.value).count(";") == 0, "one error, for the one bad variable"


def test_every_malformed_variable_is_named_in_the_one_error() -> None:
    with pytest.raises(SettingsError, match=r"RUN_TTL_DAYS.*; MAX_BODY_BYTES"):
        read(RUN_TTL_DAYS="x", MAX_BODY_BYTES="y")


@pytest.mark.parametrize(
    ("attribute", "variable"),
    [
        ("table_name", "TABLE_NAME"),
        ("step_queue_url", "STEP_QUEUE_URL"),
    ],
)
def test_a_missing_variable_is_an_error_only_where_it_is_needed(attribute: str, variable: str) -> None:
    config = Settings.from_env({})
    assert config.ttl_days == 30.0, "reading the settings needs none of them"
    with pytest.raises(SettingsError, match=f"^{variable} is not set; "):
        getattr(config, attribute)


def test_the_authorizer_reads_its_issuer_audience_and_keys() -> None:
    config = AuthSettings.from_env(
        {"JWT_ISSUER": "https://i", "JWT_AUDIENCE": "a", "JWKS_URL": " https://i/k "}
    )
    assert config == AuthSettings("https://i", "a", "https://i/k")
    assert AuthSettings.from_env({"JWT_ISSUER": "https://i", "JWT_AUDIENCE": "a"}).jwks_url is None
    with pytest.raises(SettingsError, match=r"^JWT_AUDIENCE is not set; "):
        AuthSettings.from_env({"JWT_ISSUER": "https://i", "JWT_AUDIENCE": " "})
    with pytest.raises(SettingsError, match=r"^JWT_ISSUER and JWT_AUDIENCE are not set; "):
        AuthSettings.from_env({})


def test_the_authorizer_needs_no_table_or_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.authorizer import app as authorizer

    for name in ("TABLE_NAME", "STEP_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JWT_ISSUER", "https://issuer.example")
    monkeypatch.setenv("JWT_AUDIENCE", "graphflow")
    authorizer.validator.cache_clear()
    try:
        validator = authorizer.validator()
    finally:
        authorizer.validator.cache_clear()
    assert validator.issuer == "https://issuer.example"


def test_settings_are_read_once_until_wiring_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_TTL_DAYS", "3")
    wiring.reset()
    try:
        assert wiring.settings().ttl_days == 3.0
        monkeypatch.setenv("RUN_TTL_DAYS", "4")
        assert wiring.settings().ttl_days == 3.0, "cached: the environment is read once per process"
        wiring.reset()
        assert wiring.settings().ttl_days == 4.0
        monkeypatch.setenv("RUN_TTL_DAYS", "soon")
        wiring.reset()
        with pytest.raises(SettingsError, match="RUN_TTL_DAYS"):
            wiring.settings()
    finally:
        monkeypatch.undo()
        wiring.reset()


def test_importing_the_handlers_reads_no_handler_setting() -> None:
    code = (
        "import functions.api.app, functions.step.app, functions.ws.app, functions.authorizer.app, "
        "functions.dlq.app\n"
        "from functions.shared import settings\n"
        "print(settings.settings.cache_info().currsize)"
    )
    env = {k: v for k, v in os.environ.items() if k not in BASE}
    env["RUN_TTL_DAYS"] = "not read at import"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "0"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ("json", "graphflow", False)),
        (
            {
                "GRAPHFLOW_LOG_FORMAT": "TEXT",
                "POWERTOOLS_METRICS_NAMESPACE": "ns",
                "POWERTOOLS_TRACE_DISABLED": "1",
            },
            ("text", "ns", True),
        ),
        ({"POWERTOOLS_TRACE_DISABLED": "false"}, ("json", "graphflow", False)),
    ],
)
def test_the_observability_variables(env: dict[str, str], expected: tuple[str, str, bool]) -> None:
    config = ObservabilitySettings.from_env(env)
    assert (config.log_format, config.metrics_namespace, config.trace_disabled) == expected


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"GRAPHFLOW_LOG_FORMAT": "yaml"}, "GRAPHFLOW_LOG_FORMAT must be json or text, not 'yaml'"),
        ({"POWERTOOLS_TRACE_DISABLED": "sure"}, "POWERTOOLS_TRACE_DISABLED must be true or false"),
    ],
)
def test_a_malformed_observability_variable_names_it(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        ObservabilitySettings.from_env(env)
