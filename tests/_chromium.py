"""Headless Debian chromium through Playwright, shared by the browser tests (tests/test_docs.py, tests/test_jupyterlab.py)."""
from __future__ import annotations
import contextlib, os, shutil
import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

def missing(reason: str, fix: str):
    "Skip the test for a missing tool, or fail it under CI, where setup installs everything (`fix` says how)."
    if os.environ.get("CI"): pytest.fail(f"{reason}: {fix}")
    pytest.skip(reason)

@contextlib.contextmanager
def chromium_context(viewport: dict, route, fix: str):
    """One browser context of Debian's chromium (Playwright's own browsers are not downloaded), every request through
    `route`. Playwright's sync API cannot start while another instance runs: hold it for a module, not the session."""
    try: from playwright.sync_api import sync_playwright
    except ImportError: missing("the playwright package is not installed", fix)
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe: missing("chromium is not installed (apt-get install -y chromium)", fix)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        ctx = b.new_context(viewport=viewport)
        ctx.route("**/*", lambda r: route(ctx, r))
        try: yield ctx
        finally: ctx.close(); b.close()
