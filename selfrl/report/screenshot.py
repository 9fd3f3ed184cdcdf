"""A PNG of a report as headless Chromium draws it, through Playwright::

    python -m selfrl.report.screenshot runs/rlvr_tiny/report.html report.png [--height 1800]

(or ``selfrl report RUN_DIR --screenshot report.png``; ``--height``: the top of the page only,
e.g. for a README, instead of the whole page).  Playwright (``pip install
'selfrl[dev]'``) drives the system's Chromium (Debian: ``apt-get install chromium``; another
one through ``SELFRL_CHROMIUM``): Playwright's own browser download is never used.  The page
is opened from disk with every network request refused, so what is drawn is what the file holds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Headless, and nothing that reaches out: no sync, no component or field-trial updates.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """``SELFRL_CHROMIUM``, else the first Chromium on the PATH (None: none installed)."""
    return os.environ.get("SELFRL_CHROMIUM") or next(
        (path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def launch_chromium(playwright):
    """The system's Chromium, headless, through a started ``sync_playwright()``."""
    path = find_chromium()
    if path is None:
        raise RuntimeError("no Chromium found: apt-get install chromium (or set SELFRL_CHROMIUM to one)")
    if not Path(path).is_file():
        raise RuntimeError(f"SELFRL_CHROMIUM={path}: no such file")
    return playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)


@dataclass
class OpenedReport:
    """A report open in the browser: its Playwright page, the requests refused (anything not
    from the file itself), and the console errors and uncaught exceptions seen so far."""

    page: Any
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def open_report(browser, report: str | Path, width: int = 1400, timeout_ms: int = 60_000) -> OpenedReport:
    """``report`` open in a new page of ``browser``, once every chart is drawn (a page that never
    finishes is a ``RuntimeError`` listing the errors it showed)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    opened = OpenedReport(browser.new_page(viewport={"width": width, "height": 900}))
    page = opened.page

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            opened.refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    page.goto(Path(report).resolve().as_uri())
    try:
        page.wait_for_function("document.body.dataset.ready === '1'", timeout=timeout_ms)
    except PlaywrightTimeout:
        raise RuntimeError(f"{report}: the page did not finish drawing its charts in "
                           f"{timeout_ms / 1000:g} s; errors: {opened.errors or 'none'}") from None
    return opened


def screenshot(report: str | Path, png: str | Path, width: int = 1400, height: int | None = None) -> Path:
    """Write a PNG of ``report`` to ``png``: the whole page, or its top ``height`` pixels; returns
    its path."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ImportError("a screenshot needs Playwright: pip install 'selfrl[dev]' (and apt-get install "
                          "chromium)") from None
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = open_report(browser, report, width).page
            clip = None if height is None else {"x": 0, "y": 0, "width": width, "height": height}
            page.screenshot(path=str(png), full_page=True, clip=clip)
        finally:
            browser.close()
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selfrl.report.screenshot",
                                     description="a PNG of a selfrl report, drawn by headless Chromium")
    parser.add_argument("report", help="the report's HTML file")
    parser.add_argument("png", help="the PNG to write")
    parser.add_argument("--width", type=int, default=1400, help="the window's width in pixels")
    parser.add_argument("--height", type=int, default=None, help="only the page's top HEIGHT pixels")
    args = parser.parse_args(argv)
    print(screenshot(args.report, args.png, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
