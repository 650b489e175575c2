"""The email built for one digest: parts, line lengths, headers, injection."""
from __future__ import annotations

import email
import email.policy
from datetime import date, datetime, timezone

import pytest

from digest.message import MessageError, build_message, message_id_for
from digest.render import Renderer
from digest.settings import Settings
from tests.digest_samples import hostile, realistic

SMTP = email.policy.SMTP


@pytest.fixture(scope="module")
def settings():
    return Settings(database_url="sqlite://", DIGEST_FROM="Paper Digest <digest@mail.example.org>",
                    secret_key="test-secret", list_id="papers.mail.example.org",
                    unsubscribe_mailto="unsubscribe@mail.example.org")


@pytest.fixture(scope="module")
def renderer(settings):
    return Renderer(settings)


def build(settings, renderer, content):
    return build_message(settings, content, renderer.render(content),
                         now=datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc))


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_multipart_alternative_text_then_html(settings, renderer):
    content = realistic(20)
    rendered = renderer.render(content)
    msg = build_message(settings, content, rendered)
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    back = parse(msg.as_bytes(policy=SMTP))
    assert back.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip() == rendered.text.rstrip()
    assert back.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip() == rendered.html


@pytest.mark.parametrize("content", [realistic(20), hostile(60, 200_000)], ids=["realistic", "hostile"])
def test_every_line_short_and_crlf(settings, renderer, content):
    raw = build(settings, renderer, content).as_bytes(policy=SMTP)
    assert raw.count(b"\n") == raw.count(b"\r\n")
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert all(len(line) <= 78 for line in lines[lines.index(b""):])   # QP body lines


def test_headers(settings, renderer):
    content = realistic(5, subscriber_id=77)
    msg = parse(build(settings, renderer, content).as_bytes(policy=SMTP))
    assert msg["From"] == "Paper Digest <digest@mail.example.org>"
    assert msg["To"] == "Ada Moreau <ada@example.org>"
    assert msg["Subject"].startswith("8 new papers: ") and msg["Subject"].endswith("21 Nov 2026")
    assert msg["Date"] == "Sat, 21 Nov 2026 08:00:00 +0000"
    assert msg["List-Id"] == '"Paper Digest" <papers.mail.example.org>'
    assert msg["List-Unsubscribe"] == ("<https://digest.example.org/unsubscribe/tok77>, "
                                       "<mailto:unsubscribe@mail.example.org?subject=unsubscribe>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Precedence"] == "bulk"
    assert msg["Message-ID"] == message_id_for(settings, 77, date(2026, 11, 21))


def test_list_unsubscribe_long_url_is_not_encoded(settings, renderer):
    content = realistic(3, subscriber_id=5)
    content.unsubscribe_url = ""          # generated: {public_url}/unsubscribe/{48-char token}
    raw = build(settings, renderer, content).as_bytes(policy=SMTP)
    header = parse(raw)["List-Unsubscribe"]
    assert "=?" not in header and header.startswith("<http://localhost:8000/unsubscribe/")


def test_message_id_deterministic(settings):
    a = message_id_for(settings, 42, date(2026, 11, 21))
    assert a == message_id_for(settings, 42, date(2026, 11, 21))
    assert a != message_id_for(settings, 43, date(2026, 11, 21))
    assert a != message_id_for(settings, 42, date(2026, 11, 22))
    assert a.startswith("<digest.20261121.42.") and a.endswith("@mail.example.org>")


def test_crlf_in_name_cannot_inject_headers(settings, renderer):
    content = realistic(3, name="Eve\r\nBcc: everyone@example.com\r\nX-Evil: 1")
    raw = build(settings, renderer, content).as_bytes(policy=SMTP)
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if not line.startswith((b" ", b"\t"))]
    assert b"Bcc" not in names and b"X-Evil" not in names
    msg = parse(raw)
    assert [a.addr_spec for a in msg["To"].addresses] == ["ada@example.org"]
    assert msg["Bcc"] is None


def test_hostile_subject_is_one_header(settings, renderer):
    raw = build(settings, renderer, hostile(10, 1000)).as_bytes(policy=SMTP)
    msg = parse(raw)
    assert "\n" not in msg["Subject"] and "X-Evil" not in [k for k in msg.keys()]
    assert msg["X-Evil"] is None


def test_non_ascii_name_encoded(settings, renderer):
    content = realistic(3, name="Jürgen Ößlinger 李")
    raw = build(settings, renderer, content).as_bytes(policy=SMTP)
    assert raw.isascii()
    to_line = [line for line in raw.split(b"\r\n") if line.startswith(b"To:")][0]
    assert b"=?utf-8?" in to_line
    assert parse(raw)["To"].addresses[0].display_name == "Jürgen Ößlinger 李"


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a b@example.org", "x@example.org\r\nBcc: y@example.org"])
def test_unusable_address_rejected(settings, renderer, bad):
    content = realistic(1, email=bad)
    with pytest.raises(MessageError):
        build(settings, renderer, content)
