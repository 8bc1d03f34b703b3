"""Debian's headless Chromium, driven by Playwright (from PyPI; it never downloads a browser of its own).

Used to print the deck to PDF and take screenshots, and by the browser tests. Chromium is started with flags that
keep it from calling any Google host (no sync, no component updates, no background networking, no QUIC) and with
a fresh profile (`--user-data-dir`) every time.
"""

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "install it with `apt-get install -y chromium` (Debian's package; .ci/run does this when it is missing)"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--mute-audio"]

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS", "INSTALL_HINT", "chromium_missing", "open_browser", "print_pdf", "screenshot"]


def chromium_missing() -> str | None:
    """Why the browser cannot start here (a sentence naming the fix), or None when it can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: {INSTALL_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is missing: `make venv` installs requirements.txt"
    return None


@contextlib.contextmanager
def open_browser(viewport: tuple[int, int] = (1280, 800)) -> Iterator[Any]:
    """A Playwright browser context of /usr/bin/chromium with a fresh profile; closed (and the profile removed)
    on exit. Raises RuntimeError saying how to install Chromium when it is missing."""
    problem = chromium_missing()
    if problem:
        raise RuntimeError(problem)
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="tinfer-chromium-"))
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": viewport[0], "height": viewport[1]}, offline=False)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _wait_for_deck(page: Any) -> None:
    page.wait_for_function("() => window.Reveal && Reveal.isReady() && document.body.dataset.fitted === 'yes'",
                           timeout=30_000)


def print_pdf(deck: Path, pdf: Path) -> Path:
    """Print the reveal.js deck `deck` (index.html) to `pdf`, one 1280x720 page per slide, with reveal's print
    layout (`?print-pdf`)."""
    with open_browser((1280, 720)) as context:
        page = context.new_page()
        page.goto(deck.resolve().as_uri() + "?print-pdf")
        _wait_for_deck(page)
        page.wait_for_function("() => document.querySelectorAll('.pdf-page').length > 0", timeout=30_000)
        page.pdf(path=str(pdf), width="1280px", height="720px", print_background=True, prefer_css_page_size=True,
                 margin={"top": "0", "right": "0", "bottom": "0", "left": "0"})
    return pdf


def screenshot(page: Any, path: Path, full_page: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path
