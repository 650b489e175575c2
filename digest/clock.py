"""The one source of "now" for the pipeline.

Every module asks `clock.now()` instead of the system clock, so tests (and an operator
replaying a past day) can move time: `DIGEST_NOW=2026-11-21T08:00:00Z` starts the clock at
that instant and lets it run on from there, like faketime. Unset, it is the system clock.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

_ZERO = timedelta(0)
_cache: tuple[str, timedelta] | None = None


def parse_instant(value: str) -> datetime:
    """An ISO 8601 instant; a value without an offset is UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _offset() -> timedelta:
    global _cache
    value = os.environ.get("DIGEST_NOW")
    if not value:
        return _ZERO
    if _cache is None or _cache[0] != value:
        # the offset is fixed when a value is first seen, so the clock keeps running
        _cache = (value, parse_instant(value) - datetime.now(timezone.utc))
    return _cache[1]


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(timezone.utc) + _offset()


def timestamp() -> float:
    """`now()` as POSIX seconds."""
    return time.time() + _offset().total_seconds()
