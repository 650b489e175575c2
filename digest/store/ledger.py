"""What each digest carried, stored compactly.

Sections repeat across subscribers far more than whole digests do, so each distinct section
(its id, its papers in order, how many of them are shown) is stored once in
``ledger_sections``, keyed by a hash of that content, and a digest keeps only the ordered ids
of its sections (``digests.sections``, e.g. ``"12,7,431"``). Everyone reads it through
``items_of``. A paper id never contains whitespace (arXiv ids, or the hashed ids of papers
without one), so the papers are stored space-separated.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.store.models import Digest, LedgerSection

CHUNK = 2000  # ids per IN (...) list


@dataclass
class PlannedItem:
    paper_id: str
    section: str
    position: int
    shown: bool


SectionKey = tuple  # (section id, shown count, tuple of paper ids)


def section_keys(items: Sequence[PlannedItem]) -> list[SectionKey]:
    """A digest's items as its sections, in order: consecutive items of one section id form one
    section (items come from the planner in section order, shown papers first)."""
    out: list[SectionKey] = []
    start = 0
    n = len(items)
    while start < n:
        name = items[start].section
        end = start + 1
        while end < n and items[end].section == name:
            end += 1
        group = items[start:end]
        out.append((name, sum(1 for it in group if it.shown), tuple(it.paper_id for it in group)))
        start = end
    return out


def section_hash(key: SectionKey) -> bytes:
    name, shown, papers = key
    return hashlib.blake2b(f"{name}\n{shown}\n{' '.join(papers)}".encode("utf-8"), digest_size=16).digest()


def upsert_sections(conn, keys: Iterable[SectionKey], today: date) -> dict[SectionKey, int]:
    """Section ids for ``keys``, inserting the ones not stored yet (safe with two planners at once:
    insert-or-touch by hash in hash order, so concurrent runs neither duplicate nor deadlock).
    Touching ``used_on`` keeps compaction from deleting a section a new digest is about to use."""
    by_hash = {section_hash(k): k for k in keys}
    out: dict[SectionKey, int] = {}
    if not by_hash:
        return out
    dialect = conn.dialect.name
    table = LedgerSection.__table__
    rows = [{"hash": h, "section": k[0], "shown": k[1], "papers": " ".join(k[2]), "used_on": today}
            for h, k in sorted(by_hash.items())]
    for r, k in zip(rows, (by_hash[h] for h in sorted(by_hash))):
        if len(r["papers"].split()) != len(k[2]):   # would not read back as written
            raise ValueError(f"ledger: a paper id in section {k[0]!r} is empty or contains whitespace")
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        if dialect in ("postgresql", "sqlite"):
            ins = (postgresql if dialect == "postgresql" else sqlite).insert(table)
            stmt = ins.on_conflict_do_update(index_elements=["hash"], set_={"used_on": ins.excluded.used_on})
            for sid, h in conn.execute(stmt.returning(table.c.id, table.c.hash), chunk):
                out[by_hash[bytes(h)]] = sid
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            raise RuntimeError(f"unsupported database {dialect}")
    return out


def encode_ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)


def decode_ids(text: str | None) -> list[int]:
    return [int(x) for x in text.split(",")] if text else []


def section_rows(conn, ids: Iterable[int]) -> dict[int, tuple[str, int, tuple[str, ...]]]:
    """Section id -> (section, how many shown, paper ids in order)."""
    wanted = sorted(set(ids))
    out: dict[int, tuple[str, int, tuple[str, ...]]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        # ids are ints: a literal list, no bound parameters (fast, and no variable limit)
        for sid, name, shown, papers in conn.exec_driver_sql(
                "SELECT id, section, shown, papers FROM ledger_sections "
                f"WHERE id IN ({', '.join(str(int(i)) for i in chunk)})"):
            out[sid] = (name, shown, tuple(papers.split()))
    return out


def load_sections(conn, ids: Iterable[int]) -> dict[int, list[PlannedItem]]:
    """Section id -> its items (shared lists: do not change them)."""
    return {sid: [PlannedItem(pid, name, pos, pos < shown) for pos, pid in enumerate(papers)]
            for sid, (name, shown, papers) in section_rows(conn, ids).items()}


def digest_sections(conn, digest_ids: Iterable[int]) -> dict[int, list[int]]:
    """Digest id -> the ids of the sections it carried, in planned order."""
    ids = sorted({int(i) for i in digest_ids})
    refs: dict[int, list[int]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        for did, text in conn.exec_driver_sql(
                f"SELECT id, sections FROM digests WHERE id IN ({', '.join(str(i) for i in chunk)})"):
            refs[did] = decode_ids(text)
    return refs


def items_of(session_or_conn, digest_ids: Iterable[int]) -> dict[int, list[PlannedItem]]:
    """Digest id -> the items it carried (shown and counted), section by section in planned
    order: two queries per 2,000 digests, each distinct section decoded once."""
    conn = session_or_conn.connection() if isinstance(session_or_conn, Session) else session_or_conn
    refs = digest_sections(conn, digest_ids)
    sections = load_sections(conn, (s for lst in refs.values() for s in lst))
    out: dict[int, list[PlannedItem]] = {}
    for did, lst in refs.items():
        items: list[PlannedItem] = []
        for sid in lst:
            items += sections.get(sid, ())
        out[did] = items
    return out


def sections_of(session: Session, where) -> list[list[PlannedItem]]:
    """The distinct sections carried by the digests matching ``where`` (a SQLAlchemy condition
    on Digest), each once however many digests carried it: for per-topic counts."""
    ids: set[int] = set()
    for (text,) in session.execute(select(Digest.sections).where(where, Digest.sections.is_not(None))):
        ids.update(decode_ids(text))
    return list(load_sections(session.connection(), ids).values())
