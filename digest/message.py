"""Build the email for one rendered digest: multipart/alternative (text, then HTML).

Both parts are quoted-printable, so every line is ≤ 76 characters however long the HTML
lines are. (The parts are encoded with the C ``binascii.b2a_qp``; ``set_content(...,
cte="quoted-printable")`` gives the same kind of part but its pure-Python encoder costs ~4 ms
per digest, which matters at 100,000 digests an edition.) Header values that come from data (recipient name, subject)
are stripped of control characters and encoded by the email package, so they can never add a
header. List headers follow RFC 2369 / RFC 8058 (one-click unsubscribe, acted on by POST).
"""
from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import secrets
from datetime import date, datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from digest import tokens
from digest.edition import DigestContent

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_DOMAIN_OK = re.compile(r"[A-Za-z0-9.-]+")

EDITION_HEADER = "X-Digest-Edition"


class MessageError(ValueError):
    """The digest cannot be turned into a valid message (e.g. an unusable recipient address)."""


def _one_line(value: str | None, limit: int = 200) -> str:
    """A header-safe single line: no CR/LF or other control characters, collapsed spaces."""
    if not value:
        return ""
    return " ".join(_CONTROL.sub(" ", str(value)[: limit * 4]).split())[:limit]


def _domain(settings) -> str:
    _, addr = parseaddr(settings.from_addr)
    domain = addr.rpartition("@")[2].strip().lower()
    return domain if domain and _DOMAIN_OK.fullmatch(domain) else "localhost"


def message_id_for(settings, subscriber_id: int, edition: date) -> str:
    """``<digest.{YYYYMMDD}.{subscriber}.{mac}@{domain}>``: the same for every retry and resend of
    one (subscriber, edition), so receivers can drop the duplicate an unrecorded acceptance may
    cause; the short MAC keeps ids from being guessed or forged for other subscribers."""
    stamp = edition.strftime("%Y%m%d")
    mac = hmac.new(settings.secret_key.encode("utf-8"),
                   f"message-id:{int(subscriber_id)}:{edition.isoformat()}".encode("ascii"),
                   hashlib.sha256).hexdigest()[:12]
    return f"<digest.{stamp}.{int(subscriber_id)}.{mac}@{_domain(settings)}>"


def recipient_address(email: str, name: str | None) -> Address:
    """The To address; the display name is cleaned (CR/LF/controls removed) and encoded by the
    email package when non-ASCII. Raises MessageError for an address that cannot be used."""
    addr = (email or "").strip()
    if not addr or _CONTROL.search(addr) or " " in addr or "@" not in addr:
        raise MessageError(f"unusable recipient address {addr[:100]!r}")
    display = _one_line(name, 100).replace('"', "'")
    try:
        local, _, domain = addr.rpartition("@")
        return Address(display_name=display, username=local, domain=domain)
    except (ValueError, TypeError, IndexError) as exc:
        raise MessageError(f"unusable recipient address {addr[:100]!r}: {exc}") from exc


def build_message(settings, content: DigestContent, rendered, *, now: datetime | None = None) -> EmailMessage:
    """The email for one digest. ``rendered`` is a ``digest.render.Rendered``."""
    recipient = content.recipient
    sid = recipient.subscriber_id
    msg = EmailMessage()
    msg["From"] = settings.from_addr
    msg["To"] = recipient_address(recipient.email, recipient.name)
    msg["Subject"] = _one_line(rendered.subject, 250) or "Paper digest"
    msg["Date"] = format_datetime(now or datetime.now(timezone.utc))
    msg["Message-ID"] = message_id_for(settings, sid, content.edition)

    list_id = _one_line(settings.list_id, 200).replace("<", "").replace(">", "").replace(" ", "")
    sender_name, _ = parseaddr(settings.from_addr)
    sender_name = _one_line(sender_name, 60).replace('"', "'")
    msg["List-Id"] = f'"{sender_name}" <{list_id}>' if sender_name else f"<{list_id}>"

    unsubscribe = content.unsubscribe_url
    if not (unsubscribe and unsubscribe.startswith(("https://", "http://")) and _one_line(unsubscribe, 2000) == unsubscribe):
        unsubscribe = tokens.unsubscribe_url(settings, sid)
    targets = [f"<{unsubscribe}>"]
    mailto = _one_line(settings.unsubscribe_mailto, 254)
    if mailto:
        if mailto.lower().startswith("mailto:"):
            mailto = mailto[7:]
        mailto = mailto.split("?", 1)[0].replace("<", "").replace(">", "").replace(" ", "")
        targets.append(f"<mailto:{mailto}?subject=unsubscribe>")
    msg["List-Unsubscribe"] = _ListHeader("List-Unsubscribe", targets)
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Precedence"] = "bulk"
    msg[EDITION_HEADER] = content.edition.isoformat()

    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = "multipart/alternative"
    msg.set_boundary(f"=_digest_{secrets.token_hex(12)}")
    msg.set_payload([_qp_part(rendered.text, "plain"), _qp_part(rendered.html, "html")])
    return msg


def _qp_part(text: str, subtype: str) -> MIMEPart:
    """A text/<subtype>; charset=utf-8 part, quoted-printable (lines ≤ 76, CRLF on output)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8", "replace")
    encoded = binascii.b2a_qp(data, istext=True).decode("ascii")
    if not encoded.endswith("\n"):
        encoded += "\n"
    part = MIMEPart()
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(encoded)
    return part


class _ListHeader(str):
    """A header value written as is (no RFC 2047 encoded-words): ``List-Unsubscribe`` holds
    URLs longer than 78 characters, which the email package would otherwise encode into an
    unusable =?utf-8?q?...?= form. Folded only between its comma-separated items."""

    def __new__(cls, name: str, items: list[str]):
        self = super().__new__(cls, ", ".join(items))
        self.name = name
        self.items = items
        self.defects = []
        return self

    def fold(self, *, policy) -> str:
        return f"{self.name}: " + ("," + policy.linesep + " ").join(self.items) + policy.linesep


def as_smtp_bytes(msg: EmailMessage) -> bytes:
    """The message as sent on the wire (CRLF line ends)."""
    return msg.as_bytes(policy=SMTP)
