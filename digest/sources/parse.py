"""Parse daily listings into PaperRecords: arXiv RSS 2.0 / Atom (feedparser) and HF Daily Papers JSON.

Parsing never raises for bad content: it keeps every entry that parsed, counts skipped ones
with a reason, and reports what was wrong as warnings (or a fatal error when nothing usable).
"""
from __future__ import annotations

import calendar
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import feedparser

from digest.sources.ids import abs_url, fallback_id, parse_arxiv_id, pdf_url
from digest.sources.textclean import clean_text, split_authors

MAX_TITLE = 1_000
MAX_ABSTRACT = 20_000
MAX_AUTHORS = 500
ANNOUNCE_TYPES = {"new", "cross", "replace", "replace-cross", "absonly"}
_DESC_RE = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?", re.IGNORECASE
)


@dataclass
class PaperRecord:
    id: str
    kind: str                         # "arxiv" | "hf-daily"
    title: str
    abstract: str = ""
    arxiv_id: str | None = None
    version: int | None = None
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    announce_type: str | None = None
    published_at: datetime | None = None
    listed_on: date | None = None
    abs_url: str | None = None
    pdf_url: str | None = None
    hf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    doi: str | None = None
    journal_ref: str | None = None
    hf_upvotes: int | None = None
    ai_keywords: list[str] | None = None


@dataclass
class ParseResult:
    kind: str
    records: list[PaperRecord] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    fatal: str | None = None          # nothing usable came out of the document


class ParseError(Exception):
    pass


def detect_kind(body: bytes, content_type: str | None = None) -> str:
    ct = (content_type or "").lower()
    if "json" in ct:
        return "hf-daily"
    if "xml" in ct or "rss" in ct or "atom" in ct:
        return "arxiv"
    stripped = body.lstrip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    head = stripped[:1]
    return "hf-daily" if head in (b"[", b"{") else "arxiv"


def _struct_to_dt(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return None


def _http_url(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if value.lower().startswith(("http://", "https://")) and len(value) < 2000 else None


# ---------------------------------------------------------------- arXiv RSS / Atom

def parse_arxiv(body: bytes, source: str = "feed") -> ParseResult:
    result = ParseResult(kind="arxiv")
    if not body.strip():
        result.fatal = f"{source}: empty response (no feed at all)"
        return result
    # No sanitising here: every field becomes plain text (clean_text) and is escaped when
    # rendered; feedparser's sanitiser would eat mathematics such as "k<n and m>p".
    feed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    if feed.get("bozo"):
        exc = feed.get("bozo_exception")
        result.warnings.append(f"{source}: feed is not well-formed ({type(exc).__name__}: {exc}); kept the entries that parsed")
    if not feed.entries:
        if feed.get("bozo") and not feed.get("feed"):
            result.fatal = f"{source}: no feed could be read ({feed.get('bozo_exception')})"
        elif not feed.get("version") and body.strip():
            result.fatal = f"{source}: not an RSS or Atom feed"
        return result
    feed_date = _struct_to_dt(feed.feed.get("published_parsed") or feed.feed.get("updated_parsed"))
    broken = bool(feed.get("bozo"))
    for index, entry in enumerate(feed.entries):
        _collect(result, source, f"entry {index + 1}", lambda: _arxiv_entry(entry, feed_date, broken))
    return result


def _collect(result: ParseResult, source: str, label: str, convert) -> None:
    """Keep a record, or count why it was skipped; a hostile entry never stops the run."""
    try:
        record = convert()
    except Exception as exc:
        result.skipped["unreadable entry"] += 1
        result.warnings.append(f"{source}: {label} skipped: {type(exc).__name__}: {exc}")
        return
    if isinstance(record, str):
        result.skipped[record] += 1
    else:
        result.records.append(record)


def _arxiv_entry(entry, feed_date: datetime | None, broken: bool = False) -> PaperRecord | str:
    summary = entry.get("summary") or entry.get("description") or ""
    desc = _DESC_RE.match(summary)
    found = None
    for candidate in (entry.get("id"), entry.get("link"), desc.group("id") if desc else None):
        found = parse_arxiv_id(candidate)
        if found:
            break
    title = clean_text(entry.get("title"), max_len=MAX_TITLE)
    if not title:
        return "missing title"
    version = found.version if found else None
    if desc:
        desc_id = parse_arxiv_id(desc.group("id"))
        if desc_id and found and desc_id.id == found.id and desc_id.version:
            version = desc_id.version
        summary = summary[desc.end():]
    if not found:
        link = _http_url(entry.get("link"))
        if not link:
            return "missing id"
        ident = fallback_id("x", link)
    else:
        ident = found.id
    announce = (entry.get("arxiv_announce_type") or (desc.group("type") if desc else "") or "").strip().lower()
    if broken and not announce and not summary.strip():
        return "incomplete entry"  # e.g. cut off by a truncated document: do not store half a paper
    if announce and announce not in ANNOUNCE_TYPES:
        announce = "new" if announce.startswith("new") else announce[:16]
    tags = [t.get("term", "").strip() for t in entry.get("tags", []) if t.get("term")]
    categories = list(dict.fromkeys(t for t in tags if len(t) < 32))
    published = _struct_to_dt(entry.get("published_parsed") or entry.get("updated_parsed")) or feed_date
    authors = split_authors(entry.get("author"))
    if not authors and entry.get("authors"):
        authors = [clean_text(a.get("name")) for a in entry["authors"] if a.get("name")]
    return PaperRecord(
        id=ident,
        kind="arxiv",
        arxiv_id=found.id if found else None,
        version=version,
        title=title,
        abstract=clean_text(summary, max_len=MAX_ABSTRACT),
        authors=authors[:MAX_AUTHORS],
        categories=categories,
        announce_type=announce or None,
        published_at=published,
        listed_on=published.date() if published else None,
        abs_url=abs_url(found.id) if found else _http_url(entry.get("link")),
        pdf_url=pdf_url(found.id) if found else None,
        doi=clean_text(entry.get("arxiv_doi"))[:255] or None,
        journal_ref=clean_text(entry.get("arxiv_journal_reference"), max_len=1000) or None,
    )


# ---------------------------------------------------------------- Hugging Face Daily Papers

def parse_hf_daily(body: bytes, source: str = "hf-daily") -> ParseResult:
    result = ParseResult(kind="hf-daily")
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        result.fatal = f"{source}: not valid JSON ({exc})"
        return result
    if isinstance(data, dict):  # tolerate {"papers": [...]} style wrappers
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if not isinstance(data, list):
        result.fatal = f"{source}: expected a JSON list of daily papers"
        return result
    for index, item in enumerate(data):
        _collect(result, source, f"item {index}", lambda: _hf_item(item))
    return result


def _parse_iso(value) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _hf_item(item) -> PaperRecord | str:
    if not isinstance(item, dict):
        return "not an object"
    paper = item.get("paper") if isinstance(item.get("paper"), dict) else item
    if paper.get("withdrawnAt"):
        return "withdrawn"
    raw_id = str(paper.get("id") or "").strip()
    found = parse_arxiv_id(raw_id)
    title = clean_text(str(paper.get("title") or item.get("title") or ""), max_len=MAX_TITLE)
    if not raw_id:
        return "missing id"
    if not title:
        return "missing title"
    ident = found.id if found else fallback_id("hf", raw_id)
    authors = []
    for author in paper.get("authors") or []:
        name = author.get("name") if isinstance(author, dict) else author
        if isinstance(name, str) and name.strip():
            authors.append(clean_text(name))
    keywords = paper.get("ai_keywords")
    keywords = [clean_text(str(k))[:100] for k in keywords if str(k).strip()][:50] if isinstance(keywords, list) else None
    upvotes = paper.get("upvotes")
    added = _parse_iso(item.get("publishedAt")) or _parse_iso(paper.get("publishedAt"))
    slug = found.id if found else raw_id
    return PaperRecord(
        id=ident,
        kind="hf-daily",
        arxiv_id=found.id if found else None,
        version=None,
        title=title,
        abstract=clean_text(str(paper.get("summary") or item.get("summary") or ""), max_len=MAX_ABSTRACT),
        authors=authors[:MAX_AUTHORS],
        published_at=_parse_iso(paper.get("publishedAt")) or added,
        listed_on=added.date() if added else None,
        abs_url=abs_url(found.id) if found else None,
        pdf_url=pdf_url(found.id) if found else None,
        hf_url=f"https://huggingface.co/papers/{slug}" if re.fullmatch(r"[\w./-]{1,100}", slug) else None,
        code_url=_http_url(paper.get("githubRepo")),
        project_url=_http_url(paper.get("projectPage")),
        hf_upvotes=int(upvotes) if isinstance(upvotes, (int, float)) and not isinstance(upvotes, bool)
        and 0 <= upvotes < 2**31 else None,
        ai_keywords=keywords,
    )


def parse_listing(body: bytes, kind: str, source: str, content_type: str | None = None) -> ParseResult:
    if kind == "auto":
        kind = detect_kind(body, content_type)
    if kind == "hf-daily":
        return parse_hf_daily(body, source)
    if kind == "arxiv":
        return parse_arxiv(body, source)
    raise ParseError(f"unknown source kind {kind!r} (expected arxiv, hf-daily or auto)")
