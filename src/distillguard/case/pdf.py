"""HTML -> PDF with headless Chromium's print-to-PDF (Playwright driving the system's Chromium).

Playwright never downloads a browser here: it launches the Chromium found at
``DISTILLGUARD_CHROMIUM`` or ``/usr/bin/chromium`` (Debian's package). The page
is loaded from a file with JavaScript disabled, so nothing in the evidence can
run while printing.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from distillguard.errors import UsageError

__all__ = ["chromium_path", "LAUNCH_ARGS", "html_to_pdf"]

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    for cand in (os.environ.get("DISTILLGUARD_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and Path(cand).is_file():
            return cand
    return None


def html_to_pdf(html_path: Path, pdf_path: Path) -> None:
    exe = chromium_path()
    if exe is None:
        raise UsageError("PDF needs Chromium (apt-get install chromium) or --no-pdf")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise UsageError("PDF needs the playwright package (pip install 'distillguard[test]') or --no-pdf") from None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=LAUNCH_ARGS)
        try:
            ctx = browser.new_context(java_script_enabled=False, offline=True)
            page = ctx.new_page()
            page.goto(Path(html_path).resolve().as_uri(), wait_until="load")
            page.pdf(path=str(pdf_path), format="A4", print_background=True,
                     margin={"top": "14mm", "bottom": "14mm", "left": "12mm", "right": "12mm"})
        finally:
            browser.close()
