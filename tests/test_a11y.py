"""Accessibility, measured by axe-core (the `axe-playwright-python` package) in Debian's
Chromium: no serious or critical violation on any email variant (daily, weekly, with Trending,
nothing new) or any page of `digest web`, in light and in dark mode. The confirmation email
is text only (nothing for axe); the confirmation page is checked.

Also: the email's real heading structure, links that name their paper, dark-mode colours
actually applied, "· N new" on the section line at 320 px, and screenshots in docs/.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from digest import tokens
from digest.email.render import Renderer
from digest.store.db import session_scope
from digest.store.models import Digest, Subscriber
from digest.web.mails import confirm_bind
from tests.test_reader import browser, live, seed, sink  # noqa: F401 (fixtures)

axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

_REPO = Path(__file__).resolve().parent.parent
# Screenshots go to test-artifacts/; UPDATE_DOCS_SCREENSHOTS=1 writes the ones docs/ shows.
DOCS = _REPO / ("docs" if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1" else "test-artifacts")
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def serious(page) -> list[str]:
    results = axe_module.Axe().run(page)
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: {v['nodes'][0]['html'][:120]})"
            for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]


def email_variants() -> dict[str, object]:
    from bench.a11y import email_variants as variants
    from digest.store.settings import Settings

    return variants(Settings(database_url="sqlite://", DIGEST_FROM="Paper Digest <digest@example.org>",
                             DIGEST_PUBLIC_URL="https://digest.example.org"))


@pytest.fixture(scope="module")
def emails():
    return email_variants()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("variant", ["daily", "weekly", "trending", "nothing-new"])
def test_email_has_no_serious_axe_violation(browser, emails, tmp_path, variant, scheme):
    path = tmp_path / f"{variant}.html"
    path.write_text(emails[variant], encoding="utf-8")
    page = browser.new_page(viewport={"width": 600, "height": 900}, color_scheme=scheme)
    try:
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file://") else r.abort())
        page.goto(path.as_uri())
        assert serious(page) == []
        if variant != "nothing-new":
            assert page.locator("h1").count() == 1 and page.locator("h2").count() >= 3
            assert page.locator("h3").count() >= 3
            # every PDF / HF page / Code link names its paper
            names = page.evaluate("""[...document.querySelectorAll('a')].filter(a => ['PDF', 'HF page', 'Code']
                .includes(a.textContent.trim())).map(a => a.getAttribute('aria-label') || '')""")
            assert names and all(n.split(": ", 1)[0] in ("PDF", "HF page", "Code") and len(n) > 12 for n in names)
        bg = page.evaluate("getComputedStyle(document.querySelector('.pd-body')).backgroundColor")
        assert bg == ("rgb(17, 24, 39)" if scheme == "dark" else "rgb(238, 240, 244)")
    finally:
        page.close()


def test_section_count_stays_on_the_heading_line_at_320px(browser, emails, tmp_path):
    path = tmp_path / "daily.html"
    path.write_text(emails["daily"], encoding="utf-8")
    page = browser.new_page(viewport={"width": 320, "height": 900})
    try:
        page.goto(path.as_uri())
        # the count's box starts on the heading's last line: same bottom as the heading text
        gaps = page.evaluate("""[...document.querySelectorAll('h2')].map(h => {
            const spans = h.querySelectorAll('span'); const count = spans[spans.length - 1];
            const r = count.getClientRects(); const words = h.getClientRects();
            return r.length === 1 ? Math.abs(r[0].bottom - words[words.length - 1].bottom) : 99; })""")
        assert gaps and all(g < 4 for g in gaps), gaps
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        page.close()


def test_screenshots_for_the_docs(browser, emails, tmp_path):
    """email-{320,375,600}-{light,dark}.png: the daily digest as a person sees it (see DOCS)."""
    path = tmp_path / "daily.html"
    path.write_text(emails["daily"], encoding="utf-8")
    DOCS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        for width in (320, 375, 600):
            page = browser.new_page(viewport={"width": width, "height": 1400}, color_scheme=scheme)
            try:
                page.goto(path.as_uri())
                assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
                page.screenshot(path=str(DOCS / f"email-{width}-{scheme}.png"), full_page=False)
            finally:
                page.close()


def test_every_page_has_no_serious_axe_violation(live, sink, browser):
    s, url = live
    sid = seed(s)
    from digest.pipeline import send_now

    assert send_now(s, ingest=False).send.sent == 1
    with session_scope(s) as session:
        did = session.query(Digest).filter_by(subscriber_id=sid).one().id
        pending = Subscriber(email="new@example.org", topics=["vision-language"], status="pending")
        session.add(pending)
        session.flush()
        pending_id = pending.id
        bind, pending_bind = session.get(Subscriber, sid).link_secret, confirm_bind(pending)
    prefs = f"{url}/preferences/{tokens.make_token(s.secret_key, 'preferences', sid, bind=bind)}"
    unsub = f"{url}/unsubscribe/{tokens.make_token(s.secret_key, 'unsubscribe', sid, bind=bind)}"
    confirm = f"{url}/confirm/{tokens.make_token(s.secret_key, 'confirm', pending_id, 3600, bind=pending_bind)}"
    pages = {
        "subscribe": f"{url}/subscribe", "confirm": confirm, "preferences": prefs, "unsubscribe": unsub,
        "digest": f"{url}/digest/{tokens.make_token(s.secret_key, 'digest', did, bind=bind)}",
        "topic": f"{url}/topics/medical-segmentation", "not-found": f"{url}/nowhere",
        "bad-link": f"{url}/preferences/{'A' * 60}",
    }
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 375, "height": 900}, color_scheme=scheme)
        try:
            for name, target in pages.items():
                page.goto(target)
                assert serious(page) == [], f"{name} ({scheme})"
                if name in ("digest", "topic"):
                    page.screenshot(path=str(DOCS / f"web-{name}-375-{scheme}.png"))
            # forms after a mistake: the fields carry aria-invalid and point at the error list
            page.goto(f"{url}/subscribe")
            page.get_by_label("Email address").fill("not an address")
            with page.expect_navigation():
                page.get_by_role("button", name="Subscribe").click()
            assert page.get_attribute("#email", "aria-invalid") == "true"
            assert page.get_attribute("#email", "aria-describedby") == "form-errors"
            assert page.get_attribute("#topic-medical-segmentation", "aria-invalid") == "true"
            assert serious(page) == [], f"subscribe with errors ({scheme})"
            page.goto(prefs)
            if scheme == "light":
                page.screenshot(path=str(DOCS / "web-preferences-375.png"), full_page=True)
            page.fill("#send_time", "25:99")
            with page.expect_navigation():
                page.get_by_role("button", name="Save preferences").click()
            assert page.get_attribute("#send_time", "aria-invalid") == "true"
            assert serious(page) == [], f"preferences with errors ({scheme})"
        finally:
            page.close()


def test_preferences_edit_everything_the_cli_can(live, sink, browser):
    s, url = live
    sid = seed(s)
    with session_scope(s) as session:
        bind = session.get(Subscriber, sid).link_secret
    prefs = f"{url}/preferences/{tokens.make_token(s.secret_key, 'preferences', sid, bind=bind)}"
    page = browser.new_page(viewport={"width": 375, "height": 900})
    try:
        page.goto(prefs)
        assert "The daily digest of Vision-language models and Medical image segmentation, then Trending" \
            in page.inner_text("#next-delivery")
        # reorder: medical first, add efficient attention third; weekly on Friday at 07:30 Berlin, no Trending
        page.fill("#order-medical-segmentation", "1")
        page.fill("#order-vision-language", "2")
        page.check("#topic-efficient-attention")
        page.fill("#order-efficient-attention", "3")
        page.check("#frequency-weekly")
        page.select_option("#weekly_day", "4")
        page.fill("#send_time", "7:30")
        page.select_option("#timezone", "Europe/Berlin")
        page.uncheck("#trending")
        with page.expect_navigation():
            page.get_by_role("button", name="Save preferences").click()
        assert "Saved" in page.inner_text("main")
        nxt = page.inner_text("#next-delivery")
        assert "The weekly digest of Medical image segmentation, Vision-language models and Efficient attention" in nxt
        assert "Friday" in nxt and "07:30 (Europe/Berlin)" in nxt and "Trending" not in nxt
        with session_scope(s) as session:
            sub = session.get(Subscriber, sid)
            assert sub.topics == ["medical-segmentation", "vision-language", "efficient-attention"]
            assert (sub.frequency, sub.weekly_day, sub.send_time, sub.timezone, sub.trending) == \
                ("weekly", 4, "07:30", "Europe/Berlin", False)
        # the form shows the topics in the saved order, and pausing says so
        order = page.evaluate("[...document.querySelectorAll('input[name=topics]')].map(i => i.value)")
        assert order[:3] == ["medical-segmentation", "vision-language", "efficient-attention"]
        page.check("#delivery-paused")
        with page.expect_navigation():
            page.get_by_role("button", name="Save preferences").click()
        assert "paused" in page.inner_text("#next-delivery")
    finally:
        page.close()
    # the confirmation page lists the topics being confirmed
    with session_scope(s) as session:
        p = Subscriber(email="new@example.org", topics=["efficient-attention", "vision-language"], status="pending")
        session.add(p)
        session.flush()
        pid, pbind = p.id, confirm_bind(p)
    r = httpx.get(f"{url}/confirm/{tokens.make_token(s.secret_key, 'confirm', pid, 3600, bind=pbind)}", timeout=20)
    assert r.status_code == 200
    assert re.search(r"<li>Efficient attention</li>\s*<li>Vision-language models</li>", r.text)


def test_renderer_keeps_abstracts_in_the_text_part_when_the_html_budget_cuts_them(settings):
    from tests.digest_samples import realistic

    content = realistic(40)
    full = Renderer(settings).render(content)
    settings.max_html_bytes = len(full.html.encode()) - 2000       # too big: abstracts shrink
    small = Renderer(settings).render(content)
    phrase = "Across eleven benchmarks"          # past the 160 characters of the shorter abstract level
    assert small.html.count(phrase) < full.html.count(phrase) == 40
    assert small.text.count(phrase) == full.text.count(phrase) == 40


def test_why_line_speaks_the_readers_words():
    from digest.email.why import why_line

    line = why_line(["U-Net", "~tumor segmentation", "category:eess.IV", "author:Olaf Ronneberger",
                     "semantic:0.52 z=+3.1"])
    assert line == ("mentions “U-Net”; words related to tumor segmentation; close in meaning to the topic; "
                    "arXiv category Image and Video Processing (eess.IV); by Olaf Ronneberger")
    assert "category:" not in why_line(["category:cs.XX"]) and why_line([]) == ""


def test_view_in_browser_only_when_there_is_something_to_view(settings):
    from tests.digest_samples import realistic

    r = Renderer(settings)
    with_page = realistic(4)
    with_page.view_url = "https://digest.example.org/digest/tok"
    out = r.render(with_page)
    votes = out.html.count("https://digest.example.org/digest/tok?vote=")      # two per shown paper
    assert votes and votes % 2 == 0
    assert out.html.count("https://digest.example.org/digest/tok") - votes == 2   # top, "+ 3 more" (#t-vlm)
    assert 'href="https://digest.example.org/digest/tok#t-vlm"' in out.html
    assert out.text.startswith("View in browser, with every paper of this digest:\nhttps://digest.example.org/digest/tok")
    assert "https://digest.example.org/digest/tok#t-vlm" in out.text
    empty = realistic(0)
    empty.view_url = "https://digest.example.org/digest/tok"
    assert "View in browser" not in r.render_nothing_new(empty).html
    assert "View in browser" not in r.render(realistic(4)).html          # no page (previews): plain text
    assert "+ 3 more in this topic" in r.render(realistic(4)).html
