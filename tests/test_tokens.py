"""Signed unsubscribe / preferences / confirm tokens."""
from __future__ import annotations

import string

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from digest.store.settings import Settings
from digest.tokens import TokenError, make_token, preferences_url, read_token, unsubscribe_url, verify_token

SECRET = "k" * 32
ALPHABET = string.ascii_letters + string.digits + "-_"


def test_round_trip_and_compact():
    tok = make_token(SECRET, "unsubscribe", 12345)
    assert len(tok) == 60 and set(tok) <= set(ALPHABET)
    assert verify_token(SECRET, tok, "unsubscribe") == 12345


@pytest.mark.parametrize("purpose", ["unsubscribe", "preferences", "confirm"])
def test_purposes_do_not_mix(purpose):
    tok = make_token(SECRET, purpose, 7)
    for other in {"unsubscribe", "preferences", "confirm"} - {purpose}:
        with pytest.raises(TokenError) as info:
            verify_token(SECRET, tok, other)
        assert info.value.reason == "wrong-purpose"


def test_other_subscriber_or_key_fails():
    assert make_token(SECRET, "unsubscribe", 1) != make_token(SECRET, "unsubscribe", 2)
    with pytest.raises(TokenError) as info:
        verify_token("another-secret", make_token(SECRET, "unsubscribe", 1), "unsubscribe")
    assert info.value.reason == "tampered"


def test_expiry_and_max_age():
    tok = make_token(SECRET, "confirm", 5, ttl_seconds=60, now=1_000_000)
    assert verify_token(SECRET, tok, "confirm", now=1_000_059) == 5
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, tok, "confirm", now=1_000_060)
    assert info.value.reason == "expired"
    forever = make_token(SECRET, "unsubscribe", 5, now=1_000_000)
    assert verify_token(SECRET, forever, "unsubscribe", now=4_000_000_000) == 5
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, forever, "unsubscribe", max_age=10, now=1_000_011)
    assert info.value.reason == "expired"


@pytest.mark.parametrize("bad", ["", "abc", "x" * 60 + "=", "!" * 60, "A" * 59, "A" * 61, "A" * 48, None, 123])
def test_malformed(bad):
    with pytest.raises(TokenError) as info:
        verify_token(SECRET, bad, "unsubscribe")
    assert info.value.reason in ("malformed", "tampered")


def test_unknown_purpose_is_a_programming_error():
    with pytest.raises(ValueError):
        make_token(SECRET, "admin", 1)


@hsettings(max_examples=300, deadline=None)
@given(sid=st.integers(min_value=0, max_value=2**63 - 1), index=st.integers(min_value=0, max_value=59),
       char=st.sampled_from(ALPHABET), purpose=st.sampled_from(["unsubscribe", "preferences", "confirm"]))
def test_tampering_any_character_fails(sid, index, char, purpose):
    tok = make_token(SECRET, purpose, sid)
    if tok[index] == char:
        return
    forged = tok[:index] + char + tok[index + 1:]
    with pytest.raises(TokenError):
        verify_token(SECRET, forged, purpose)


def test_url_helpers():
    s = Settings(database_url="sqlite://", public_url="https://digest.example.org/", secret_key=SECRET)
    u = unsubscribe_url(s, 42, "their-secret")
    p = preferences_url(s, 42, "their-secret")
    assert u.startswith("https://digest.example.org/unsubscribe/")
    assert p.startswith("https://digest.example.org/preferences/")
    assert verify_token(SECRET, u.rsplit("/", 1)[1], "unsubscribe", bind="their-secret") == 42
    assert verify_token(SECRET, p.rsplit("/", 1)[1], "preferences", bind="their-secret") == 42


def test_a_token_is_bound_to_its_subjects_secret():
    """Issue 17 §1: the same id with another secret (a re-created or rotated subscriber) is refused
    as "unknown" (genuine but dead), a forgery as "tampered"; no binding works for plain subjects."""
    tok = make_token(SECRET, "preferences", 9, bind="old-secret")
    assert verify_token(SECRET, tok, "preferences", bind="old-secret") == 9
    for other in ("new-secret", "", None):
        with pytest.raises(TokenError) as info:
            verify_token(SECRET, tok, "preferences", bind=other)
        assert info.value.reason == "unknown"
    plain = make_token(SECRET, "preferences", 9)
    assert verify_token(SECRET, plain, "preferences") == 9
    read = read_token(SECRET, tok, "preferences")
    assert read.subject_id == 9 and not read.legacy and read.bound_to("old-secret") and not read.bound_to("x")


def test_version_1_tokens_are_read_as_legacy_and_bound_to_nothing():
    import base64
    import hashlib
    import hmac
    import struct

    payload = struct.pack(">BBQII", 1, 1, 77, 0, 0)
    mac = hmac.new(SECRET.encode(), b"digest.token.v1\x00unsubscribe\x00" + payload, hashlib.sha256).digest()[:18]
    old = base64.urlsafe_b64encode(payload + mac).decode()
    t = read_token(SECRET, old, "unsubscribe")
    assert t.legacy and t.subject_id == 77 and not t.bound_to(None) and not t.bound_to("")
    with pytest.raises(TokenError):
        verify_token(SECRET, old, "unsubscribe")
    with pytest.raises(TokenError) as info:
        read_token("other-key", old, "unsubscribe")
    assert info.value.reason == "tampered"
