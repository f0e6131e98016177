"""A fresh moto account with the template's table, bucket and queues, for one test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.resources import Resources, create_resources

REGION = "us-east-1"


@dataclass
class AwsEnv:
    resources: Resources
    dynamodb: Any
    sqs: Any
    s3: Any


@contextmanager
def moto_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsEnv]:
    """moto in-process, fake credentials, and the resources ``local.resources`` builds from ``template.yaml``."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        yield AwsEnv(create_resources(dynamodb, sqs, s3, region=REGION), dynamodb, sqs, s3)
