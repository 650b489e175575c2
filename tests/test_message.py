"""The email composed for one digest: parts, line lengths, headers, encoding, injection."""
from __future__ import annotations

import email
import email.policy
import re
from datetime import date, datetime, timezone

import pytest

from digest.email.message import (MessageError, Outgoing, build_message, compose, encoded_words, message_id_for,
                            qp_lines)
from digest.email.render import Renderer
from digest.store.settings import Settings
from tests.digest_samples import EMOJI, RTL, hostile, realistic

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def settings():
    return Settings(database_url="sqlite://", DIGEST_FROM="Paper Digest <digest@mail.example.org>",
                    secret_key="test-secret", list_id="papers.mail.example.org",
                    unsubscribe_mailto="unsubscribe@mail.example.org")


@pytest.fixture(scope="module")
def renderer(settings):
    return Renderer(settings)


def build(settings, renderer, content) -> Outgoing:
    return compose(settings, content, renderer.render(content), now=NOW)


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def head_and_body(raw: bytes) -> tuple[bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


def header_names(raw: bytes) -> list[bytes]:
    head, _ = head_and_body(raw)
    return [line.split(b":", 1)[0] for line in head.split(b"\r\n") if not line.startswith((b" ", b"\t"))]


def test_multipart_alternative_text_then_html(settings, renderer):
    content = realistic(20)
    rendered = renderer.render(content)
    out = compose(settings, content, rendered)
    msg = out.parse()
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert msg.defects == [] and all(p.defects == [] for p in parts)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip() == rendered.text.rstrip()
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip() == rendered.html
    assert out.message_id == msg["Message-ID"] and out.subject == msg["Subject"]
    assert out.recipients == ("ada@example.org",) and out.envelope_from == "digest@mail.example.org"
    assert out.edition == "2026-11-21"


def test_same_message_as_the_email_package_would_give(settings, renderer):
    """Headers and decoded parts match what EmailMessage makes of the same values."""
    content = realistic(12, name="Jürgen Ößlinger")
    rendered = renderer.render(content)
    ours = compose(settings, content, rendered, now=NOW).parse()
    theirs = email.message.EmailMessage()
    theirs["Subject"] = rendered.subject
    theirs["To"] = "Jürgen Ößlinger <ada@example.org>"
    assert ours["Subject"] == theirs["Subject"] == rendered.subject
    assert ours["To"] == theirs["To"]
    assert ours["To"].addresses == theirs["To"].addresses


@pytest.mark.parametrize("content", [realistic(20), hostile(60, 200_000)], ids=["realistic", "hostile"])
def test_every_line_short_and_crlf(settings, renderer, content):
    raw = build(settings, renderer, content).raw
    assert raw.count(b"\n") == raw.count(b"\r\n") and raw.count(b"\r") == raw.count(b"\r\n")
    assert raw.isascii()
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    head, body = head_and_body(raw)
    # folded headers (a long unsubscribe URL cannot be folded: it stays whole, as URLs must)
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if not line.startswith(b"List-Unsubscribe: <"))
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))       # QP body lines
    assert raw.endswith(b"--\r\n")


def test_quoted_printable_helper():
    text = ("x" * 200 + "\n" + "é" * 100 + " \n" + ".\n" + "a=b\n")
    enc = qp_lines(text)
    assert enc.count(b"\n") == enc.count(b"\r\n")
    assert all(len(line) <= 76 for line in enc.split(b"\r\n"))
    import quopri
    assert quopri.decodestring(enc).decode("utf-8").replace("\r\n", "\n") == text
    # blocks of whole lines encode independently
    a, b = "first line " * 20 + "\n", "second\n" + "é" * 50 + "\n"
    assert qp_lines(a) + qp_lines(b) == qp_lines(a + b)


def test_headers(settings, renderer):
    content = realistic(5, subscriber_id=77)
    msg = parse(build(settings, renderer, content).raw)
    assert msg["From"] == "Paper Digest <digest@mail.example.org>"
    assert msg["To"] == "Ada Moreau <ada@example.org>"
    assert msg["Subject"].startswith("8 new papers: ") and msg["Subject"].endswith("21 Nov 2026")
    assert msg["Date"] == "Sat, 21 Nov 2026 08:00:00 +0000"
    assert msg["List-Id"] == '"Paper Digest" <papers.mail.example.org>'
    assert msg["List-Unsubscribe"] == ("<https://digest.example.org/unsubscribe/tok77>, "
                                       "<mailto:unsubscribe@mail.example.org?subject=unsubscribe>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Precedence"] == "bulk"
    assert msg["X-Digest-Edition"] == "2026-11-21"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"] == message_id_for(settings, 77, date(2026, 11, 21))
    assert [n.decode() for n in header_names(build(settings, renderer, content).raw)] == [
        "From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
        "Precedence", "X-Digest-Edition", "MIME-Version", "Content-Type"]


def test_long_subject_folds_and_unfolds_exactly(settings):
    rendered = type("R", (), {"subject": " ".join(["Segmentation"] * 15 + ["—", "Ünïcode", "words"] + ["x"] * 20),
                              "text": "t\n", "html": "<p>h</p>"})()
    raw = compose(settings, realistic(1), rendered, now=NOW).raw
    head, _ = head_and_body(raw)
    subject_lines = re.search(rb"\r\nSubject:.*?\r\n(?=\S)", head, re.S).group(0)
    assert subject_lines.count(b"\r\n ") >= 2
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert parse(raw)["Subject"] == rendered.subject


def test_list_unsubscribe_long_url_is_not_encoded(settings, renderer):
    content = realistic(3, subscriber_id=5)
    content.unsubscribe_url = ""          # generated: {public_url}/unsubscribe/{48-char token}
    raw = build(settings, renderer, content).raw
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
    raw = build(settings, renderer, content).raw
    names = header_names(raw)
    assert b"Bcc" not in names and b"X-Evil" not in names
    msg = parse(raw)
    assert [a.addr_spec for a in msg["To"].addresses] == ["ada@example.org"]
    assert msg["Bcc"] is None


@pytest.mark.parametrize("name", ['Moreau, Ada', 'Ada "the" <Moreau>', "Ada\\", "=?utf-8?q?spoof?=",
                                  'x@y.org, z@w.org', "\u2028Ada\u2029\x85"])
def test_awkward_names_stay_one_address(settings, renderer, name):
    raw = build(settings, renderer, realistic(1, name=name)).raw
    msg = parse(raw)
    assert [a.addr_spec for a in msg["To"].addresses] == ["ada@example.org"]
    assert msg["To"].defects == ()
    assert "spoof" not in msg["To"].addresses[0].display_name or "=?" in msg["To"].addresses[0].display_name


def test_hostile_subject_is_one_header(settings, renderer):
    out = build(settings, renderer, hostile(10, 1000))
    msg = parse(out.raw)
    assert "\n" not in msg["Subject"] and "X-Evil" not in [k for k in msg.keys()]
    assert msg["X-Evil"] is None
    assert b"X-Evil" not in header_names(out.raw)


def test_subject_that_looks_encoded_is_not_decoded(settings):
    rendered = type("R", (), {"subject": "=?utf-8?b?U1BPT0Y=?= papers", "text": "t\n", "html": "h"})()
    msg = compose(settings, realistic(1), rendered, now=NOW).parse()
    assert msg["Subject"] == "=?utf-8?b?U1BPT0Y=?= papers"


def test_non_ascii_name_and_subject_encoded(settings, renderer):
    content = realistic(3, name="Jürgen Ößlinger 李 " + EMOJI)
    content.sections[0].name = RTL + " " + EMOJI
    rendered = renderer.render(content)
    raw = compose(settings, content, rendered, now=NOW).raw
    assert raw.isascii()
    head, _ = head_and_body(raw)
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    to_line = [line for line in raw.split(b"\r\n") if line.startswith(b"To:")][0]
    assert b"=?utf-8?" in to_line
    msg = parse(raw)
    assert msg["To"].addresses[0].display_name == "Jürgen Ößlinger 李 " + EMOJI
    assert msg["Subject"] == rendered.subject and RTL in msg["Subject"]


def test_encoded_words_are_short_and_split_between_characters():
    words = encoded_words("ü" * 100 + EMOJI * 5)
    assert all(len(w) <= 75 for w in words)
    import email.header
    decoded = "".join(part.decode(cs) if isinstance(part, bytes) else part
                      for part, cs in email.header.decode_header(" ".join(words)))
    assert decoded == "ü" * 100 + EMOJI * 5


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a b@example.org", "x@example.org\r\nBcc: y@example.org",
                                 "<x@example.org>", "a@b.org, c@d.org", "@example.org", "x@"])
def test_unusable_address_rejected(settings, renderer, bad):
    content = realistic(1, email=bad)
    with pytest.raises(MessageError):
        build(settings, renderer, content)


def test_injected_unsubscribe_url_is_replaced(settings, renderer):
    content = realistic(2, subscriber_id=9)
    content.unsubscribe_url = "https://evil.example/u>\r\nBcc: x@example.org"
    out = build(settings, renderer, content)
    assert b"Bcc" not in header_names(out.raw)
    assert parse(out.raw)["List-Unsubscribe"].startswith("<http://localhost:8000/unsubscribe/")


def test_two_recipients_of_one_content_get_only_their_own(settings, renderer):
    """Rendered once per content: each message carries its own address and links, never another's."""
    a = realistic(20, subscriber_id=101, email="first@example.org", name="First Reader")
    b = realistic(20, subscriber_id=202, email="second@example.org", name="Second Reader")
    ra, rb = renderer.render(a), renderer.render(b)
    assert ra.subject == rb.subject
    for out, own, other in ((compose(settings, a, ra), "101", "202"), (compose(settings, b, rb), "202", "101")):
        msg = out.parse()
        own_email, other_email = f"{'first' if own == '101' else 'second'}@example.org", \
            f"{'second' if own == '101' else 'first'}@example.org"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        for body in (text, html):
            assert own_email in body and other_email not in body
            assert f"unsubscribe/tok{own}" in body and f"unsubscribe/tok{other}" not in body
            assert f"preferences/tok{own}" in body and f"preferences/tok{other}" not in body
            assert "pdslot" not in body
        assert f"unsubscribe/tok{own}" in msg["List-Unsubscribe"]
        assert msg["To"].addresses[0].addr_spec == own_email
        assert out.raw.count(other_email.encode()) == 0


def test_build_message_parses_back(settings, renderer):
    content = realistic(3)
    msg = build_message(settings, content, renderer.render(content), now=NOW)
    assert isinstance(msg, email.message.EmailMessage)
    assert msg["To"].addresses[0].addr_spec == "ada@example.org"


def test_non_ascii_sender_and_mailto_use_smtputf8_instead_of_failing(renderer):
    s = Settings(database_url="sqlite://", DIGEST_FROM="Bücher Digest <digest@bücher.example>",
                 secret_key="test-secret", unsubscribe_mailto="désabonner@bücher.example")
    out = compose(s, realistic(), renderer.render(realistic()), now=NOW)
    assert out.smtputf8
    msg = parse(out.raw)
    assert "digest@bücher.example" in msg["From"]
    assert "mailto:désabonner@bücher.example" in msg["List-Unsubscribe"]
    ascii_only = compose(Settings(database_url="sqlite://", DIGEST_FROM="Digest <d@example.org>", secret_key="k"),
                         realistic(), renderer.render(realistic()), now=NOW)
    assert not ascii_only.smtputf8 and ascii_only.raw.isascii()
