"""Schemathesis against the local stack's ``/openapi.json``: no 5xx, and every answer as documented.

A modest number of cases per operation keeps this test short; docs/limits.md has
the command for a full run.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.stack import LocalStack
from tests.support.signing import RequestsSigV4

pytestmark = pytest.mark.e2e

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CASES_PER_OPERATION = 6
SEEDED_GRAPHS = ("0", "00", "A", "a")
SEED_GRAPH = {"name": "seed", "start_node": "a", "nodes": {"a": "test.noop"}}


def test_every_answer_is_documented_and_none_is_a_5xx(stack: LocalStack, api: httpx.Client) -> None:
    for (
        graph_id
    ) in SEEDED_GRAPHS:  # short ids, which generated cases often use, so that some reads find a graph
        created = api.post("/graphs", params={"graph_id": graph_id}, json=SEED_GRAPH)
        assert created.status_code in (201, 409), created.text
    schema = schemathesis.openapi.from_dict(api.get("/openapi.json").json())
    assert stack.credential is not None
    auth = RequestsSigV4(Credentials(stack.credential.access_key, stack.credential.secret_key))
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @settings(
            max_examples=CASES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(base_url=stack.http_url, checks=CHECKS, timeout=30, auth=auth)

        try:
            check()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
