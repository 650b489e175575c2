"""Ingest listings: fetch, parse, normalise, upsert one row per paper, record the run.

One source's failure never stops the others; a source's upsert is one transaction, so a
failure leaves no half-written rows.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Callable, Iterable

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from digest import clock
from digest.store.db import session_scope
from digest.sources.fetch import FetchError, fetch, is_remote
from digest.store.models import IngestRun, Paper, PaperListing, SourceState
from digest.sources.parse import ParseError, PaperRecord, detect_kind, parse_listing
from digest.store.settings import Settings
from digest.sources.config import SourceSpec

log = logging.getLogger("digest.ingest")
CHUNK = 500
NOT_NEW_TYPES = {"replace", "replace-cross", "absonly"}
# Columns an ingest may change on an existing paper (never id, first_seen_at, is_new).
MERGED = ("arxiv_id", "title", "abstract", "authors", "categories", "primary_category", "version",
          "announce_type", "published_at", "abs_url", "pdf_url", "hf_url", "code_url", "project_url",
          "doi", "journal_ref", "hf_upvotes", "hf_listed_on", "ai_keywords")


_FIRST_ENTRY = re.compile(rb"<(?:item|entry)[\s>/]")
_ENTRY_TAG = re.compile(rb"<(?:item|entry)[\s>/]")
_ENTRY_DATE = re.compile(rb"<(?:pubDate|dc:date|published|updated)[\s>]")
_HEAD_STAMP = re.compile(rb"<(lastBuildDate|pubDate|updated|dc:date)>[^<]{0,64}</\1>")


def listing_fingerprint(body: bytes) -> str:
    """A hash of what a listing says about papers. A feed rebuilt with the same entries and only
    a new channel time stamp (RSS lastBuildDate/pubDate, Atom feed <updated>) gets the same
    fingerprint, so its re-ingest is skipped like a byte-identical one. The stamps are ignored
    only when every entry carries its own date: otherwise the parser dates entries by them."""
    m = _FIRST_ENTRY.search(body)
    if m is None:
        return hashlib.sha256(body).hexdigest()
    head, entries = body[:m.start()], body[m.start():]
    starts = [e.start() for e in _ENTRY_TAG.finditer(entries)] + [len(entries)]
    if all(_ENTRY_DATE.search(entries, a, b) for a, b in zip(starts, starts[1:])):
        head = _HEAD_STAMP.sub(b"", head)
    return hashlib.sha256(head + b"\0" + entries).hexdigest()


@dataclass
class IngestReport:
    source: str
    location: str = ""
    status: str = "ok"          # ok | warning | not-modified | failed
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


def _record_values(rec: PaperRecord) -> dict:
    return {
        "arxiv_id": rec.arxiv_id, "title": rec.title, "abstract": rec.abstract, "authors": rec.authors,
        "categories": rec.categories, "primary_category": rec.categories[0] if rec.categories else None,
        "version": rec.version, "announce_type": rec.announce_type, "published_at": rec.published_at,
        "abs_url": rec.abs_url, "pdf_url": rec.pdf_url, "hf_url": rec.hf_url, "code_url": rec.code_url,
        "project_url": rec.project_url, "doi": rec.doi, "journal_ref": rec.journal_ref,
        "hf_upvotes": rec.hf_upvotes, "hf_listed_on": rec.listed_on if rec.kind == "hf-daily" else None,
        "ai_keywords": rec.ai_keywords,
    }


def _merge(cur: dict, rec: PaperRecord) -> dict:
    """Merge a record into the stored values. arXiv is the authority for the text; HF enriches."""
    new = dict(cur)
    vals = _record_values(rec)
    if rec.kind == "arxiv":
        seen_on_arxiv = bool(cur.get("categories"))
        older = cur.get("version") and rec.version and rec.version < cur["version"]
        if not older:
            for key in ("title", "abstract", "authors", "categories", "primary_category", "doi", "journal_ref"):
                if vals[key]:
                    new[key] = vals[key]
            if rec.version:
                new["version"] = rec.version
            if rec.announce_type:
                new["announce_type"] = rec.announce_type
        elif not seen_on_arxiv:
            new["categories"], new["primary_category"] = vals["categories"], vals["primary_category"]
        for key in ("arxiv_id", "abs_url", "pdf_url"):
            new[key] = vals[key] or new.get(key)
        new["published_at"] = cur.get("published_at") or vals["published_at"]
    else:
        for key in ("hf_url", "code_url", "project_url", "ai_keywords", "hf_listed_on"):
            if vals[key]:
                new[key] = vals[key]
        if vals["hf_upvotes"] is not None:
            new["hf_upvotes"] = vals["hf_upvotes"]
        if not cur.get("categories"):  # never listed by arXiv: HF text is all we have
            for key in ("title", "abstract", "authors"):
                if vals[key]:
                    new[key] = vals[key]
        for key in ("arxiv_id", "abs_url", "pdf_url", "published_at"):
            new[key] = cur.get(key) or vals[key]
    return new


def upsert_records(session: Session, records: Iterable[PaperRecord], source: str, now: datetime) -> IngestReport:
    """Insert or merge records into papers (bulk: a few statements per 500 records)."""
    report = IngestReport(source=source)
    records = list(records)
    table = Paper.__table__
    for start in range(0, len(records), CHUNK):
        chunk = records[start:start + CHUNK]
        ids = list({r.id for r in chunk})
        stored = {
            row["id"]: dict(row)
            for row in session.execute(select(*[table.c[k] for k in ("id", *MERGED)]).where(table.c.id.in_(ids))).mappings()
        }
        state: dict[str, dict] = {}
        inserted: dict[str, dict] = {}
        for rec in chunk:
            cur = state.get(rec.id) or stored.get(rec.id)
            if cur is None:
                vals = _record_values(rec)
                is_new = rec.announce_type not in NOT_NEW_TYPES
                inserted[rec.id] = {"id": rec.id, **vals, "is_new": is_new, "first_seen_at": now, "updated_at": now,
                                    "content_hash": ""}
                state[rec.id] = dict(vals)
                if is_new:
                    report.new += 1
                    report.new_ids.append(rec.id)
                else:  # a new version of a paper we never saw: stored, never announced
                    report.updated += 1
                continue
            merged = _merge(cur, rec)
            if merged != cur:
                report.updated += 1
                state[rec.id] = merged
                if rec.id in inserted:
                    inserted[rec.id].update(merged)
            else:
                report.unchanged += 1
        if inserted:
            session.execute(insert(table), list(inserted.values()))
        changed = [
            {"b_id": pid, **{k: vals[k] for k in MERGED}, "updated_at": now}
            for pid, vals in state.items() if pid not in inserted and vals != stored.get(pid)
        ]
        if changed:
            stmt = update(table).where(table.c.id == bindparam("b_id")).values(
                {k: bindparam(k) for k in (*MERGED, "updated_at")})
            session.connection().execute(stmt, changed)
        _record_listings(session, chunk, source, now)
    return report


def _record_listings(session: Session, chunk: list[PaperRecord], source: str, now: datetime) -> None:
    table = PaperListing.__table__
    ids = list({r.id for r in chunk})
    have = set(session.execute(
        select(table.c.paper_id, table.c.listed_on).where(table.c.source == source, table.c.paper_id.in_(ids))
    ))
    rows = {}
    for rec in chunk:
        key = (rec.id, rec.listed_on or now.date())
        if key not in have and key not in rows:
            rows[key] = {"paper_id": key[0], "source": source, "listed_on": key[1],
                         "announce_type": rec.announce_type or rec.kind, "seen_at": now}
    if rows:
        session.execute(insert(table), list(rows.values()))


def ingest_source(settings: Settings, spec: SourceSpec, *, now: datetime | None = None,
                  today: date | None = None, on_progress: Callable[[str], None] | None = None,
                  store_lock=None) -> IngestReport:
    """Fetch, parse and store one source. Never raises for bad input: failures are in the report.

    ``store_lock`` (the scheduler's): held only while storing, not while fetching, so a slow
    source never holds up a send; papers are then first seen when stored, after any plan
    that could not see them (the plan's diff rests on that)."""
    stamp_at_store = now is None and store_lock is not None
    now = now or clock.now()
    location = spec.location(today or now.date())
    report = IngestReport(source=spec.name, location=location)
    started = clock.now()
    try:
        with session_scope(settings) as session:
            state = session.get(SourceState, spec.name)
        remote = is_remote(location)
        if on_progress:
            on_progress(f"fetching {spec.name}")
        fetched = fetch(location, settings, expect=spec.kind,
                        etag=state.etag if state and remote and state.url == location else None,
                        last_modified=state.last_modified if state and remote and state.url == location else None,
                        base=spec.base)
        if fetched.not_modified:
            report.status = "not-modified"
            _save_run(settings, report, started, state_update={"last_fetch_at": now})
            return report
        body_hash = listing_fingerprint(fetched.body)
        if state and state.body_hash == body_hash and state.url == location:
            # the same entries as what was already stored (byte for byte, but for the channel's
            # time stamps): nothing can have changed
            report.status = "not-modified"
            _save_run(settings, report, started, state_update={"last_fetch_at": now})
            return report
        kind = spec.kind if spec.kind != "auto" else detect_kind(fetched.body, fetched.content_type)
        if on_progress:
            on_progress(f"parsing {spec.name}")
        parsed = parse_listing(fetched.body, kind, spec.name, fetched.content_type)
        report.warnings.extend(parsed.warnings)
        if parsed.fatal:
            raise FetchError(parsed.fatal)
        with store_lock or nullcontext():
            stored_at = clock.now() if stamp_at_store else now
            with session_scope(settings) as session:
                counts = upsert_records(session, parsed.records, spec.name, stored_at)
                _store_state(session, spec.name, location, fetched, body_hash, stored_at)
        report.new, report.updated, report.unchanged, report.new_ids = counts.new, counts.updated, counts.unchanged, counts.new_ids
        report.skipped = parsed.skipped
        if not parsed.records and not parsed.skipped:
            report.warnings.append(f"{spec.name}: the listing is empty (arXiv announces nothing on weekends and holidays)")
        report.status = "warning" if report.warnings or report.skipped else "ok"
    except (FetchError, ParseError) as exc:
        report.status = "failed"
        report.errors.append(str(exc))
    except Exception as exc:  # a bug or a database problem: still one clear line, and the next source runs
        log.exception("ingest of %s failed", spec.name)
        report.status = "failed"
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300] if str(exc) else ""
        report.errors.append(f"{spec.name}: database or internal error ({type(exc).__name__}: {detail}); nothing from this source was stored")
    _save_run(settings, report, started)
    for line in report.warnings:
        log.warning(line)
    for line in report.errors:
        log.error(line)
    return report


def _store_state(session: Session, name: str, location: str, fetched, body_hash: str, now: datetime) -> None:
    state = session.get(SourceState, name) or SourceState(name=name)
    state.url = location
    state.etag = fetched.etag
    state.last_modified = fetched.last_modified
    state.body_hash = body_hash
    state.last_fetch_at = now
    session.add(state)


def _save_run(settings: Settings, report: IngestReport, started: datetime, state_update: dict | None = None) -> None:
    try:
        with session_scope(settings) as session:
            session.add(IngestRun(
                source=report.source, location=report.location[:2000], started_at=started,
                finished_at=clock.now(), status=report.status, new=report.new,
                updated=report.updated, unchanged=report.unchanged, skipped=sum(report.skipped.values()),
                skipped_reasons=dict(report.skipped), errors=report.errors + report.warnings,
            ))
            if state_update:
                state = session.get(SourceState, report.source)
                if state:
                    for key, value in state_update.items():
                        setattr(state, key, value)
    except Exception:  # recording the run must not turn a good ingest into a crash
        log.exception("could not record the ingest run of %s", report.source)


def adhoc_spec(location: str, kind: str = "auto") -> SourceSpec:
    name = location if len(location) <= 120 else location[:60] + "…" + location[-59:]
    return SourceSpec(name=name, kind=kind, url=location, base=Path.cwd())


def ingest_all(settings: Settings, specs: list[SourceSpec], **kwargs) -> list[IngestReport]:
    return [ingest_source(settings, spec, **kwargs) for spec in specs if spec.enabled]
