"""The local gateway and the dashboard: public page routes, and the configuration it embeds on loopback only."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.auth import CredentialTable, SigV4Authenticator
from local.gateway import EventLoopThread, Gateway, is_loopback_host, merge_page_config, public_routes
from local.resources import load_template

PAGE = '<html><script type="application/json" id="graphflow-config">{"region":"us-east-1"}</script></html>'
SECRET = {"auth": "iam", "credentials": {"access_key": "AKIALOCAL1", "secret_key": "s3cr3t"}}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event["rawPath"] in ("/", "/dashboard"):
        return {"statusCode": 200, "headers": {"Content-Type": "text/html; charset=utf-8"}, "body": PAGE}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps(event)}


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    loop = EventLoopThread()
    table = CredentialTable({})
    table.add("developer")
    gateway = Gateway(handler, None, authenticator=SigV4Authenticator(table), page_config=SECRET)
    loop.run(gateway.start())
    yield gateway
    loop.run(gateway.stop())
    loop.close()


def config_of(html: str) -> dict[str, Any]:
    match = re.search(r'id="graphflow-config">(.*?)</script>', html)
    assert match
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_the_public_routes_are_the_templates_authorizer_none_routes() -> None:
    routes = public_routes(load_template())
    matches = {path: [m for m, p in routes if p.match(path)] for path in ("/", "/dashboard")}
    assert matches == {"/": ["GET"], "/dashboard": ["GET"]}
    assert any(p.match("/dashboard/assets/vendor/mermaid.min.js") for _, p in routes)
    assert not any(
        p.match(path) for _, p in routes for path in ("/graphs", "/runs/x", "/dashboardx", "/tools")
    )


def test_the_page_is_served_without_credentials_with_the_key_on_loopback(gateway: Gateway) -> None:
    reply = httpx.get(f"{gateway.url}/dashboard", headers={"Origin": "http://evil.example"})
    assert reply.status_code == 200
    config = config_of(reply.text)
    assert config == {**SECRET, "region": "us-east-1", "ws_url": f"ws://127.0.0.1:{gateway.port}/ws"}
    assert "access-control-allow-origin" not in reply.headers
    assert reply.headers["cache-control"] == "no-store"


def test_another_host_name_gets_the_page_without_the_key(gateway: Gateway) -> None:
    """A DNS name pointed at 127.0.0.1 (DNS rebinding) makes its page same-origin: it never gets the key."""
    reply = httpx.get(f"{gateway.url}/dashboard", headers={"Host": f"rebind.example:{gateway.port}"})
    assert reply.status_code == 200
    assert config_of(reply.text) == {"region": "us-east-1"}
    assert "s3cr3t" not in reply.text


def test_data_routes_still_need_a_signature(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/graphs").status_code == 403
    assert httpx.post(f"{gateway.url}/dashboard").status_code == 403
    event = httpx.get(f"{gateway.url}/dashboard/assets/app.js").json()
    assert "authorizer" not in event["requestContext"]


def test_merging_escapes_what_could_close_the_script() -> None:
    html = merge_page_config(PAGE, {"x": "</script><script>alert(1)</script>"})
    assert html.count("</script>") == 1
    assert config_of(html)["x"] == "</script><script>alert(1)</script>"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:8000", True),
        ("[::1]:8000", True),
        ("LOCALHOST", True),
        ("127.0.0.1.evil.example:8000", False),
        ("localhost.evil.example", False),
        ("10.0.0.5:8000", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
