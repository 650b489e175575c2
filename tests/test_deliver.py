"""Delivery backends against a real SMTP server (aiosmtpd), the file outbox and dry-run."""
from __future__ import annotations

import email
import email.policy
from datetime import date

import pytest

from digest.delivery.backends import (DeliveryConfigError, DryRunBackend, FileBackend, SMTPBackend, SendResult,
                            mask_delivery, open_backend, parse_delivery, safe_file_stem)
from digest.email.content import DigestContent, Recipient, Section
from digest.email.message import Outgoing, compose
from digest.email.render import Renderer
from digest.store.settings import Settings
from tests.digest_samples import paper, realistic
from tests.smtp_server import smtp_sink


@pytest.fixture
def sink():
    yield from smtp_sink()


def make_settings(delivery: str, **kw) -> Settings:
    kw.setdefault("smtp_retries", 3)
    return Settings(database_url="sqlite://", delivery=delivery, DIGEST_FROM="Paper Digest <digest@example.org>",
                    secret_key="test-secret", **kw)


@pytest.fixture(scope="module")
def renderer():
    return Renderer(make_settings("dry-run"))


def message_for(settings, renderer, sid: int, address: str, *, name: str | None = "Reader"):
    content = realistic(5, subscriber_id=sid, email=address, name=name)
    return compose(settings, content, renderer.render(content))


def open_smtp(settings, sleeps=None) -> SMTPBackend:
    sleeps = [] if sleeps is None else sleeps
    return open_backend(settings, backoff_base=0.01, sleep=sleeps.append)


# --- SMTP ------------------------------------------------------------------------------------


def test_smtp_delivers_and_bytes_parse_back(sink, renderer):
    s = make_settings(sink.url)
    msgs = [message_for(s, renderer, i, f"reader{i}@example.org") for i in range(5)]
    with open_smtp(s) as backend:
        results = [backend.send(m) for m in msgs]
    assert all(r.ok and r.attempts == 1 for r in results)
    assert len(sink.messages) == 5
    assert sink.connections == 1                               # one connection reused
    got = sink.messages[0]
    assert got.mail_from == "digest@example.org"
    assert got.rcpt_tos == ["reader0@example.org"]
    assert b"\r\n" in got.data and all(len(line) <= 998 for line in got.data.split(b"\r\n"))
    assert got.data.rstrip(b"\r\n") == msgs[0].raw.rstrip(b"\r\n")      # byte for byte
    parsed = got.parsed()
    assert parsed["Message-ID"] == msgs[0].message_id
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = parsed.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert html.rstrip("\n") == msgs[0].html.rstrip("\n")


def test_dot_at_line_start_survives_smtp(sink):
    """A '.' opening a line (and a line of one '.') reaches the server unchanged: smtplib
    dot-stuffs the DATA, the server unstuffs it."""
    s = make_settings(sink.url)
    text = "intro\n.hidden line\n.\nafter the lone dot\n" + "x" * 75 + ".tail\n..two dots\n"
    html = "<p>a</p>\n.<b>dot</b>\n.\n<p>end</p>"
    rendered = type("R", (), {"subject": "Dots", "text": text, "html": html})()
    content = realistic(1, subscriber_id=3, email="dots@example.org")
    out = compose(s, content, rendered)
    with open_smtp(s) as backend:
        assert backend.send(out).ok
    got = sink.messages[0]
    assert got.data.rstrip(b"\r\n") == out.raw.rstrip(b"\r\n")
    parsed = got.parsed()
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n").rstrip("\n") == text.rstrip("\n")
    assert parsed.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip("\n") == html


def test_email_message_is_accepted_too(sink):
    """The web pages' one-off mails are EmailMessages: sent as they are, Bcc never on the wire."""
    import email.message

    s = make_settings(sink.url)
    msg = email.message.EmailMessage()
    msg["From"] = "Paper Digest <digest@example.org>"
    msg["To"] = "Ada <ada@example.org>"
    msg["Bcc"] = "hidden@example.org"
    msg["Subject"] = "Confirm your subscription — please"
    msg.set_content("Hello\n.\nbye\n")
    with open_smtp(s) as backend:
        assert backend.send(msg).ok
    got = sink.messages[0]
    assert got.mail_from == "digest@example.org" and got.rcpt_tos == ["ada@example.org"]
    parsed = got.parsed()
    assert parsed["Subject"] == "Confirm your subscription — please" and parsed["Bcc"] is None
    assert b"hidden@example.org" not in got.data
    assert parsed.get_content().replace("\r\n", "\n") == "Hello\n.\nbye\n"


def test_temporary_451_then_250_is_retried_once(sink, renderer):
    s = make_settings(sink.url)
    sink.script_rcpt("slow@example.org", "451 4.3.0 Try again later")
    sleeps: list[float] = []
    with open_smtp(s, sleeps) as backend:
        result = backend.send(message_for(s, renderer, 1, "slow@example.org"))
    assert result.ok and result.attempts == 2
    assert sleeps == [0.01]
    assert sink.rcpt_attempts["slow@example.org"] == 2
    assert sink.delivered_to() == ["slow@example.org"]        # exactly one delivery


def test_temporary_failure_gives_up_after_retries(sink, renderer):
    s = make_settings(sink.url, smtp_retries=2)
    sink.script_rcpt("busy@example.org", *["451 4.7.1 Greylisted"] * 5)
    sleeps: list[float] = []
    with open_smtp(s, sleeps) as backend:
        result = backend.send(message_for(s, renderer, 1, "busy@example.org"))
    assert not result.ok and not result.permanent
    assert result.attempts == 3 and "451 4.7.1 Greylisted" in result.error
    assert sleeps == [0.01, 0.02]                                # exponential backoff
    assert sink.messages == []


def test_permanent_550_for_one_recipient_others_delivered(sink, renderer):
    s = make_settings(sink.url)
    sink.refuse_rcpt("gone@example.org", "550 5.1.1 <gone@example.org>: Recipient address rejected")
    addresses = ["a@example.org", "gone@example.org", "b@example.org"]
    sleeps: list[float] = []
    with open_smtp(s, sleeps) as backend:
        results = [backend.send(message_for(s, renderer, i, a)) for i, a in enumerate(addresses)]
    ok, gone, ok2 = results
    assert ok.ok and ok2.ok
    assert isinstance(gone, SendResult) and not gone.ok and gone.permanent
    assert gone.error == "550 5.1.1 <gone@example.org>: Recipient address rejected"
    assert gone.attempts == 1 and sleeps == []                   # never retried
    assert sink.delivered_to() == ["a@example.org", "b@example.org"]
    assert backend.sent == 2 and backend.failed == 1


def test_connection_dropped_mid_batch_reconnects_and_delivers_all(sink, renderer):
    s = make_settings(sink.url, smtp_retries=0)                 # reconnect is not a "retry"
    sink.drop_after = 3
    msgs = [message_for(s, renderer, i, f"r{i}@example.org") for i in range(10)]
    with open_smtp(s) as backend:
        results = [backend.send(m) for m in msgs]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert sorted(sink.delivered_to()) == sorted(f"r{i}@example.org" for i in range(10))
    assert len(sink.messages) == 10                             # no duplicates
    assert backend.connections == 4 and sink.connections == 4


def test_drop_before_the_reply_is_ambiguous_and_not_retried_by_the_backend(sink, renderer):
    s = make_settings(sink.url)
    sink.drop_in_data_once = True
    msg = message_for(s, renderer, 9, "dup@example.org")
    with open_smtp(s) as backend:
        result = backend.send(msg)
        assert not result.ok and result.ambiguous and not result.permanent
        assert "no reply after the message data" in result.error
        assert len(sink.messages) == 1                          # the server has it: no retry here
        again = backend.send(msg)                               # the send loop decides (once)
    assert again.ok and not again.ambiguous
    ids = [m.parsed()["Message-ID"] for m in sink.messages]
    assert ids == [msg.message_id] * 2                          # same Message-ID: clients collapse it


def test_drop_before_data_is_an_ordinary_temporary_failure(sink, renderer):
    s = make_settings(sink.url, smtp_retries=1)
    sink.script_rcpt("late@example.org", "421 4.3.2 closing")
    with open_smtp(s) as backend:
        result = backend.send(message_for(s, renderer, 4, "late@example.org"))
    assert result.ok and not result.ambiguous and result.attempts == 2


def test_server_down_is_temporary_failure(renderer):
    s = make_settings("smtp://127.0.0.1:1", smtp_retries=1, smtp_timeout=2)
    with open_smtp(s) as backend:
        result = backend.send(message_for(s, renderer, 1, "x@example.org"))
    assert not result.ok and not result.permanent and "connect" in result.error


def test_rate_throttle_spaces_messages(sink, renderer):
    s = make_settings(sink.url, smtp_rate=4)
    now = [100.0]
    sleeps: list[float] = []

    def sleep(d):
        sleeps.append(d)
        now[0] += d

    backend = SMTPBackend(parse_delivery(s.delivery)[1], rate=4, sleep=sleep, clock=lambda: now[0])
    with backend:
        for i in range(3):
            assert backend.send(message_for(s, renderer, i, f"t{i}@example.org")).ok
    assert sleeps == [0.25, 0.25]


# --- file and dry-run -----------------------------------------------------------------------------


def test_file_backend_writes_eml_and_html(tmp_path, renderer, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = make_settings("file://outbox")
    msg = message_for(s, renderer, 3, "ada@example.org")
    with open_backend(s) as backend:
        result = backend.send(msg)
    assert result.ok
    folder = tmp_path / "outbox" / "2026-11-21"
    eml = list(folder.glob("*.eml"))
    html = list(folder.glob("*.html"))
    assert isinstance(msg, Outgoing)
    assert len(eml) == 1 and len(html) == 1 and eml[0].name.startswith("ada@example.org-")
    data = eml[0].read_bytes()
    assert data == msg.raw
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["To"].addresses[0].addr_spec == "ada@example.org"
    assert html[0].read_text(encoding="utf-8").startswith("<!doctype html>")


def test_file_backend_names_are_safe(tmp_path):
    for hostile in ["../../etc/passwd@x.org", "/abs/path@x.org", "..", "a\\b@x.org", "\x00@x.org", ""]:
        stem = safe_file_stem(hostile)
        assert "/" not in stem and "\\" not in stem and not stem.startswith(".") and "\x00" not in stem
    assert safe_file_stem("a/b@x.org") != safe_file_stem("a_b@x.org")   # no collisions
    backend = FileBackend(tmp_path)
    s = make_settings(f"file://{tmp_path}")
    content = DigestContent(recipient=Recipient(1, '"../../evil"@example.org'), edition=date(2026, 11, 21),
                            sections=[Section("t", "Topic", [paper(0)])])
    r = Renderer(s)
    result = backend.send(compose(s, content, r.render(content)))
    assert result.ok
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(tmp_path in p.parents for p in written) and len(written) == 2


def test_dry_run_counts(renderer):
    s = make_settings("dry-run")
    with open_backend(s) as backend:
        assert isinstance(backend, DryRunBackend)
        for i in range(3):
            assert backend.send(message_for(s, renderer, i, f"d{i}@example.org")).ok
    assert backend.sent == 3 and backend.bytes > 0 and len(backend.recipients) == 3


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,kind", [
    ("dry-run", "dry-run"), ("file://./var/outbox", "file"), ("file:///tmp/out", "file"),
    ("smtp://localhost:25", "smtp"), ("smtp://u:p@mail.example.org:587?starttls=1", "smtp"),
    ("smtp://mail.example.org:465?ssl=1", "smtp"),
])
def test_parse_delivery_accepts(spec, kind):
    assert parse_delivery(spec)[0] == kind


def test_parse_delivery_details():
    _, c = parse_delivery("smtp://us%40er:p%3Ass@mail.example.org:587?starttls=1")
    assert (c.host, c.port, c.username, c.password, c.starttls, c.ssl) == \
        ("mail.example.org", 587, "us@er", "p:ss", True, False)


@pytest.mark.parametrize("spec", [
    "", "smtp//localhost", "smtp://:25", "smtp://host:notaport", "smtp://host:25?tls=1",
    "smtp://host:25?starttls=1&ssl=1", "smtp://host:25?ssl=maybe", "file://", "ftp://host", "smtp://host:25/path",
])
def test_parse_delivery_rejects(spec):
    with pytest.raises(DeliveryConfigError) as info:
        parse_delivery(spec)
    assert "DIGEST_DELIVERY" in str(info.value)


def test_config_error_masks_password():
    with pytest.raises(DeliveryConfigError) as info:
        parse_delivery("smtp://alice:s3cret-pw@host:25?bogus=1")
    assert "s3cret-pw" not in str(info.value) and "alice:***@host" in str(info.value)
    assert mask_delivery("smtp://a:b@h:1") == "smtp://a:***@h:1"
