"""The dashboard: a single page and its static files, from ``functions/api/dashboard/``.

``GET /`` answers the page to a browser (``Accept`` naming ``text/html``) and the
API's index as JSON to anyone else; ``GET /dashboard`` is always the page;
``GET /dashboard/assets/{file}`` and ``GET /dashboard/assets/vendor/{file}`` are
the files of that folder and of its ``vendor/`` folder (any other name is a 404).
These routes hold no data and take no caller: ``template.yaml`` opens them with
``Authorizer: NONE``; every request the page makes for data is signed or carries
a token (``docs/dashboard.md``).

The page carries its configuration in ``<script id="graphflow-config">``: the
WebSocket URL (``WS_MANAGEMENT_ENDPOINT`` with ``wss://`` for ``https://``) and the
region (``AWS_REGION``), which the page needs to presign the WebSocket URL.
"""

from __future__ import annotations

import json
import os
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from functions.shared.settings import settings

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard"
CONFIG_MARK = '<script type="application/json" id="graphflow-config">{}</script>'
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def content_security_policy(ws_url: str | None) -> str:
    """Scripts from this origin only (no inline script); data calls to this API and its WebSocket API.

    Styles may be inline: mermaid writes a ``<style>`` into each diagram it draws.
    """
    connect = "'self'"
    if ws_url:
        scheme, _, rest = ws_url.partition("://")
        connect += f" {scheme}://{rest.split('/', 1)[0]}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        f"connect-src {connect}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def page_config() -> dict[str, Any]:
    """What the page is told about its stack: the WebSocket URL and the region, when known."""
    config: dict[str, Any] = {}
    endpoint = settings().ws_endpoint
    if endpoint:
        if endpoint.startswith("https://"):
            config["ws_url"] = "wss://" + endpoint.removeprefix("https://")
        elif endpoint.startswith("http://"):
            config["ws_url"] = "ws://" + endpoint.removeprefix("http://")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    return config


def embed_config(html: str, config: dict[str, Any]) -> str:
    """``html`` with ``config`` as the JSON of its config script (``<`` escaped, so it cannot close the tag)."""
    text = json.dumps(config, separators=(",", ":")).replace("<", "\\u003c")
    return html.replace(CONFIG_MARK, CONFIG_MARK.replace("{}", text), 1)


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def page() -> Response[str]:
    config = page_config()
    html = embed_config(_read(DASHBOARD_DIR / "index.html"), config)
    headers = {**PAGE_HEADERS, "Content-Security-Policy": content_security_policy(config.get("ws_url"))}
    return Response(HTTPStatus.OK, MEDIA_TYPES[".html"], html, headers=headers)


def wants_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for HTML (as browsers' navigations do)."""
    return "text/html" in (accept or "").lower()


@cache
def _files(folder: str) -> dict[str, Path]:
    base = DASHBOARD_DIR / folder if folder else DASHBOARD_DIR
    return {
        p.name: p
        for p in base.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix in MEDIA_TYPES and p.name != "index.html"
    }


def asset(folder: str, name: str) -> Response[Any]:
    path = _files(folder).get(name)
    if path is None:
        return Response(
            HTTPStatus.NOT_FOUND,
            content_types.APPLICATION_JSON,
            json.dumps({"code": "not_found", "message": f"no dashboard file {name!r}"}),
        )
    headers = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
    return Response(HTTPStatus.OK, MEDIA_TYPES[path.suffix], _read(path), headers=headers, compress=True)


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> Response[str]:
    return page()


@router.get("/dashboard/assets/<name>", include_in_schema=False)
def dashboard_asset(name: str) -> Response[Any]:
    return asset("", name)


@router.get("/dashboard/assets/vendor/<name>", include_in_schema=False)
def dashboard_vendor_asset(name: str) -> Response[Any]:
    return asset("vendor", name)
