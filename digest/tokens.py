"""Signed, compact tokens for the unsubscribe / preferences / confirm links (and any other
signed subject id, e.g. a digest id).

A token is 45 bytes, urlsafe-base64 encoded without padding (60 characters):

    version 2 (1) | purpose code (1) | subject id (8) | issued-at (4) | expires-at (4) | bind tag (9) | mac (18)

``mac`` is HMAC-SHA256 (truncated to 144 bits) keyed with ``settings.secret_key`` over a
domain-separation prefix, the purpose *name*, the 18 payload bytes and the bind tag: it proves
the server issued the token. ``bind tag`` is a keyed hash (72 bits) of the payload and a
*binding*: for subscriber links the subscriber's own random ``link_secret``, so a link dies
when that subscriber is deleted, re-created or has the secret rotated, even if the id came
back. Subjects without a binding use the empty one. ``expires-at`` 0 means "never"
(unsubscribe and preferences links must keep working in old emails). 45 bytes is a multiple
of 3, so every base64 character carries bits: changing any character fails the MAC.

Version 1 tokens (48 characters, no bind tag) were issued before links were bound; they are
read with ``legacy=True`` so a caller can decide what, if anything, they may still do.

    make_token(key, "preferences", sub.id, bind=sub.link_secret) -> str
    verify_token(key, tok, "preferences", bind=sub.link_secret) -> sub.id       # or TokenError
    t = read_token(key, tok, "preferences"); t.subject_id; t.bound_to(secret)  # look up, then bind
"""
from __future__ import annotations

import base64
import hmac
import re
import struct
from dataclasses import dataclass

from digest import clock

PURPOSES: dict[str, int] = {"unsubscribe": 1, "preferences": 2, "confirm": 3, "digest": 4}
_PURPOSE_NAMES = {code: name for name, code in PURPOSES.items()}

_VERSION = 2
_PAYLOAD = struct.Struct(">BBQII")   # 18 bytes
_BIND_LEN = 9
_MAC_LEN = 18
_RAW_LEN = _PAYLOAD.size + _BIND_LEN + _MAC_LEN   # 45
TOKEN_LEN = _RAW_LEN * 4 // 3                     # 60
_V1_LEN = 48                                      # 18 payload + 18 mac, no bind tag
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{%d}|[A-Za-z0-9_-]{%d}" % (TOKEN_LEN, _V1_LEN))
_DOMAIN = {1: b"digest.token.v1\x00", 2: b"digest.token.v2\x00"}
MAX_ID = 2**63 - 1     # the databases' signed 64-bit integer range
_MAX_TS = 2**32 - 1


class TokenError(ValueError):
    """A token that must not be honoured. ``reason`` is one of "malformed", "tampered",
    "wrong-purpose", "expired", and (from callers that look the subject up) "unknown"."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Token:
    """A token whose signature, purpose and expiry were checked, but not yet its binding."""

    subject_id: int
    purpose: str
    issued: int
    legacy: bool            # a version-1 token: carries no binding at all
    _payload: bytes
    _tag: bytes
    _key: bytes

    def bound_to(self, bind: str | bytes | None) -> bool:
        """True when the token was made with this binding (never for a legacy token)."""
        if self.legacy:
            return False
        return hmac.compare_digest(self._tag, _bind_tag(self._key, self.purpose, self._payload, bind))


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("token secret must not be empty")
    return key


def _bytes(bind: str | bytes | None) -> bytes:
    if bind is None:
        return b""
    return bind.encode("utf-8") if isinstance(bind, str) else bytes(bind)


def _bind_tag(key: bytes, purpose: str, payload: bytes, bind: str | bytes | None) -> bytes:
    msg = _DOMAIN[2] + b"bind\x00" + purpose.encode("ascii") + b"\x00" + payload + _bytes(bind)
    return hmac.digest(key, msg, "sha256")[:_BIND_LEN]      # (one-shot: the same MAC, faster)


def _mac(key: bytes, version: int, purpose: str, signed: bytes) -> bytes:
    msg = _DOMAIN[version] + purpose.encode("ascii") + b"\x00" + signed
    return hmac.digest(key, msg, "sha256")[:_MAC_LEN]


def make_token(secret: str | bytes, purpose: str, subject_id: int,
               ttl_seconds: int | None = None, *, now: float | None = None,
               bind: str | bytes | None = None) -> str:
    """A token that proves "``purpose`` for ``subject_id``" (expiring after ``ttl_seconds``),
    valid only together with ``bind`` (a subscriber's ``link_secret``; None for none)."""
    code = PURPOSES.get(purpose)
    if code is None:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {sorted(PURPOSES)}")
    if not isinstance(subject_id, int) or not 0 <= subject_id <= MAX_ID:
        raise ValueError(f"subject id out of range: {subject_id!r}")
    # Links that never expire carry no issue time: the same subject, binding and purpose always
    # give the same token, so a digest renders identically whenever it is rendered.
    issued = 0 if ttl_seconds is None else int(clock.timestamp() if now is None else now)
    expires = 0
    if ttl_seconds is not None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        expires = min(issued + int(ttl_seconds), _MAX_TS)
    key = _key(secret)
    payload = _PAYLOAD.pack(_VERSION, code, subject_id, min(issued, _MAX_TS), expires)
    signed = payload + _bind_tag(key, purpose, payload, bind)
    return base64.urlsafe_b64encode(signed + _mac(key, _VERSION, purpose, signed)).decode("ascii")


def read_token(secret: str | bytes, token: str, purpose: str,
               max_age: int | None = None, *, now: float | None = None) -> Token:
    """Check format, signature, purpose and age; the caller then checks ``bound_to``.
    Raises :class:`TokenError`."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise TokenError("malformed", "not a token")
    raw = base64.urlsafe_b64decode(token)
    payload = raw[:_PAYLOAD.size]
    version, code, subject_id, issued, expires = _PAYLOAD.unpack(payload)
    if version != (2 if len(token) == TOKEN_LEN else 1):
        raise TokenError("malformed", f"unknown token version {version}")
    signed, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
    token_purpose = _PURPOSE_NAMES.get(code)
    if token_purpose is None:
        raise TokenError("tampered", "unknown purpose code")
    # The MAC is checked against the purpose the token claims, so a genuine token for another
    # purpose is told apart from a forged one; either way it is refused.
    key = _key(secret)
    if not hmac.compare_digest(mac, _mac(key, version, token_purpose, signed)):
        raise TokenError("tampered", "signature mismatch")
    if token_purpose != purpose:
        raise TokenError("wrong-purpose", f"token is for {token_purpose!r}, not {purpose!r}")
    current = clock.timestamp() if now is None else now
    if expires and current >= expires:
        raise TokenError("expired", "token has expired")
    if max_age is not None and current - issued > max_age:
        raise TokenError("expired", f"token older than {max_age} s")
    return Token(subject_id, purpose, issued, version == 1, payload, signed[_PAYLOAD.size:], key)


def verify_token(secret: str | bytes, token: str, purpose: str,
                 max_age: int | None = None, *, now: float | None = None,
                 bind: str | bytes | None = None) -> int:
    """Return the subject id carried by ``token`` or raise :class:`TokenError` (reason
    "unknown" when the token is genuine but was made with another binding)."""
    t = read_token(secret, token, purpose, max_age, now=now)
    if not t.bound_to(bind):
        raise TokenError("unknown", "link no longer valid")
    return t.subject_id


def _link(settings, kind: str, subscriber_id: int, link_secret: str | None,
          ttl_seconds: int | None = None) -> str:
    token = make_token(settings.secret_key, kind, subscriber_id, ttl_seconds, bind=link_secret)
    return f"{settings.public_url.rstrip('/')}/{kind}/{token}"


def unsubscribe_url(settings, subscriber_id: int, link_secret: str | None) -> str:
    """``{public_url}/unsubscribe/{token}`` (never expires)."""
    return _link(settings, "unsubscribe", subscriber_id, link_secret)


def preferences_url(settings, subscriber_id: int, link_secret: str | None) -> str:
    """``{public_url}/preferences/{token}`` (never expires)."""
    return _link(settings, "preferences", subscriber_id, link_secret)


def confirm_url(settings, subscriber_id: int, link_secret: str | None, ttl_seconds: int = 7 * 86400) -> str:
    """``{public_url}/confirm/{token}``, valid for ``ttl_seconds`` (a week by default)."""
    return _link(settings, "confirm", subscriber_id, link_secret, ttl_seconds)


def digest_url(settings, digest_id: int, link_secret: str | None) -> str:
    """``{public_url}/digest/{token}``: the web page of one digest (the token carries the
    ``digests`` row id and is bound to its subscriber's secret; never expires)."""
    return _link(settings, "digest", digest_id, link_secret)
