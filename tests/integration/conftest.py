"""Handlers and ``engine.aws`` on moto: one fresh account per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.shared import wiring
from local.resources import Resources, create_resources

REGION = "us-east-1"
WS_ENDPOINT = "https://ws.example.execute-api.us-east-1.amazonaws.com/prod"


@dataclass
class AwsEnv:
    resources: Resources
    dynamodb: Any
    sqs: Any
    s3: Any


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsEnv]:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "graphflow-test")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        resources = create_resources(dynamodb, sqs, s3, region=REGION)
        monkeypatch.setenv("TABLE_NAME", resources.table_name)
        monkeypatch.setenv("BLOB_BUCKET", resources.bucket)
        monkeypatch.setenv("STEP_QUEUE_URL", resources.queue_url)
        monkeypatch.setenv("WS_MANAGEMENT_ENDPOINT", WS_ENDPOINT)
        wiring.reset()
        yield AwsEnv(resources, dynamodb, sqs, s3)
        wiring.reset()
