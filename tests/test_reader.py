"""The reader's side, end to end on real components: the digest goes through the aiosmtpd sink,
its links are followed in Debian's Chromium against `digest web` served by uvicorn.

- A subscriber with a section cap of 2 opens "+ N more in this topic" from the RECEIVED email
  and reads every paper of that digest on its page (the ledger's papers, in the email's order).
- Sections follow the subscriber's topic order (not the config's, not the arXiv ids), Trending
  last, and the subject names them in that order.
- The public topic page and its Atom feed (parsed by feedparser) show no subscriber data; the
  pages answer conditional requests with 304.
"""
from __future__ import annotations

import re
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
import uvicorn

from digest import clock as app_clock
from digest.pipeline import send_now
from digest.store.db import session_scope
from digest.store.ledger import items_of
from digest.store.models import Digest, Paper
from digest.store.settings import Settings, reset_settings_cache
from digest.web.app import create_app
from tests.factories import add_paper, add_subscriber
from tests.smtp_server import smtp_sink

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def sink():
    yield from smtp_sink()


@pytest.fixture
def live(settings, monkeypatch, sink):
    """`digest web` on 127.0.0.1 (public URL = its address), mails to the sink, section cap 2."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("DIGEST_PUBLIC_URL", url)
    monkeypatch.setenv("DIGEST_DELIVERY", sink.url)
    monkeypatch.setenv("DIGEST_SECTION_CAP", "2")
    reset_settings_cache()
    s = Settings()
    server = uvicorn.Server(uvicorn.Config(create_app(s), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < end, "uvicorn did not start"
        time.sleep(0.02)
    yield s, url
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def seed(s, email="ada@example.org"):
    """Five medical, four vision-language papers, three Hugging Face trending papers; a
    subscriber whose topic order is the reverse of the config's (medical-segmentation comes
    first in topics.yaml). The lowest arXiv id is a medical paper, so sections in arXiv order
    or in config order both put medical first: only the subscriber's order passes."""
    now = app_clock.now()
    with session_scope(s) as session:
        for i in range(5):
            add_paper(session, f"2611.0{i}100", title=f"Tumor segmentation study {i}", seen=now - timedelta(hours=2),
                      matches={"medical-segmentation": 0.9 - i / 20},
                      abstract=f"Full abstract of the segmentation paper {i}. " + "More words. " * 60)
        for i in range(4):
            add_paper(session, f"2611.0{i}200", title=f"Vision-language model study {i}", seen=now - timedelta(hours=2),
                      matches={"vision-language": 0.9 - i / 20})
        for i in range(3):
            add_paper(session, f"2611.0{i}900", title=f"Trending paper {i}", seen=now - timedelta(hours=2),
                      upvotes=50 - i, hf_on=now.date())
        sub = add_subscriber(session, email, ["vision-language", "medical-segmentation"], trending=True)
        return sub.id


def html_part(msg) -> str:
    return msg.get_body(preferencelist=("html",)).get_content()


def text_part(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


def test_more_link_from_the_received_email_shows_every_paper(live, sink, browser):
    s, url = live
    sid = seed(s)
    report = send_now(s, ingest=False)
    assert report.send.sent == 1, report.send.errors
    (received,) = [m.parsed() for m in sink.messages]
    head = sink.messages[0].data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert max(len(line) for line in head.split("\r\n")) <= 78, head      # List-Unsubscribe folded
    assert "".join(str(received["List-Unsubscribe"]).split()).startswith(f"<{url}/unsubscribe/")

    # sections in the subscriber's order, Trending last, in the subject, the HTML and the text
    assert received["Subject"].startswith("12 new papers: Vision-language models, Medical image segmentation +1 more")
    html, text = html_part(received), text_part(received)
    h2 = [re.sub(r"<[^>]+>", "", h).split("&middot;")[0].strip() for h in re.findall(r"<h2[^>]*>(.*?)</h2>", html)]
    assert h2 == ["Vision-language models", "Medical image segmentation", "Trending on Hugging Face"]
    assert text.index("== Vision-language models") < text.index("== Medical image segmentation") \
        < text.index("== Trending on Hugging Face")
    # cap 2: the rest only counted, with a link to the digest's page at that section
    more = re.findall(r'<a href="([^"]+)"[^>]*>\+ (\d+) more in this topic</a>', html)
    assert [n for _, n in more] == ["2", "3"]          # Trending (3 papers) is not capped
    assert more[1][0].startswith(f"{url}/digest/") and more[1][0].endswith("#t-medical-segmentation")
    assert "View in browser" in html and f"{url}/digest/" in text.split("\n\n")[0]

    with session_scope(s) as session:
        did = session.query(Digest).filter_by(subscriber_id=sid).one().id
        carried = {i.paper_id for i in items_of(session, [did])[did]}
        titles = {p.id: p.title for p in session.query(Paper).filter(Paper.id.in_(carried))}
    assert len(carried) == 12

    page = browser.new_page(viewport={"width": 375, "height": 800})
    try:
        resp = page.goto(more[1][0])         # as the reader clicks it in the received email
        assert resp.status == 200
        headers = resp.headers
        assert headers["referrer-policy"] == "no-referrer" and "script-src 'self'" in headers["content-security-policy"]
        assert "private" in headers["cache-control"] and headers.get("etag")
        assert page.evaluate("location.hash") == "#t-medical-segmentation"
        assert page.evaluate("document.getElementById('t-medical-segmentation').getBoundingClientRect().top") < 50
        shown = page.evaluate("[...document.querySelectorAll('article.paper h3')].map(h => h.innerText)")
        assert sorted(shown) == sorted(titles.values())          # every paper of the digest, once
        sections = page.evaluate("[...document.querySelectorAll('section h2')].map(h => h.firstChild.textContent.trim())")
        assert sections == ["Vision-language models", "Medical image segmentation", "Trending on Hugging Face"]
        body = page.inner_text("main")
        assert "ada@example.org" not in body
        assert "Full abstract of the segmentation paper 4. More words." in body   # abstracts in full
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-digest-375.png"), full_page=True)
    finally:
        page.close()

    # cacheable: the same page again is a 304 by ETag and by date
    with httpx.Client(timeout=20) as c:
        first = c.get(more[1][0])
        again = c.get(more[1][0], headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        dated = c.get(more[1][0], headers={"If-Modified-Since": first.headers["last-modified"]})
        assert dated.status_code == 304
        stale = c.get(more[1][0], headers={"If-None-Match": '"nope"'})
        assert stale.status_code == 200
        # a changed or forged token is refused
        token = more[1][0].split("/digest/")[1].split("#")[0]
        bad = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert c.get(f"{url}/digest/{bad}").status_code == 400
        from digest import tokens
        assert c.get(f"{url}/digest/" + tokens.make_token(s.secret_key, "preferences", sid)).status_code == 400
        assert c.get(f"{url}/digest/" + tokens.make_token(s.secret_key, "digest", 999999)).status_code == 404
        # the right digest id without its subscriber's secret (an old link of a deleted or rotated
        # subscriber whose digest id came back) is refused
        did = tokens.read_token(s.secret_key, token, "digest").subject_id
        assert c.get(f"{url}/digest/" + tokens.make_token(s.secret_key, "digest", did)).status_code == 400
        assert c.get(f"{url}/digest/" + tokens.make_token(s.secret_key, "digest", did, bind="other")).status_code == 400


def test_topic_page_and_atom_feed_are_public_and_valid(live, sink):
    s, url = live
    seed(s, email="secret-reader@example.org")
    send_now(s, ingest=False)
    with httpx.Client(base_url=url, timeout=20) as c:
        page = c.get("/topics/medical-segmentation")
        assert page.status_code == 200 and "public" in page.headers["cache-control"]
        assert page.text.count('class="paper"') == 5
        assert "secret-reader" not in page.text and "/preferences/" not in page.text
        assert 'type="application/atom+xml"' in page.text
        assert c.get("/topics/medical-segmentation", headers={"If-None-Match": page.headers["etag"]}).status_code == 304
        assert c.get("/topics/no-such-topic").status_code == 404

        feed = c.get("/topics/medical-segmentation.atom")
        assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
        assert "secret-reader" not in feed.text
        parsed = feedparser.parse(feed.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version == "atom10"
        assert parsed.feed.id and parsed.feed.title and parsed.feed.updated
        assert any(link.rel == "self" for link in parsed.feed.links)
        assert len(parsed.entries) == 5
        for e in parsed.entries:
            assert e.id.startswith("tag:127.0.0.1,2026:paper/") and e.title and e.updated and e.link
            assert e.get("authors") or parsed.feed.get("author")
        ids = [e.id for e in parsed.entries]
        assert len(set(ids)) == 5
        # stable: the same ids on the next fetch, and after a paper's metadata changes
        with session_scope(s) as session:
            session.get(Paper, "2611.00100").title = "Tumor segmentation study 0, revised"
        again = feedparser.parse(c.get("/topics/medical-segmentation.atom").content)
        assert [e.id for e in again.entries] == ids
        assert "Tumor segmentation study 0, revised" in [e.title for e in again.entries]
