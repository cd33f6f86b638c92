"""Browser tests: Debian's Chromium (``/usr/bin/chromium``, or ``NSW_CHROMIUM``) driven by Playwright.

Playwright's own browser builds are never downloaded: ``make install`` installs Debian's package when it is
missing (``ops/browser/ensure-chromium.sh``). Loaded by ``tests/conftest.py`` as a plugin, so any test module
can ask for these fixtures:

- ``browser`` (module scope): one headless Chromium per test module; launching it costs about half a second.
- ``page``: a fresh browser context (its own cookies: nobody is signed in) and page for one test, 1280 x 900,
  UTC, 15 s default timeout. An uncaught script error or a content-security-policy violation on the page fails
  the test when it ends.

Helpers: ``officer_account(hub, role=..., agency=...)`` publishes an account and waits until the hub knows it;
``sign_in(page, hub, username)`` signs in through the form; ``console_url(hub, path)``; ``screenshot(page, name)``
saves ``<artifacts>/screenshots/<name>.png`` (``artifacts/`` in the repository, or ``NSW_ARTIFACTS``).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Error, Page, ViewportSize, async_playwright

from broker._hub import Hub
from console._accounts import new_officer, officer_message
from console._principal import Role
from tests.conftest import poll, publish

__all__ = ["CHROMIUM", "PASSWORD", "artifacts_dir", "browser", "console_url", "officer_account", "page", "screenshot",
           "sign_in"]

CHROMIUM = os.environ.get("NSW_CHROMIUM") or "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"
REPOSITORY = Path(__file__).resolve().parents[1]
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
DEFAULT_TIMEOUT_MS = 15_000


def artifacts_dir() -> Path:
    """Where test artefacts go: ``NSW_ARTIFACTS``, else ``artifacts/`` in the repository (git-ignored)."""
    return Path(os.environ.get("NSW_ARTIFACTS") or REPOSITORY / "artifacts")


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save what ``page`` shows as ``<artifacts>/screenshots/<name>.png`` and return the file."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise ValueError("a screenshot name is lower-case letters, digits, '.', '_', '-'")
    path = artifacts_dir() / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=full_page)
    return path


def console_url(hub: Hub, path: str = "/") -> str:
    return f"http://{hub.config.host}:{hub.config.port}/console{path}"


async def officer_account(hub: Hub, *, role: Role = "officer", agency: str | None = "sps",
                          password: str = PASSWORD, display: str = "") -> str:
    """A new account on ``nsw.officers`` (as ``nsw officers create`` writes it), known to ``hub``: its user name."""
    username = f"{agency or role}-{uuid.uuid4().hex[:8]}"
    await publish(officer_message(new_officer(username, role=role, agency=agency, password=password, display=display)))
    officers = hub.officers
    assert officers is not None, "the hub runs no ingress (no console)"

    async def known() -> bool | None:
        return True if officers.active(username) else None

    await poll(known, timeout=20, what=f"the account {username} in the hub")
    return username


async def sign_in(page: Page, hub: Hub, username: str, password: str = PASSWORD) -> None:
    """Sign in through the console's form; returns on the page the console sends the user to."""
    await page.goto(console_url(hub, "/signin"))
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password", exact=True).fill(password)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in", exact=True).click()
    if page.url.startswith(console_url(hub, "/signin")):
        raise AssertionError(f"signing in as {username} did not work: still on {page.url}")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: `make install` installs Debian's (or set NSW_CHROMIUM)")
    async with async_playwright() as playwright:
        # Chromium's sandbox needs an unprivileged user; as root (containers, CI here) it cannot start with it.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                    chromium_sandbox=os.geteuid() != 0)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    problems: list[str] = []

    def console_message(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(f"CSP: {message.text}")

    def page_error(error: Error) -> None:
        problems.append(f"script error: {error.message}")

    opened = await context.new_page()
    opened.on("console", console_message)
    opened.on("pageerror", page_error)
    try:
        yield opened
    finally:
        await context.close()
    assert not problems, f"the page reported problems: {problems}"
