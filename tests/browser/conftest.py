from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Module scope: Playwright's sync API runs an event loop in this thread while it is open, which makes
# later tests' async_to_sync calls fail; it is closed as soon as the browser tests are done.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which("chromium"):
        raise RuntimeError("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    # While Playwright's loop runs in this thread Django refuses ORM calls from it (fixtures create
    # users); Django documents this switch for exactly this case. Only for the browser tests.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
