"""template.yaml opens the dashboard's routes, and only them, on both HTTP APIs."""

from __future__ import annotations

from typing import Any

import pytest

from local.resources import load_template

PAGE_ROUTES = {("GET", "/"), ("GET", "/dashboard"), ("GET", "/dashboard/assets/{proxy+}")}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.mark.parametrize(("function", "api"), [("ApiFunction", "HttpApi"), ("JwtApiFunction", "JwtHttpApi")])
def test_only_the_page_routes_take_no_authorizer(template: dict[str, Any], function: str, api: str) -> None:
    events = template["Resources"][function]["Properties"]["Events"].values()
    open_routes = set()
    for event in events:
        props = event["Properties"]
        assert props["ApiId"] == {"Ref": api}
        if (props.get("Auth") or {}).get("Authorizer") == "NONE":
            open_routes.add((props["Method"], props["Path"]))
        else:
            assert "Auth" not in props, props
    assert open_routes == PAGE_ROUTES
    assert ("ANY", "/{proxy+}") in {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events}
