"""The contract suite: every test runs against each adapter of the store ports.

``memory`` is :mod:`engine.memory`; ``dynamodb`` is :class:`engine.aws.dynamodb.DynamoStore`
on moto, with its large values in S3 (also on moto), on the table, bucket and
queues that ``local.resources.create_resources`` builds from ``template.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from engine.aws.dynamodb import DynamoStore
from engine.aws.s3 import S3BlobStore
from engine.memory import InMemoryConnectionStore, InMemoryGraphStore, InMemoryRunStore
from engine.ports import ConnectionStore, GraphStore, RunStore
from local.resources import Resources, create_resources

REGION = "us-east-1"


@dataclass
class Moto:
    resources: Resources
    dynamodb: Any
    sqs: Any
    s3: Any


@dataclass
class Stores:
    kind: str
    graphs: GraphStore
    runs: RunStore
    connections: ConnectionStore


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[Moto]:
    """A fresh moto account with the template's resources."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        yield Moto(create_resources(dynamodb, sqs, s3, region=REGION), dynamodb, sqs, s3)


@pytest.fixture(params=["memory", "dynamodb"])
def stores(request: pytest.FixtureRequest) -> Stores:
    if request.param == "memory":
        return Stores("memory", InMemoryGraphStore(), InMemoryRunStore(), InMemoryConnectionStore())
    env: Moto = request.getfixturevalue("moto")
    store = DynamoStore(
        env.dynamodb, env.resources.table_name, blobs=S3BlobStore(env.s3, env.resources.bucket)
    )
    return Stores("dynamodb", store, store, store)


@pytest.fixture
def graphs(stores: Stores) -> GraphStore:
    return stores.graphs


@pytest.fixture
def runs(stores: Stores) -> RunStore:
    return stores.runs


@pytest.fixture
def connections(stores: Stores) -> ConnectionStore:
    return stores.connections
