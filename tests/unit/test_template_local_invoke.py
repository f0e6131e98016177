"""What ``sam local`` needs from template.yaml changes nothing when deployed (docs/sam-local.md)."""

from __future__ import annotations

import pytest

from functions.shared import wiring
from local.resources import load_template


def test_architecture_is_a_parameter_arm64_by_default_that_the_layer_build_follows() -> None:
    template = load_template()
    parameter = template["Parameters"]["Architecture"]
    assert parameter["Default"] == "arm64"
    assert sorted(parameter["AllowedValues"]) == ["arm64", "x86_64"]
    assert template["Globals"]["Function"]["Architectures"] == [{"Ref": "Architecture"}]
    layer = template["Resources"]["DependenciesLayer"]
    assert layer["Metadata"]["BuildArchitecture"] == {"Ref": "Architecture"}
    assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]


def test_the_endpoint_variable_is_declared_empty() -> None:
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["AWS_ENDPOINT_URL"] == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "https://sqs.us-east-1.amazonaws.com"), ("http://172.17.0.1:5000", "http://172.17.0.1:5000")],
)
def test_an_empty_endpoint_variable_leaves_the_clients_on_aws(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    wiring.reset()
    try:
        assert wiring.client("sqs").meta.endpoint_url == expected
    finally:
        wiring.reset()
