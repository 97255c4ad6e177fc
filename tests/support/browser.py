"""A real headless Chromium (Debian's), driven by Playwright, which never downloads a browser."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from support.require import REQUIRE_BROWSER, require

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("INITLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def launch(playwright):
    # Missing, the browser tests skip; under CI (INITLAB_REQUIRE_SERVICES=1 or INITLAB_REQUIRE_BROWSER=1) they fail.
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests "
                               "(make system-deps, or point INITLAB_CHROMIUM at it)", also=(REQUIRE_BROWSER,))
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


class PageWatch:
    """Console errors, uncaught exceptions and every request a page makes."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda msg: self.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("request", lambda request: self.requests.append(request.url))

    def external(self) -> list[str]:
        outside = []
        for url in self.requests:
            parsed = urlparse(url)
            if parsed.scheme in ("data", "blob", "about"):
                continue
            if parsed.hostname not in LOCAL_HOSTS:
                outside.append(url)
        return outside
