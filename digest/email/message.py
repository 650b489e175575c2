"""Compose the email for one rendered digest, straight to wire bytes: multipart/alternative
(text, then HTML), both parts quoted-printable, CRLF line ends.

The bytes are written here rather than by ``email.message.EmailMessage``: building and
serialising one costs ~3 ms per digest, more than rendering it, which matters at 100,000 digests
an edition. What the email package would have done and we do by hand:

- header values from data (recipient name, subject) are stripped of control characters, so they
  can never start a new header; non-ASCII words become RFC 2047 encoded-words (base64, ≤ 75
  characters each), as does any word that looks like one; lines are folded at spaces to ≤ 78
  characters where possible (and are always ≤ 998);
- bodies are quoted-printable (``binascii.b2a_qp``): every line ≤ 76 characters, however long
  the HTML lines are. QP is line-local, so a part is encoded as blocks of whole lines and the
  blocks shared by many digests (see ``digest.email.rendered.Slotted``) are encoded once;
- a '.' at the start of a line is left to the SMTP client (smtplib dot-stuffs the DATA).

List headers follow RFC 2369 / RFC 8058 (one-click unsubscribe, acted on by POST). Tests and
tools parse a message back with ``Outgoing.parse()``.
"""
from __future__ import annotations

import binascii
import email
import email.policy
import functools
import hmac
import re
import secrets
from base64 import b64encode
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from digest import tokens
from digest.email.content import DigestContent
from digest import clock

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_DOMAIN_OK = re.compile(r"[A-Za-z0-9.-]+")
# a display name written bare: atoms (RFC 5322 atext) and single spaces
_BARE_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
# characters an address must not hold: they would end the <...> or split the header
_ADDR_BAD = re.compile(r"[\x00-\x20\x7f-\x9f<>(),;\\\[\]\u2028\u2029]")

EDITION_HEADER = "X-Digest-Edition"
MAX_LINE = 78
UNSUBSCRIBE_URL_MAX = 900


class MessageError(ValueError):
    """The digest cannot be turned into a valid message (e.g. an unusable recipient address)."""


# ------------------------------------------------------------------------------------------------
# the composed message


class Outgoing:
    """One message ready to send: wire bytes plus the envelope and what the ledger records."""

    __slots__ = ("raw", "envelope_from", "recipients", "message_id", "subject", "edition", "smtputf8",
                 "_html")

    def __init__(self, raw: bytes, envelope_from: str, recipients: tuple[str, ...] | list[str], *,
                 message_id: str = "", subject: str = "", edition: str = "", smtputf8: bool = False,
                 html=None):
        self.raw = raw
        self.envelope_from = envelope_from
        self.recipients = tuple(recipients)
        self.message_id = message_id
        self.subject = subject
        self.edition = edition
        self.smtputf8 = smtputf8
        self._html = html          # str, or an object with .html (a Rendered): for previews

    @property
    def recipient(self) -> str:
        return self.recipients[0] if self.recipients else ""

    @property
    def html(self) -> str | None:
        """The HTML part as text (file-backend previews), or None."""
        h = self._html
        if h is None or isinstance(h, str):
            return h
        return h.html

    def parse(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    def __repr__(self) -> str:
        return f"<Outgoing {self.message_id} to {self.recipient!r}, {len(self.raw)} bytes>"


def from_email_message(msg: EmailMessage) -> Outgoing:
    """An ``EmailMessage`` (the web pages' one-off mails) as an Outgoing: envelope from its
    Sender/From, recipients from To and Cc (a Bcc header is never sent)."""
    from email.utils import getaddresses

    sender = parseaddr(str(msg.get("Sender") or msg.get("From") or ""))[1]
    rcpts = [a for _, a in getaddresses([str(v) for k in ("To", "Cc") for v in msg.get_all(k, [])]) if a]
    if "Bcc" in msg:
        msg = _copy_without(msg, "Bcc")
    international = not (sender.isascii() and all(r.isascii() for r in rcpts))
    policy = email.policy.SMTPUTF8 if international else email.policy.SMTP
    html = None
    if msg.is_multipart() or msg.get_content_type() == "text/html":
        body = msg.get_body(preferencelist=("html",))
        html = body.get_content() if body is not None else None
    raw = _own_address_headers(msg, msg.as_bytes(policy=policy))
    return Outgoing(raw, sender, rcpts, message_id=str(msg.get("Message-ID") or ""),
                    subject=str(msg.get("Subject") or ""), edition=str(msg.get(EDITION_HEADER) or ""),
                    smtputf8=international, html=html)


_ADDRESS_HEADERS = ("to", "cc", "reply-to")
_HEADER_LINE = re.compile(rb"(?m)^(?![ \t])")     # where each (unfolded) header field starts


def _own_address_headers(msg: EmailMessage, raw: bytes) -> bytes:
    """``raw`` with its To/Cc/Reply-To fields written by :func:`address_header`. The email
    package folds a long quoted display name by dropping its quotes, so a name such as
    ``aaaa… <attacker@evil.example>, b`` became a second address; ours never splits one."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    fields = [f for f in _HEADER_LINE.split(head + b"\r\n") if f]
    out = []
    for field_ in fields:
        name = field_.split(b":", 1)[0].decode("ascii", "replace")
        if name.lower() in _ADDRESS_HEADERS:
            header = msg[name]
            addresses = [(a.display_name, check_address(a.addr_spec)) for a in getattr(header, "addresses", ())]
            out.append(addresses_header(name, addresses).encode("utf-8"))
        else:
            out.append(field_)
    return b"".join(out)[:-2] + sep + body


def _copy_without(msg: EmailMessage, header: str) -> EmailMessage:
    import copy

    msg = copy.copy(msg)
    del msg[header]
    return msg


# ------------------------------------------------------------------------------------------------
# headers


def _one_line(value: str | None, limit: int = 200) -> str:
    """A header-safe single line: no CR/LF or other control characters, collapsed spaces."""
    if not value:
        return ""
    return " ".join(_CONTROL.sub(" ", str(value)[: limit * 4]).split())[:limit]


def _domain(settings) -> str:
    _, addr = parseaddr(settings.from_addr)
    domain = addr.rpartition("@")[2].strip().lower()
    return domain if domain and _DOMAIN_OK.fullmatch(domain) else "localhost"


def message_id_for(settings, subscriber_id: int, edition: date, *, domain: str | None = None) -> str:
    """``<digest.{YYYYMMDD}.{subscriber}.{mac}@{domain}>``: the same for every retry and resend of
    one (subscriber, edition), so receivers can drop the duplicate an unrecorded acceptance may
    cause; the short MAC keeps ids from being guessed or forged for other subscribers."""
    stamp = edition.strftime("%Y%m%d")
    mac = hmac.digest(settings.secret_key.encode("utf-8"),
                      f"message-id:{int(subscriber_id)}:{edition.isoformat()}".encode("ascii"), "sha256").hex()[:12]
    return f"<digest.{stamp}.{int(subscriber_id)}.{mac}@{domain or _domain(settings)}>"


def encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 base64 encoded-words of at most 75 characters, split between
    characters (never inside one)."""
    data = text.encode("utf-8")
    if len(data) <= 45:                          # 45 bytes -> 60 base64 chars -> 72 in all
        return [f"=?utf-8?b?{b64encode(data).decode('ascii')}?="]
    words, chunk, size = [], [], 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if size + n > 45 and chunk:
            words.append(f"=?utf-8?b?{b64encode(''.join(chunk).encode('utf-8')).decode('ascii')}?=")
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    if chunk:
        words.append(f"=?utf-8?b?{b64encode(''.join(chunk).encode('utf-8')).decode('ascii')}?=")
    return words


def _plain_word(w: str) -> bool:
    return w.isascii() and "=?" not in w


def _atom(w: str) -> bool:
    return "=?" not in w and _BARE_PHRASE.fullmatch(w) is not None


def _text_tokens(value: str, plain=_plain_word) -> list[str]:
    """Text as header tokens separated by one space: words for which ``plain`` holds as they
    are, each run of other words (non-ASCII, looking like an encoded-word) as encoded-words.
    The spaces inside a run are encoded with it: decoders drop whitespace between two
    encoded-words (as the email package does, a run too long for one word is split)."""
    words = value.split(" ")
    if value.isascii() and "=?" not in value and plain is _plain_word:
        return words
    out: list[str] = []
    run: list[str] = []
    for w in words:
        if plain(w):
            if run:
                out += encoded_words(" ".join(run))
                run = []
            out.append(w)
        else:
            run.append(w)
    if run:
        out += encoded_words(" ".join(run))
    return out


def _fold(name: str, tokens: list[str]) -> str:
    """``Name: tok tok ...`` + CRLF, a line break before a space wherever a line would pass 78
    characters (unfolding gives the value back exactly)."""
    lines: list[str] = []
    line = name + ":"
    for t in tokens:
        if len(line) + 1 + len(t) > MAX_LINE and len(line) > len(name) + 1:
            lines.append(line)
            line = " " + t
        else:
            line += " " + t
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _phrase_tokens(name: str) -> list[str]:
    """A display name as header tokens: bare atoms, one quoted-string, or encoded-words."""
    if not name:
        return []
    if name.isascii() and "=?" not in name:
        if _BARE_PHRASE.fullmatch(name):
            return name.split(" ")
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return _text_tokens(name, _atom)         # atoms stay readable, the rest is encoded


def check_address(addr: str) -> str:
    """``addr`` stripped if it can be put in a header and an SMTP envelope, else MessageError."""
    a = (addr or "").strip()
    local, at, domain = a.rpartition("@")
    if not (at and local and domain) or _ADDR_BAD.search(a) or len(a) > 320:
        raise MessageError(f"unusable recipient address {a[:100]!r}")
    return a


def address_header(name: str, display: str | None, addr: str) -> str:
    """``Name: Display <addr>`` (folded), the display name cleaned and encoded when needed."""
    cleaned = _one_line(display, 100).replace('"', "'")
    tokens = _phrase_tokens(cleaned)
    return _fold(name, tokens + [f"<{addr}>"] if tokens else [addr])


def addresses_header(name: str, addresses: list[tuple[str | None, str]]) -> str:
    """``Name: Display <addr>, Other <addr2>`` (folded): :func:`address_header` for a list."""
    tokens: list[str] = []
    for i, (display, addr) in enumerate(addresses):
        cleaned = _one_line(display, 100).replace('"', "'")
        phrase = _phrase_tokens(cleaned)
        part = phrase + [f"<{addr}>"] if phrase else [addr]
        if i < len(addresses) - 1:
            part[-1] += ","
        tokens += part
    return _fold(name, tokens)


def recipient_address(email_addr: str, name: str | None):
    """The To address as an ``email.headerregistry.Address`` (for mails built with the email
    package); the display name is cleaned (CR/LF/controls removed). MessageError if unusable."""
    from email.headerregistry import Address

    addr = check_address(email_addr)
    display = _one_line(name, 100).replace('"', "'")
    try:
        local, _, domain = addr.rpartition("@")
        return Address(display_name=display, username=local, domain=domain)
    except (ValueError, TypeError, IndexError) as exc:
        raise MessageError(f"unusable recipient address {addr[:100]!r}: {exc}") from exc


class _Fixed:
    """Header lines that depend on the settings only, computed once per from/list settings."""

    __slots__ = ("key", "from_line", "envelope_from", "list_id_line", "mailto", "domain")

    def __init__(self, settings):
        self.key = (settings.from_addr, settings.list_id, settings.unsubscribe_mailto)
        sender_name, sender_addr = parseaddr(settings.from_addr)
        self.envelope_from = sender_addr
        try:
            self.from_line = address_header("From", sender_name, check_address(sender_addr))
        except MessageError as exc:
            raise MessageError(f"unusable DIGEST_FROM {settings.from_addr!r}") from exc
        list_id = _one_line(settings.list_id, 200).replace("<", "").replace(">", "").replace(" ", "")
        display = _one_line(sender_name, 60).replace('"', "'")
        if display and display.isascii() and "=?" not in display:
            phrase = ['"' + display.replace("\\", "\\\\") + '"']    # always quoted, as before
        else:
            phrase = _phrase_tokens(display)
        self.list_id_line = _fold("List-Id", phrase + [f"<{list_id}>"])
        mailto = _one_line(settings.unsubscribe_mailto, 254)
        if mailto:
            if mailto.lower().startswith("mailto:"):
                mailto = mailto[7:]
            mailto = mailto.split("?", 1)[0].replace("<", "").replace(">", "").replace(" ", "")
        self.mailto = f"<mailto:{mailto}?subject=unsubscribe>" if mailto else ""
        self.domain = _domain(settings)


_FIXED: dict[int, _Fixed] = {}


def _fixed(settings) -> _Fixed:
    f = _FIXED.get(id(settings))
    key = (settings.from_addr, settings.list_id, settings.unsubscribe_mailto)
    if f is None or f.key != key:
        if len(_FIXED) > 64:
            _FIXED.clear()
        f = _FIXED[id(settings)] = _Fixed(settings)
    return f


def _usable_url(url: str | None) -> bool:
    return bool(url) and url.startswith(("https://", "http://")) and len(url) <= UNSUBSCRIBE_URL_MAX \
        and url.isascii() and not _ADDR_BAD.search(url)


# ------------------------------------------------------------------------------------------------
# bodies


def qp_lines(text: str) -> bytes:
    """Quoted-printable (UTF-8) of ``text``, which is whole lines ("\\n"-terminated): CRLF line
    ends, soft breaks keep every line ≤ 76 characters. Blocks of whole lines encode
    independently, so their encodings can be concatenated."""
    data = text.replace("\n", "\r\n").encode("utf-8", "replace")
    # b2a_qp writes CRLF (also in its soft breaks) when the first line end of its input is CRLF
    return binascii.b2a_qp(data, istext=True)


class QPLineCache:
    """``qp_lines`` with the encodings of long lines remembered. The lines of a digest recur
    across digests (one line per paper, the compiled layout), so a digest whose content is new
    still costs mostly lookups. Bounded: forgets everything when it passes ``max_bytes``."""

    LONG = 200

    def __init__(self, max_bytes: int = 48 << 20):
        self.max_bytes = max_bytes
        self.lines: dict[str, bytes] = {}
        self.size = 0

    def __call__(self, text: str) -> bytes:
        if len(text) < 4 * self.LONG:
            return qp_lines(text)
        lines = self.lines
        out: list[bytes] = []
        pos = 0
        for m in _LONG_LINE.finditer(text):
            start, end = m.span()
            if start > pos:                # the short lines in between: encoded together
                out.append(qp_lines(text[pos:start]))
            line = m.group()
            enc = lines.get(line)
            if enc is None:
                enc = qp_lines(line)
                if self.size > self.max_bytes:
                    lines.clear()
                    self.size = 0
                lines[line] = enc
                self.size += 2 * len(enc) + 100
            out.append(enc)
            pos = end
        if pos < len(text):
            out.append(qp_lines(text[pos:]))
        return b"".join(out)


_LONG_LINE = re.compile(r"(?m)^[^\n]{%d,}\n" % QPLineCache.LONG)
_LINE_CACHE = QPLineCache()


def _normalised(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def _fold_url(name: str, url: str, tail: str = "") -> str:
    """``Name: <url>`` + tail + CRLF, folded so no line passes 78 characters: the URL is broken
    after a '/' (or anywhere, for a long run without one). RFC 2369 has readers ignore
    whitespace inside the angle brackets, so unfolding gives the URL back."""
    lines: list[str] = []
    line = f"{name}: <"
    rest = url + ">" + tail
    while len(line) + len(rest) > MAX_LINE:
        room = MAX_LINE - len(line)
        cut = rest.rfind("/", 0, room) + 1
        if cut <= 0 or (len(line) <= 1 and cut < room // 2):
            cut = max(1, room)
        if cut > room or cut <= 0:
            break
        lines.append(line + rest[:cut])
        line, rest = " ", rest[cut:]
    lines.append(line + rest)
    return "\r\n".join(lines) + "\r\n"


def _part_qp(rendered, which: str) -> bytes:
    # HTML: long lines (one per paper) recur across digests, worth remembering; the text part's
    # lines are short and cheap to encode
    encoder = _LINE_CACHE if which == "html" else qp_lines
    encode = getattr(rendered, f"{which}_qp", None)
    if encode is not None:                       # a digest.email.rendered.Rendered: shared blocks cached
        return encode(encoder)
    return encoder(_normalised(getattr(rendered, which)))


@functools.lru_cache(maxsize=4096)
def _subject_line(subject: str) -> str:
    """The folded Subject header (digests of one content share their subject)."""
    return _fold("Subject", _text_tokens(subject))


@functools.lru_cache(maxsize=64)
def _date(when: datetime) -> str:
    """The Date header's value (many messages go out within one second)."""
    return format_datetime(when)


_PART_HEAD = {
    sub: (f'Content-Type: text/{sub}; charset="utf-8"\r\n'
          'Content-Transfer-Encoding: quoted-printable\r\n\r\n').encode("ascii")
    for sub in ("plain", "html")
}


# ------------------------------------------------------------------------------------------------
# the digest message


def compose(settings, content: DigestContent, rendered, *, now: datetime | None = None) -> Outgoing:
    """The message for one digest. ``rendered`` is a ``digest.email.rendered.Rendered`` (or anything
    with ``subject``, ``text`` and ``html``). Raises MessageError for an unusable recipient."""
    fixed = _fixed(settings)
    recipient = content.recipient
    sid = recipient.subscriber_id
    addr = check_address(recipient.email)
    subject = _one_line(rendered.subject, 250) or "Paper digest"
    message_id = message_id_for(settings, sid, content.edition, domain=fixed.domain)
    edition = content.edition.isoformat()

    unsubscribe = content.unsubscribe_url
    if not (_usable_url(unsubscribe) and _one_line(unsubscribe, 2000) == unsubscribe):
        unsubscribe = tokens.unsubscribe_url(settings, sid, recipient.link_secret)
    list_unsubscribe = _fold_url("List-Unsubscribe", unsubscribe, "," if fixed.mailto else "")
    if fixed.mailto:
        list_unsubscribe += f" {fixed.mailto}\r\n"
    boundary = f"=_digest_{secrets.token_hex(12)}"

    head = "".join((
        fixed.from_line,
        address_header("To", recipient.name, addr),
        _subject_line(subject),
        "Date: ", _date((now or clock.now()).replace(microsecond=0)), "\r\n",
        "Message-ID: ", message_id, "\r\n",
        fixed.list_id_line,
        list_unsubscribe,
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        "Precedence: bulk\r\n",
        EDITION_HEADER, ": ", edition, "\r\n",
        "MIME-Version: 1.0\r\n",
        'Content-Type: multipart/alternative;\r\n boundary="', boundary, '"\r\n',
        "\r\n",
    ))
    # a non-ASCII address anywhere in the header (recipient, sender, unsubscribe mailto) needs
    # raw UTF-8 and SMTPUTF8; display names never do (they are encoded-words)
    international = not head.isascii()
    delimiter = f"--{boundary}\r\n".encode("ascii")
    raw = b"".join((
        head.encode("utf-8"),
        delimiter, _PART_HEAD["plain"], _part_qp(rendered, "text"),
        delimiter, _PART_HEAD["html"], _part_qp(rendered, "html"),
        f"--{boundary}--\r\n".encode("ascii"),
    ))
    return Outgoing(raw, fixed.envelope_from, (addr,), message_id=message_id, subject=subject,
                    edition=edition, smtputf8=international or not fixed.envelope_from.isascii(),
                    html=rendered)


def build_message(settings, content: DigestContent, rendered, *, now: datetime | None = None) -> EmailMessage:
    """The composed message parsed back into an ``EmailMessage`` (tools and older callers; the
    send path uses :func:`compose`)."""
    return compose(settings, content, rendered, now=now).parse()


def as_smtp_bytes(msg) -> bytes:
    """The message as sent on the wire (CRLF line ends)."""
    if isinstance(msg, Outgoing):
        return msg.raw
    return msg.as_bytes(policy=email.policy.SMTP)
