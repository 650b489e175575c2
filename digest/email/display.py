"""Display text from hostile sources: one clean line, a length cap cut at a word, only plain
http(s) URLs as links, short dates."""
from __future__ import annotations

import re
from datetime import date, datetime

URL_MAX = 900
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _build_clean_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for cp in list(range(0x00, 0x20)) + list(range(0x7F, 0xA0)):
        table[cp] = " "                       # C0/C1 controls incl. CR, LF, TAB
    for cp in (0x2028, 0x2029, 0x85):
        table[cp] = " "                       # line/paragraph separators
    for cp in list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)) + [0x200E, 0x200F, 0x061C]:
        table[cp] = None                      # bidi embeddings/overrides/isolates/marks (spoofing)
    for cp in [0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB, 0xFFFE, 0xFFFF] + list(range(0xD800, 0xE000)):
        table[cp] = None                      # BOM, interlinear annotations, lone surrogates
    return table


_CLEAN = _build_clean_table()
# absolute http(s), no userinfo@ (https://arxiv.org@evil.example), no spaces or controls
_URL_OK = re.compile(r"https?://[^\x00-\x20\x7f/?#\\@]+(?:[/?#][^\x00-\x20\x7f]*)?", re.I)


def clean_text(value, limit: int) -> str:
    """One line of display text: no control characters, collapsed whitespace, at most ``limit``
    characters (cut at a word, with an ellipsis)."""
    if not value:
        return ""
    if not isinstance(value, str):
        value = str(value)
    s = value[: limit * 2 + 64]
    if not s.isprintable():                   # fast path: nothing to remove
        s = s.translate(_CLEAN)
    s = " ".join(s.split())
    if len(s) > limit:
        s = trim_words(s, limit)
    return s


def trim_words(s: str, limit: int) -> str:
    if len(s) <= limit:
        return s
    if limit <= 1:
        return "…"
    cut = s[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


def safe_url(value) -> str | None:
    """``value`` if it is a plain absolute http(s) URL, else None (never linked)."""
    if not value or not isinstance(value, str):
        return None
    u = value.strip()
    if len(value) > URL_MAX + 64 or len(u) > URL_MAX or not u.isascii():
        return None
    return u if _URL_OK.fullmatch(u) else None


def format_date(d) -> str:
    if isinstance(d, datetime):
        d = d.date()
    if not isinstance(d, date):
        return ""
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"
