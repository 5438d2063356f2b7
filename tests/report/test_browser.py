"""The report opens in a real browser (headless chromium through Playwright) with no console error,
no network request, and every figure decoded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


def _browser():
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip(f"needs chromium ({CHROMIUM}), which is not installed: apt-get install -y chromium")
    pw = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")
    return pw.sync_playwright, str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))


def test_report_html_in_headless_chromium(tiny_run, tmp_path):
    sync_playwright, exe = _browser()
    out, res = tiny_run
    n_figures = sum(len(d["figures"]) for d in res["results"]["systems"].values())
    html = out / "report.html"
    moved = tmp_path / "alone.html"  # self-contained: works without the folder beside it
    moved.write_bytes(html.read_bytes())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors, requests = [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(moved.as_uri())
            page.wait_for_load_state("load")
            imgs = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
            title = page.title()
            verdict_cells = page.eval_on_selector_all(".verdict", "els => els.map(e => e.textContent)")
        finally:
            browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert len(imgs) == n_figures > 0
    assert all(complete and width > 0 for complete, width in imgs)
    assert "claims" in title
    n_claims = sum(c["kind"] == "claim" for c in res["results"]["claims"])
    # the four verdict counts at the top, then the summary row and the section row of every claim
    assert len(verdict_cells) == 4 + 2 * n_claims
