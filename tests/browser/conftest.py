"""Browser fixtures: a local stack for the module and a headless Chromium page on its dashboard.

Playwright's Python package drives Debian's chromium at :data:`CHROMIUM` (no browser
is downloaded): every test here is skipped when it is absent. The stack is the one
``tests/e2e/conftest.py`` starts (SigV4, ``tests.support.tools`` loaded); its gateway
embeds the developer key in the page, so the page signs its calls with no set-up.
Each test saves a screenshot under ``.artifacts/browser/`` (:func:`shoot`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local.stack import LocalStack
from tests.e2e.conftest import signer, stack

__all__ = ["stack"]  # the e2e stack fixture, shared

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "browser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            if not CHROMIUM.exists():
                item.add_marker(pytest.mark.skip(reason=f"no {CHROMIUM} (apt-get install chromium)"))


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.http_url, timeout=30.0, auth=signer(stack).http_auth()) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (its own storage) at 1280x900; fails the test on a page error or console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=stack.http_url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: _console(message, problems))
    page.set_default_timeout(20_000)
    yield page
    context.close()
    assert not problems, problems


def _console(message: Any, problems: list[str]) -> None:
    # A refused or missing resource is logged by Chromium itself; the page handles those answers.
    if message.type == "error" and "Failed to load resource" not in message.text:
        problems.append(f"console: {message.text}")


def shoot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as ``.artifacts/browser/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
