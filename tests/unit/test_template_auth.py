"""template.yaml's authentication: IAM by default on both APIs, the JWT branch only under AuthMode jwt."""

from __future__ import annotations

from typing import Any

import pytest

from local.resources import load_template

REQUIRED_CORS_HEADERS = {
    "authorization",
    "content-type",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]  # type: ignore[no-any-return]


def test_auth_mode_defaults_to_iam(template: dict[str, Any]) -> None:
    mode = template["Parameters"]["AuthMode"]
    assert (mode["Default"], mode["AllowedValues"]) == ("iam", ["iam", "jwt"])
    assert {"JwtIssuer", "JwtAudience"} <= set(template["Parameters"])
    assert template["Conditions"]["IamAuth"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "iam"]}
    assert template["Conditions"]["JwtAuth"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "jwt"]}


def test_the_http_api_authorises_with_aws_iam_by_default(template: dict[str, Any]) -> None:
    api = resources(template)["HttpApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    assert api["Condition"] == "IamAuth"
    assert api["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    function = resources(template)["ApiFunction"]
    assert function["Condition"] == "IamAuth"
    assert {e["Properties"]["ApiId"]["Ref"] for e in function["Properties"]["Events"].values()} == {"HttpApi"}


def test_the_jwt_http_api_exists_only_in_jwt_mode(template: dict[str, Any]) -> None:
    api = resources(template)["JwtHttpApi"]
    assert api["Condition"] == "JwtAuth"
    auth = api["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["JwtConfiguration"] == {
        "issuer": {"Ref": "JwtIssuer"},
        "audience": [{"Ref": "JwtAudience"}],
    }
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    function = resources(template)["JwtApiFunction"]
    assert function["Condition"] == "JwtAuth"
    assert function["Properties"]["Handler"] == resources(template)["ApiFunction"]["Properties"]["Handler"]
    assert {e["Properties"]["ApiId"]["Ref"] for e in function["Properties"]["Events"].values()} == {
        "JwtHttpApi"
    }


def test_connect_is_aws_iam_unless_jwt_mode_uses_the_request_authorizer(template: dict[str, Any]) -> None:
    connect = resources(template)["WebSocketConnectRoute"]["Properties"]
    assert connect["AuthorizationType"] == {"Fn::If": ["JwtAuth", "CUSTOM", "AWS_IAM"]}
    assert connect["AuthorizerId"] == {
        "Fn::If": ["JwtAuth", {"Ref": "WebSocketJwtAuthorizer"}, {"Ref": "AWS::NoValue"}]
    }
    authorizer = resources(template)["WebSocketJwtAuthorizer"]
    assert authorizer["Condition"] == "JwtAuth"
    assert authorizer["Properties"]["AuthorizerType"] == "REQUEST"
    function = resources(template)["AuthorizerFunction"]
    assert function["Condition"] == "JwtAuth"
    assert function["Properties"]["Handler"] == "functions.authorizer.app.lambda_handler"
    assert set(function["Properties"]["Environment"]["Variables"]) == {"JWT_ISSUER", "JWT_AUDIENCE"}
    for name in ("AuthorizerInvokePermission", "AuthorizerFunctionLogGroup"):
        assert resources(template)[name]["Condition"] == "JwtAuth"


def test_cors_allows_the_signing_headers_in_both_modes(template: dict[str, Any]) -> None:
    for name in ("HttpApi", "JwtHttpApi"):
        cors = resources(template)[name]["Properties"]["CorsConfiguration"]
        assert {h.lower() for h in cors["AllowHeaders"]} >= REQUIRED_CORS_HEADERS
        assert "OPTIONS" in cors["AllowMethods"]


def test_every_resource_that_names_a_conditional_one_shares_its_condition(template: dict[str, Any]) -> None:
    conditional = {
        name: spec["Condition"] for name, spec in resources(template).items() if "Condition" in spec
    }

    def refs(value: Any) -> set[str]:
        if isinstance(value, dict):
            if "Fn::If" in value:
                return set()
            found = {value["Ref"]} if isinstance(value.get("Ref"), str) else set()
            if "Fn::GetAtt" in value:
                target = value["Fn::GetAtt"]
                found.add(target[0] if isinstance(target, list) else str(target).split(".")[0])
            return found.union(*(refs(v) for v in value.values()))
        if isinstance(value, list):
            return set().union(*(refs(v) for v in value))
        return set()

    for name, spec in resources(template).items():
        for target in refs(spec.get("Properties", {})) & set(conditional):
            assert spec.get("Condition") == conditional[target], (name, target)
