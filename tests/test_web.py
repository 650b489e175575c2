"""The subscriber web pages, served for real: uvicorn on 127.0.0.1 in a thread, the aiosmtpd
sink for the mails, headless Chromium for the forms, httpx for the abuse cases.

End to end: subscribe in the browser -> confirmation mail -> confirm page -> button -> digest
mail -> preferences link -> change topics -> the next digest follows -> one-click unsubscribe
POST -> the next send sends nothing. Screenshots at 375 and 1280 px in test-artifacts/web-*.png.
"""
from __future__ import annotations

import re
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn

from digest import clock as app_clock, tokens
from digest.store.db import session_scope
from digest.store.models import Subscriber
from digest.store.settings import Settings, reset_settings_cache
from digest.web.app import create_app
from tests.factories import add_paper, add_subscriber
from tests.smtp_server import smtp_sink

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@pytest.fixture
def sink():
    yield from smtp_sink()


class Live:
    def __init__(self, settings: Settings, url: str, sink):
        self.settings, self.url, self.sink = settings, url, sink

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20, follow_redirects=False)

    def sub(self, email: str) -> Subscriber | None:
        with session_scope(self.settings) as s:
            return s.query(Subscriber).filter_by(email=email).one_or_none()

    def mails_to(self, email: str):
        return [m.parsed() for m in self.sink.messages if email in m.rcpt_tos]

    def wait_mails(self, email: str, n: int, timeout: float = 10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.mails_to(email)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {n} mails to {email}, got {len(self.mails_to(email))}")


def serve(settings_env: dict, monkeypatch, sink, **app_kw):
    """Start the app on a pre-bound socket (its port is known before the settings are made)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("DIGEST_PUBLIC_URL", url)
    monkeypatch.setenv("DIGEST_DELIVERY", sink.url)
    reset_settings_cache()
    settings = Settings()
    config = uvicorn.Config(create_app(settings, **app_kw), log_level="warning", lifespan="off", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < end, "uvicorn did not start"
        time.sleep(0.02)
    return Live(settings, url, sink), server, thread, sock


@pytest.fixture
def live_factory(settings, monkeypatch, sink):
    started = []

    def make(**app_kw) -> Live:
        live, server, thread, sock = serve({}, monkeypatch, sink, **app_kw)
        started.append((server, thread, sock))
        return live

    yield make
    for server, thread, sock in started:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def live(live_factory) -> Live:
    return live_factory()


def csrf(client: httpx.Client, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    m = CSRF_RE.search(r.text)
    assert m, "no CSRF token in the form"
    return m.group(1)


def subscribe(client: httpx.Client, email: str, topics=("medical-segmentation",), tz="UTC", token=None):
    token = token or csrf(client, "/subscribe")
    return client.post("/subscribe", data={"csrf_token": token, "email": email, "name": "Ada",
                                           "topics": list(topics), "timezone": tz})


def text_part(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def link(text: str, kind: str) -> str:
    m = re.search(r"http://127\.0\.0\.1:\d+/" + kind + r"/[A-Za-z0-9_-]{60}", text)
    assert m, f"no {kind} link in:\n{text}"
    return m.group(0)


# ------------------------------------------------------------------ the browser, end to end

@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"{name} overflows at {width}px"
        page.screenshot(path=str(ARTIFACTS / f"web-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 900})


def assert_accessible(page) -> None:
    """Every visible form control has a label; no script at all; the language is set."""
    unlabeled = page.evaluate("""[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !(e.labels && e.labels.length)).map(e => e.name)""")
    assert unlabeled == []
    # no inline script anywhere; at most the external time-zone helper
    scripts = page.evaluate("[...document.querySelectorAll('script')].map(s => [s.src, s.textContent.trim()])")
    assert all(src.endswith("/tz.js") and not body for src, body in scripts), scripts
    assert page.evaluate("document.documentElement.lang") == "en"


def test_subscribe_confirm_preferences_unsubscribe_in_a_browser(live, browser):
    s = live.settings
    email = "ada@example.org"
    page = browser.new_page(viewport={"width": 375, "height": 900}, timezone_id="Europe/Berlin")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # subscribe through the form
        resp = page.goto(f"{live.url}/subscribe")
        assert resp.status == 200
        headers = resp.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"].split("script-src")[1].split(";")[0]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert_accessible(page)
        assert page.get_by_label("Vision-language models").count() == 1
        assert "Segmenting organs" in page.inner_text("form")
        shoot(page, "subscribe")
        page.get_by_label("Email address").fill(email)
        page.get_by_label("Name").fill("Ada <Lovelace>")
        page.get_by_label("Medical image segmentation").check()
        # prefilled from the browser's time zone (an external script; the CSP forbids inline ones)
        assert page.get_by_label("Time zone").input_value() == "Europe/Berlin"
        with page.expect_navigation():
            page.get_by_role("button", name="Subscribe").click()
        assert "Check your inbox" in page.inner_text("h1")
        shoot(page, "check-inbox")
        sub = live.sub(email)
        assert sub.status == "pending" and sub.topics == ["medical-segmentation"] and sub.timezone == "Europe/Berlin"
        assert sub.name == "Ada <Lovelace>"

        # the confirmation mail
        (mail,) = live.wait_mails(email, 1)
        assert mail["From"] == s.from_addr
        body = text_part(mail)
        assert "Medical image segmentation" in body
        confirm = link(body, "confirm")

        # GET shows a button and confirms nothing
        resp = page.goto(confirm)
        assert resp.status == 200 and resp.headers["referrer-policy"] == "no-referrer"
        assert live.sub(email).status == "pending"
        assert email in page.inner_text("main")
        shoot(page, "confirm")
        button = page.get_by_role("button", name="Yes, confirm my subscription")
        button.focus()                                   # the keyboard works
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "You are subscribed" in page.inner_text("h1")
        shoot(page, "confirmed")
        assert live.sub(email).status == "active"

        # the first digest
        from digest.pipeline import send_now

        now = app_clock.now()
        with session_scope(s) as session:
            add_paper(session, "2611.00001", title="Tumor segmentation with a U-Net",
                      abstract="We segment tumors in CT with a U-Net.", seen=now - timedelta(hours=1))
            add_paper(session, "2611.00002", title="Sparse attention for long context transformers",
                      abstract="Efficient attention for long context.", seen=now - timedelta(hours=1))
        report = send_now(s, ingest=False)
        assert report.send.sent == 1
        digest1 = live.wait_mails(email, 2)[-1]
        text1 = text_part(digest1)
        assert "Tumor segmentation with a U-Net" in text1
        assert "Sparse attention for long context" not in text1
        prefs = link(text1, "preferences")

        # change the topics in the browser
        resp = page.goto(prefs)
        assert resp.status == 200 and resp.headers["referrer-policy"] == "no-referrer"
        assert_accessible(page)
        assert page.get_by_label("Medical image segmentation").is_checked()
        shoot(page, "preferences")
        page.get_by_label("Medical image segmentation").uncheck()
        page.get_by_label("Efficient attention").check()
        page.get_by_label("Time zone").select_option("America/New_York")
        with page.expect_navigation():
            page.get_by_role("button", name="Save preferences").click()
        assert "Saved" in page.inner_text("main")
        shoot(page, "preferences-saved")
        sub = live.sub(email)
        assert sub.topics == ["efficient-attention"] and sub.timezone == "America/New_York" and sub.status == "active"

        # the next digest follows the new topics
        later = app_clock.now()
        with session_scope(s) as session:
            add_paper(session, "2611.00003", title="Organ segmentation with a U-Net", seen=later)
            add_paper(session, "2611.00004", title="Linear attention for state space model training", seen=later)
        report = send_now(s, ingest=False, edition=app_clock.now().date() + timedelta(days=1))
        assert report.send.sent == 1
        digest2 = live.wait_mails(email, 3)[-1]
        text2 = text_part(digest2)
        assert "Linear attention for state space model training" in text2
        assert "Organ segmentation" not in text2

        # the unsubscribe page (footer link) offers a button
        unsub = link(text2, "unsubscribe")
        resp = page.goto(unsub)
        assert resp.status == 200
        assert page.get_by_role("button", name="Unsubscribe").count() == 1
        shoot(page, "unsubscribe")
        assert live.sub(email).status == "active"

        # one-click unsubscribe, as a mail client does it: a bare POST, no cookies, no CSRF
        header = str(digest2["List-Unsubscribe"])
        # folded inside the brackets (lines <= 78 characters); RFC 2369: whitespace there is ignored
        target = "".join(re.search(r"<(http[^>]+)>", header).group(1).split())
        assert target == unsub
        assert digest2["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        for _ in range(2):  # idempotent
            r = httpx.post(target, content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=20)
            assert r.status_code == 200, r.text
            assert "You are unsubscribed" in r.text
        assert live.sub(email).status == "unsubscribed"
        page.goto(unsub)
        assert "You are unsubscribed" in page.inner_text("h1")
        shoot(page, "unsubscribed")

        # nothing more is sent
        before = len(live.sink.messages)
        with session_scope(s) as session:
            add_paper(session, "2611.00005", title="Sparse attention everywhere", seen=app_clock.now())
        report = send_now(s, ingest=False, edition=app_clock.now().date() + timedelta(days=2))
        assert report.send.sent == 0
        time.sleep(0.2)
        assert len(live.sink.messages) == before
        assert errors == []
    finally:
        page.close()


def test_subscribe_form_errors_are_shown_and_nothing_is_stored(live, browser):
    page = browser.new_page(viewport={"width": 375, "height": 900})
    try:
        page.goto(f"{live.url}/subscribe")
        page.get_by_label("Email address").fill("not-an-address")
        with page.expect_navigation():
            page.get_by_role("button", name="Subscribe").click()
        alert = page.get_by_role("alert").inner_text()
        assert "valid email" in alert and "at least one topic" in alert
        assert page.get_by_label("Email address").input_value() == "not-an-address"
        shoot(page, "subscribe-errors")
        assert live.sink.messages == []
    finally:
        page.close()


# ------------------------------------------------------------------ httpx: the abuse cases

def make_sub(live: Live, email: str, status: str = "active", topics=("medical-segmentation",)) -> int:
    with session_scope(live.settings) as session:
        return add_subscriber(session, email, list(topics), status=status).id


def link_token(live: Live, purpose: str, sid: int, *args, **kw) -> str:
    """A genuine token for subscriber ``sid`` (bound to their link secret)."""
    with session_scope(live.settings) as session:
        secret = session.get(Subscriber, sid).link_secret
    from digest.web.mails import confirm_bind

    with session_scope(live.settings) as session:
        bind = confirm_bind(session.get(Subscriber, sid)) if purpose == "confirm" else secret
    return tokens.make_token(live.settings.secret_key, purpose, sid, *args, bind=bind, **kw)


def test_get_confirm_does_not_confirm_and_post_does(live):
    with live.client() as c:
        assert subscribe(c, "bob@example.org").status_code == 200
        url = link(text_part(live.wait_mails("bob@example.org", 1)[0]), "confirm")
        path = url.removeprefix(live.url)
        for _ in range(2):
            r = c.get(path)
            assert r.status_code == 200 and "Confirm your subscription" in r.text
            assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
        assert c.head(path).status_code in (200, 405)
        assert live.sub("bob@example.org").status == "pending"
        token = CSRF_RE.search(r.text).group(1)
        r = c.post(path, data={"csrf_token": token})
        assert r.status_code == 200 and "You are subscribed" in r.text
        assert live.sub("bob@example.org").status == "active"
        r = c.post(path, data={"csrf_token": token})  # idempotent
        assert r.status_code == 200 and live.sub("bob@example.org").status == "active"


def test_tampered_tokens_are_refused_with_a_clear_page(live):
    sid = make_sub(live, "carol@example.org")
    good = {p: link_token(live, p, sid) for p in ("unsubscribe", "preferences")}
    good["confirm"] = link_token(live, "confirm", sid, 3600)
    with live.client() as c:
        for purpose, token in good.items():
            flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
            for bad in (flipped, token[:-1], "x" * 48, token + "A"):
                r = c.get(f"/{purpose}/{bad}")
                assert r.status_code in (400, 404), (purpose, bad, r.status_code)
                assert "not valid" in r.text or "nothing here" in r.text.lower()
            r = c.post(f"/unsubscribe/{flipped}" if purpose == "unsubscribe" else f"/{purpose}/{flipped}",
                       content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert r.status_code == 400 and "This link is not valid" in r.text
        # a token signed with another key
        forged = tokens.make_token("another-key", "unsubscribe", sid)
        r = c.post(f"/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 400
    assert live.sub("carol@example.org").status == "active"


def test_wrong_purpose_tokens_are_refused(live):
    sid = make_sub(live, "dan@example.org", status="pending")
    with live.client() as c:
        prefs = link_token(live, "preferences", sid)
        unsub = link_token(live, "unsubscribe", sid)
        r = c.post(f"/unsubscribe/{prefs}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 400 and "another page" in r.text
        r = c.get(f"/preferences/{unsub}")
        assert r.status_code == 400
        r = c.get(f"/confirm/{unsub}")
        assert r.status_code == 400
        token = csrf(c, "/subscribe")
        r = c.post(f"/confirm/{prefs}", data={"csrf_token": token})
        assert r.status_code == 400
    assert live.sub("dan@example.org").status == "pending"


def test_expired_confirm_links_are_refused(live):
    sid = make_sub(live, "erin@example.org", status="pending")
    with live.client() as c:
        token = csrf(c, "/subscribe")
        # its own expiry has passed
        expired = link_token(live, "confirm", sid, 3600, now=time.time() - 7200)
        # no expiry of its own, but older than the 3-day confirm window
        old = link_token(live, "confirm", sid, 30 * 86400, now=time.time() - 4 * 86400)
        for t in (expired, old):
            assert c.get(f"/confirm/{t}").status_code == 410
            r = c.post(f"/confirm/{t}", data={"csrf_token": token})
            assert r.status_code == 410 and "expired" in r.text
        assert live.sub("erin@example.org").status == "pending"
        fresh = link_token(live, "confirm", sid, 3 * 86400, now=time.time() - 2 * 86400)
        assert c.post(f"/confirm/{fresh}", data={"csrf_token": token}).status_code == 200
    assert live.sub("erin@example.org").status == "active"


def test_forms_without_a_valid_csrf_token_are_refused(live):
    sid = make_sub(live, "fay@example.org", status="pending")
    paths = {"/subscribe": {"email": "x@example.org", "topics": "vision-language", "timezone": "UTC"},
             f"/confirm/{link_token(live, 'confirm', sid, 3600)}": {},
             f"/preferences/{link_token(live, 'preferences', sid)}": {"topics": "vision-language",
                                                                              "timezone": "UTC", "delivery": "active"},
             f"/unsubscribe/{link_token(live, 'unsubscribe', sid)}": {}}
    with live.client() as c:
        token = csrf(c, "/subscribe")
        for path, data in paths.items():
            assert c.post(path, data=data).status_code == 403, path                       # no token
            assert c.post(path, data={**data, "csrf_token": "0" * 64}).status_code == 403, path  # wrong token
        with live.client() as other:                                                     # token without its cookie
            for path, data in paths.items():
                r = other.post(path, data={**data, "csrf_token": token})
                assert r.status_code == 403 and "This form has expired" in r.text
    sub = live.sub("fay@example.org")
    assert sub.status == "pending" and sub.topics == ["medical-segmentation"]
    assert live.sink.messages == []


def test_the_subscribe_response_does_not_tell_whether_an_address_is_known(live):
    make_sub(live, "known@example.org", status="active", topics=["vision-language"])
    make_sub(live, "gone@example.org", status="unsubscribed")
    with live.client() as c:
        token = csrf(c, "/subscribe")
        responses = {}
        for email in ("new@example.org", "known@example.org", "gone@example.org"):
            r = subscribe(c, email, topics=["efficient-attention"], token=token)
            body = r.text.replace(email, "EMAIL")
            responses[email] = (r.status_code, body, sorted((k, v) for k, v in r.headers.items()
                                                            if k not in ("date", "content-length")))
    assert len({repr(v) for v in responses.values()}) == 1
    assert responses["new@example.org"][0] == 200
    # the live subscription was not touched; its owner is told, the others get a confirm link
    assert live.sub("known@example.org").status == "active"
    assert live.sub("known@example.org").topics == ["vision-language"]
    assert "already subscribed" in text_part(live.wait_mails("known@example.org", 1)[0])
    for email in ("new@example.org", "gone@example.org"):
        assert live.sub(email).status == "pending"
        assert "/confirm/" in text_part(live.wait_mails(email, 1)[0])


def test_subscribing_is_rate_limited_per_address_and_per_ip(live_factory):
    live = live_factory(address_limit=5, ip_limit=20)
    with live.client() as c:
        token = csrf(c, "/subscribe")
        codes = [subscribe(c, "gus@example.org", token=token).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        r = subscribe(c, "GUS@Example.org", token=token)   # the same address, spelled otherwise
        assert r.status_code == 429 and "Too many requests" in r.text
        codes = [subscribe(c, f"u{i}@example.org", token=token).status_code for i in range(14)]
        assert codes == [200] * 13 + [429]                  # 20 requests from this IP in the hour
        assert subscribe(c, "someone-else@example.org", token=token).status_code == 429
    assert len(live.wait_mails("gus@example.org", 5)) == 5


def test_invalid_input_is_refused(live):
    with live.client() as c:
        token = csrf(c, "/subscribe")
        for data, needle in [({"email": "a@", "topics": "vision-language"}, "valid email"),
                             ({"email": "a@example.org", "topics": "no-such-topic"}, "from the list"),
                             ({"email": "a@example.org", "topics": "vision-language", "timezone": "Mars/Olympus"}, "time zone"),
                             ({"email": "a@example.org"}, "at least one topic")]:
            r = c.post("/subscribe", data={"csrf_token": token, **data})
            assert r.status_code == 400 and needle in r.text, (data, r.text)
        r = c.post("/subscribe", data={"csrf_token": token, "email": "<script>@x", "name": "<b>x</b>",
                                       "topics": "vision-language"})
        assert "<script>" not in r.text and "&lt;script&gt;" in r.text
    assert live.sub("a@example.org") is None and live.sink.messages == []


def test_preferences_pause_resume_and_resubscribe(live):
    """Pause and resume are the subscriber's own; coming back after unsubscribing (issue 17 §7)
    needs the double opt-in again: the preferences link alone never re-activates."""
    sid = make_sub(live, "hal@example.org", status="active")
    path = f"/preferences/{link_token(live, 'preferences', sid)}"
    form = {"topics": ["vision-language", "efficient-attention"], "timezone": "Asia/Tokyo"}
    with live.client() as c:
        token = csrf(c, path)
        for delivery in ("paused", "active", "unsubscribed"):
            r = c.post(path, data={"csrf_token": token, **form, "delivery": delivery})
            assert r.status_code == 200 and "Saved" in r.text
            assert live.sub("hal@example.org").status == delivery
        assert "Subscribe again" in c.get(path).text
        r = c.post(path, data={"csrf_token": token, **form, "delivery": "paused"})   # not a way back either
        assert r.status_code == 200 and live.sub("hal@example.org").status == "unsubscribed"
        r = c.post(path, data={"csrf_token": token, **form, "delivery": "active"})
        assert r.status_code == 200 and "Check your inbox" in r.text
        assert live.sub("hal@example.org").status == "pending"
        r = c.post(path, data={"csrf_token": token, **form, "delivery": "active"})   # still only pending
        assert live.sub("hal@example.org").status == "pending"
        confirm = link(text_part(live.wait_mails("hal@example.org", 2)[-1]), "confirm").removeprefix(live.url)
        r = c.post(confirm, data={"csrf_token": token})
        assert r.status_code == 200 and "You are subscribed" in r.text
        r = c.post(path, data={"csrf_token": token, "topics": "vision-language", "timezone": "UTC", "delivery": "bounced"})
        assert r.status_code == 400
    sub = live.sub("hal@example.org")
    assert sub.status == "active" and sub.confirmed_at is not None
    assert sub.topics == ["vision-language", "efficient-attention"] and sub.timezone == "Asia/Tokyo"