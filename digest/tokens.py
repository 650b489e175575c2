"""Signed, compact tokens for the unsubscribe / preferences / confirm links.

A token is 36 bytes, urlsafe-base64 encoded without padding (48 characters):

    version (1) | purpose code (1) | subscriber id (8) | issued-at (4) | expires-at (4) | mac (18)

``mac`` is HMAC-SHA256 (truncated to 144 bits) keyed with ``settings.secret_key`` over a
domain-separation prefix, the purpose *name* and the 18 payload bytes. ``expires-at`` 0 means
"never" (unsubscribe and preferences links must keep working in old emails). 36 bytes is a
multiple of 3, so every base64 character carries payload bits: changing any character of a
token changes the decoded bytes and fails the MAC.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from digest import clock

PURPOSES: dict[str, int] = {"unsubscribe": 1, "preferences": 2, "confirm": 3, "digest": 4}
_PURPOSE_NAMES = {code: name for name, code in PURPOSES.items()}

_VERSION = 1
_PAYLOAD = struct.Struct(">BBQII")   # 18 bytes
_MAC_LEN = 18
_RAW_LEN = _PAYLOAD.size + _MAC_LEN  # 36
_TOKEN_LEN = _RAW_LEN * 4 // 3       # 48
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{%d}" % _TOKEN_LEN)
_DOMAIN = b"digest.token.v1\x00"
_MAX_ID = 2**64 - 1
_MAX_TS = 2**32 - 1


class TokenError(ValueError):
    """A token that must not be honoured. ``reason`` is one of
    "malformed", "tampered", "wrong-purpose", "expired"."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("token secret must not be empty")
    return key


def _mac(key: bytes, purpose: str, payload: bytes) -> bytes:
    msg = _DOMAIN + purpose.encode("ascii") + b"\x00" + payload
    return hmac.new(key, msg, hashlib.sha256).digest()[:_MAC_LEN]


def make_token(secret: str | bytes, purpose: str, subscriber_id: int,
               ttl_seconds: int | None = None, *, now: float | None = None) -> str:
    """A token that proves "``purpose`` for ``subscriber_id``" (expiring after ``ttl_seconds``)."""
    code = PURPOSES.get(purpose)
    if code is None:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {sorted(PURPOSES)}")
    if not isinstance(subscriber_id, int) or not 0 <= subscriber_id <= _MAX_ID:
        raise ValueError(f"subscriber id out of range: {subscriber_id!r}")
    # Links that never expire carry no issue time: the same subscriber and purpose always give
    # the same token, so a digest renders identically whenever it is rendered.
    issued = 0 if ttl_seconds is None else int(clock.timestamp() if now is None else now)
    expires = 0
    if ttl_seconds is not None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        expires = min(issued + int(ttl_seconds), _MAX_TS)
    payload = _PAYLOAD.pack(_VERSION, code, subscriber_id, min(issued, _MAX_TS), expires)
    raw = payload + _mac(_key(secret), purpose, payload)
    return base64.urlsafe_b64encode(raw).decode("ascii")  # 36 bytes -> no padding


def verify_token(secret: str | bytes, token: str, purpose: str,
                 max_age: int | None = None, *, now: float | None = None) -> int:
    """Return the subscriber id carried by ``token`` or raise :class:`TokenError`."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise TokenError("malformed", "not a token")
    raw = base64.urlsafe_b64decode(token)
    payload, mac = raw[:_PAYLOAD.size], raw[_PAYLOAD.size:]
    version, code, subscriber_id, issued, expires = _PAYLOAD.unpack(payload)
    if version != _VERSION:
        raise TokenError("malformed", f"unknown token version {version}")
    token_purpose = _PURPOSE_NAMES.get(code)
    if token_purpose is None:
        raise TokenError("tampered", "unknown purpose code")
    # The MAC is checked against the purpose the token claims, so a genuine token for another
    # purpose is told apart from a forged one; either way it is refused.
    if not hmac.compare_digest(mac, _mac(_key(secret), token_purpose, payload)):
        raise TokenError("tampered", "signature mismatch")
    if token_purpose != purpose:
        raise TokenError("wrong-purpose", f"token is for {token_purpose!r}, not {purpose!r}")
    current = clock.timestamp() if now is None else now
    if expires and current >= expires:
        raise TokenError("expired", "token has expired")
    if max_age is not None and current - issued > max_age:
        raise TokenError("expired", f"token older than {max_age} s")
    return subscriber_id


def _link(settings, kind: str, subscriber_id: int) -> str:
    token = make_token(settings.secret_key, kind, subscriber_id)
    return f"{settings.public_url.rstrip('/')}/{kind}/{token}"


def unsubscribe_url(settings, subscriber_id: int) -> str:
    """``{public_url}/unsubscribe/{token}`` (never expires)."""
    return _link(settings, "unsubscribe", subscriber_id)


def preferences_url(settings, subscriber_id: int) -> str:
    """``{public_url}/preferences/{token}`` (never expires)."""
    return _link(settings, "preferences", subscriber_id)


def confirm_url(settings, subscriber_id: int, ttl_seconds: int = 7 * 86400) -> str:
    """``{public_url}/confirm/{token}``, valid for ``ttl_seconds`` (a week by default)."""
    token = make_token(settings.secret_key, "confirm", subscriber_id, ttl_seconds)
    return f"{settings.public_url.rstrip('/')}/confirm/{token}"


def digest_url(settings, digest_id: int) -> str:
    """``{public_url}/digest/{token}``: the web page of one digest (the token carries the
    ``digests`` row id, not a subscriber id; never expires)."""
    return _link(settings, "digest", digest_id)
