"""Issue 17 §1 and §7 (and issue 12 §6 HEAD): the attacks on `digest web`, served for real
(uvicorn on 127.0.0.1, the aiosmtpd sink, the CLI in a subprocess). Each test failed on the
code before the fix."""
from __future__ import annotations

import base64
import re
import struct
import threading

import httpx
import pytest
from sqlalchemy import text

from digest import tokens
from digest.store.db import get_engine, session_scope
from digest.store.models import Subscriber
from tests.test_cli import digest
from tests.test_web import CSRF_RE, csrf, link, link_token, make_sub, subscribe, text_part
from tests.test_web import live, live_factory, sink  # noqa: F401 - fixtures

HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


def subscribe_and_confirm(live, c, email: str) -> str:
    """Subscribe through the form, confirm through the mailed link; the preferences path the
    confirmation page hands out."""
    n = len(live.mails_to(email))
    assert subscribe(c, email).status_code == 200
    confirm = link(text_part(live.wait_mails(email, n + 1)[-1]), "confirm").removeprefix(live.url)
    r = c.post(confirm, data={"csrf_token": CSRF_RE.search(c.get(confirm).text).group(1)})
    assert r.status_code == 200 and "You are subscribed" in r.text
    return re.search(r'href="(/preferences/[A-Za-z0-9_-]+)"', r.text).group(1)


def test_a_deleted_subscribers_links_never_reach_the_next_subscriber(live):
    with live.client() as c:
        old_prefs = subscribe_and_confirm(live, c, "first@example.org")
        assert c.get(old_prefs).status_code == 200
        digest("subscribers", "remove", "first@example.org", "--delete", check=0)
        new_prefs = subscribe_and_confirm(live, c, "second@example.org")
        r = c.get(old_prefs)
        assert r.status_code == 404 and "second@example.org" not in r.text and "no longer valid" in r.text
        token = CSRF_RE.search(c.get(new_prefs).text).group(1)
        r = c.post(old_prefs, data={"csrf_token": token, "topics": "vision-language", "timezone": "UTC",
                                    "delivery": "unsubscribed"})
        assert r.status_code == 404
    assert live.sub("second@example.org").status == "active"
    assert live.sub("second@example.org").topics == ["medical-segmentation"]


def test_rotating_a_secret_kills_every_link_sent_so_far(live):
    sid = make_sub(live, "rot@example.org")
    old = {p: link_token(live, p, sid) for p in ("unsubscribe", "preferences")}
    with live.client() as c:
        assert all(c.get(f"/{p}/{t}").status_code == 200 for p, t in old.items())
        out = digest("subscribers", "rotate-secret", "rot@example.org", check=0)
        assert "earlier links no longer work" in out.stdout
        for p, t in old.items():
            assert c.get(f"/{p}/{t}").status_code == 404
        r = c.post(f"/unsubscribe/{old['unsubscribe']}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 404
        assert c.get(f"/preferences/{link_token(live, 'preferences', sid)}").status_code == 200
    assert live.sub("rot@example.org").status == "active"
    assert digest("subscribers", "rotate-secret", "ghost@example.org").returncode == 2


def test_links_sent_before_the_upgrade_still_unsubscribe_and_do_nothing_else(live):
    """Version-1 links (no binding) of subscribers that existed before migration 0004."""
    sid = make_sub(live, "old@example.org")
    with session_scope(live.settings) as s:
        s.get(Subscriber, sid).legacy_links = True
    key = live.settings.secret_key.encode()

    def v1(purpose: str) -> str:
        import hashlib
        import hmac

        payload = struct.pack(">BBQII", 1, tokens.PURPOSES[purpose], sid, 0, 0)
        mac = hmac.new(key, b"digest.token.v1\x00" + purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(payload + mac).decode()

    with live.client() as c:
        assert c.get(f"/preferences/{v1('preferences')}").status_code == 404
        r = c.post(f"/unsubscribe/{v1('unsubscribe')}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200 and live.sub("old@example.org").status == "unsubscribed"


def test_the_unsubscribe_page_hands_out_no_way_back_without_confirmation(live):
    sid = make_sub(live, "quit@example.org")
    unsub = f"/unsubscribe/{link_token(live, 'unsubscribe', sid)}"
    with live.client() as c:
        r = c.post(unsub, data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200 and "You are unsubscribed" in r.text
        for page in (r.text, c.get(unsub).text):
            assert "/preferences/" not in page and 'href="/subscribe"' in page
        # the preferences link from an older digest cannot re-activate either
        prefs = f"/preferences/{link_token(live, 'preferences', sid)}"
        token = csrf(c, prefs)
        r = c.post(prefs, data={"csrf_token": token, "topics": "vision-language", "timezone": "UTC",
                                "delivery": "active"})
        assert r.status_code == 200 and "Check your inbox" in r.text
        assert live.sub("quit@example.org").status == "pending"
        # a confirm link issued before the unsubscribe does not bring them back either
    assert "/confirm/" in text_part(live.wait_mails("quit@example.org", 1)[0])


def test_a_confirm_link_from_before_an_unsubscribe_is_dead(live):
    with live.client() as c:
        subscribe_and_confirm(live, c, "twice@example.org")
        first = link(text_part(live.mails_to("twice@example.org")[0]), "confirm").removeprefix(live.url)
        sid = live.sub("twice@example.org").id
        r = c.post(f"/unsubscribe/{link_token(live, 'unsubscribe', sid)}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200
        assert subscribe(c, "twice@example.org").status_code == 200          # pending again
        token = CSRF_RE.search(c.get("/subscribe").text).group(1)
        r = c.post(first, data={"csrf_token": token})
        assert r.status_code == 404 and live.sub("twice@example.org").status == "pending"


def test_five_concurrent_subscribes_of_one_new_address_never_fail(live):
    with live.client() as c:
        token = csrf(c, "/subscribe")
        cookies = dict(c.cookies)
    for round_ in range(4):
        email = f"race{round_}@example.org"
        barrier = threading.Barrier(5)
        codes: list[int] = []

        def one():
            with httpx.Client(base_url=live.url, cookies=cookies, timeout=30) as cc:
                barrier.wait()
                codes.append(cc.post("/subscribe", data={"csrf_token": token, "email": email, "name": "R",
                                                         "topics": "vision-language", "timezone": "UTC"}).status_code)

        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert codes == [200] * 5, codes
        assert live.sub(email).status == "pending"


def _signed(key: str, purpose: str, sid: int) -> str:
    """A correctly signed token for an id beyond the database's integer range (make_token now
    refuses to make one; the code before the fix made them)."""
    try:
        return tokens.make_token(key, purpose, sid)
    except ValueError:
        pass
    payload = tokens._PAYLOAD.pack(2, tokens.PURPOSES[purpose], sid, 0, 0)
    raw_key = key.encode()
    signed = payload + tokens._bind_tag(raw_key, purpose, payload, None)
    return base64.urlsafe_b64encode(signed + tokens._mac(raw_key, 2, purpose, signed)).decode()


def test_a_token_for_a_huge_id_is_a_clear_404(live):
    with live.client() as c:
        for purpose in ("preferences", "unsubscribe", "confirm"):
            for sid in (2**63 + 5, 2**64 - 1, 2**63 - 1, 2**31):
                r = c.get(f"/{purpose}/{_signed(live.settings.secret_key, purpose, sid)}")
                assert r.status_code in ((404, 410) if purpose == "confirm" else (404,)), (purpose, sid, r.status_code)


def test_a_500_carries_the_security_headers_and_no_traceback(live):
    sid = make_sub(live, "err@example.org")
    path = f"/preferences/{link_token(live, 'preferences', sid)}"
    with get_engine(live.settings.database_url).begin() as conn:
        conn.execute(text("ALTER TABLE subscribers RENAME TO subscribers_gone"))
    try:
        with live.client() as c:
            r = c.get(path)
            assert r.status_code == 500
            for h in HEADERS:
                assert h in r.headers, h
            assert "Traceback" not in r.text and "subscribers" not in r.text
            assert "Something went wrong" in r.text
    finally:
        with get_engine(live.settings.database_url).begin() as conn:
            conn.execute(text("ALTER TABLE subscribers_gone RENAME TO subscribers"))


def test_head_answers_like_get_without_a_body(live):
    with live.client() as c:
        for path in ("/", "/subscribe"):
            get, head = c.get(path), c.head(path)
            assert head.status_code == get.status_code and head.status_code in (200, 303), (path, head.status_code)
            assert head.content == b""
            assert head.headers.get("content-type") == get.headers.get("content-type")


def test_sub_addresses_count_as_one_mailbox(live_factory):
    live = live_factory(address_limit=5, ip_limit=100)
    with live.client() as c:
        token = csrf(c, "/subscribe")
        codes = [subscribe(c, f"target+{i}@example.org", token=token).status_code for i in range(8)]
        assert codes == [200] * 5 + [429] * 3
        assert subscribe(c, "Target@example.org", token=token).status_code == 429
        assert subscribe(c, "other@example.org", token=token).status_code == 200


def _post_from(live, token, cookies, email, xff):
    with httpx.Client(base_url=live.url, cookies=cookies, timeout=20) as c:
        return c.post("/subscribe", headers={"X-Forwarded-For": xff},
                      data={"csrf_token": token, "email": email, "topics": "vision-language", "timezone": "UTC"}).status_code


@pytest.fixture
def served(settings, monkeypatch, sink):  # noqa: F811
    """The app as `digest web` serves it (digest.web.app.server_config), on a free port."""
    import socket
    import time

    import uvicorn

    from digest.store.settings import Settings, reset_settings_cache
    from digest.web.app import server_config
    from tests.test_web import Live

    servers = []

    def start(**env) -> Live:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("DIGEST_PUBLIC_URL", url)
        monkeypatch.setenv("DIGEST_DELIVERY", sink.url)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        reset_settings_cache()
        s = Settings()
        server = uvicorn.Server(server_config(s, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        end = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < end
            time.sleep(0.02)
        servers.append((server, thread, sock))
        return Live(s, url, sink)

    yield start
    for server, thread, sock in servers:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_rotating_x_forwarded_for_does_not_escape_the_client_limit(served):
    """Default: no proxy is trusted, X-Forwarded-For is ignored (20 per client per hour)."""
    live = served()
    with live.client() as c:
        token = csrf(c, "/subscribe")
        cookies = dict(c.cookies)
    codes = [_post_from(live, token, cookies, f"x{i}@example.org", f"203.0.113.{i}") for i in range(24)]
    assert codes == [200] * 20 + [429] * 4


def test_behind_a_trusted_proxy_the_proxys_own_entry_counts(served):
    """With DIGEST_TRUSTED_PROXIES=127.0.0.1 the rightmost untrusted X-Forwarded-For entry is the
    client: what the client wrote to its left cannot rotate it; other clients have their own."""
    live = served(DIGEST_TRUSTED_PROXIES="127.0.0.1/32, ::1")
    with live.client() as c:
        token = csrf(c, "/subscribe")
        cookies = dict(c.cookies)
    codes = [_post_from(live, token, cookies, f"y{i}@example.org", f"10.9.{i}.1, 198.51.100.7") for i in range(24)]
    assert codes == [200] * 20 + [429] * 4
    assert _post_from(live, token, cookies, "z@example.org", "198.51.100.8") == 200
    assert _post_from(live, token, cookies, "z2@example.org", "2001:db8:1:2::99") == 200


def test_docker_compose_refuses_to_start_without_a_secret():
    import yaml

    from tests.conftest import REPO

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    value = compose["x-digest"]["environment"]["DIGEST_SECRET_KEY"]
    assert re.fullmatch(r"\$\{DIGEST_SECRET_KEY:\?[^}]+\}", value), value
    assert "change-me" not in (REPO / "docker-compose.yml").read_text()


def test_the_subscribe_form_refuses_control_characters_in_a_name(live):
    with live.client() as c:
        token = csrf(c, "/subscribe")
        for name in ("\x1b]0;owned\x07", "a\x1b[2Jb", "x\u202ey"):
            r = c.post("/subscribe", data={"csrf_token": token, "email": "ctl@example.org", "name": name,
                                           "topics": "vision-language", "timezone": "UTC"})
            assert r.status_code == 400 and "control characters" in r.text
            assert "\x1b" not in r.text and "\u202e" not in r.text
    assert live.sub("ctl@example.org") is None and live.sink.messages == []
