"""A headless Chromium for the portal's tests: Debian's package (installed when missing, as
the other servers are), driven by Playwright's Python client. Playwright's own browser
downloads are never used: it starts the system's Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import DevStackError
from scheduler.devstack.debian import install_debian_packages

if TYPE_CHECKING:
    from playwright.sync_api import Browser

# As a root process on a machine without a network beyond loopback: no sandbox (it needs a
# user namespace), no GPU, and none of the background connections that would be refused.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"]


def ensure_chromium() -> Path:
    """Debian's Chromium, installed when missing."""
    found = shutil.which("chromium")
    if found is None:
        install_debian_packages(["chromium"])
        found = shutil.which("chromium")
    if found is None:
        raise DevStackError("installed Debian's chromium package but chromium is not on PATH")
    return Path(found)


@contextmanager
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(ensure_chromium()),
                                             headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()
