"""The digest HTML in a real browser (headless Chromium): no horizontal overflow on a 375 px
phone or a 600 px desktop pane, nothing executes, and screenshots for a human eye in
test-artifacts/ (digest-375.png, digest-600.png, digest-hostile-375.png, ...)."""
from __future__ import annotations

from pathlib import Path

import pytest

from digest.email.render import Renderer
from digest.store.settings import Settings
from tests.digest_samples import hostile, realistic

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def renderer():
    return Renderer(Settings(database_url="sqlite://", DIGEST_FROM="Paper Digest <digest@example.org>"))


def open_page(browser, html_path: Path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests: list[str] = []
    dialogs: list[str] = []

    def route(r):
        if r.request.url.startswith("file://"):
            r.continue_()
        else:                               # offline: no remote fonts, images or trackers
            requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(html_path.as_uri())
    page.wait_for_load_state("load")
    return page, requests, dialogs


@pytest.mark.parametrize("width", [375, 600])
@pytest.mark.parametrize("kind", ["digest", "digest-hostile"])
def test_no_horizontal_overflow(browser, renderer, tmp_path, width, kind):
    content = realistic(20) if kind == "digest" else hostile(60, 100_000)
    html = renderer.render(content).html
    path = tmp_path / f"{kind}.html"
    path.write_text(html, encoding="utf-8")
    page, requests, dialogs = open_page(browser, path, width)
    try:
        scroll_width, inner_width = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll_width <= inner_width, f"{kind} overflows at {width}px: {scroll_width} > {inner_width}"
        assert page.evaluate("window.__pwned === undefined")
        assert dialogs == [] and requests == []
        assert page.evaluate("document.querySelectorAll('script, img').length") == 0
        visible = page.evaluate("document.body.innerText")
        assert "Unsubscribe" in visible
        if kind == "digest":
            assert "23 new papers in 3 topics" in visible
            # the preheader is in the DOM but not shown
            assert page.evaluate("document.body.innerText.indexOf('Sparse Mixture-of-Experts Adapters for "
                                 "Vision-Language Instruction Tuning · ')") == -1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{kind}-{width}.png"), full_page=True)
    finally:
        page.close()


def test_nothing_new_note(browser, renderer, tmp_path):
    content = realistic(0)
    path = tmp_path / "nothing.html"
    path.write_text(renderer.render_nothing_new(content).html, encoding="utf-8")
    page, _, _ = open_page(browser, path, 375)
    try:
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert "Nothing new today" in page.evaluate("document.body.innerText")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "digest-nothing-new-375.png"), full_page=True)
    finally:
        page.close()
