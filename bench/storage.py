"""Database size and ledger compaction for the scale bench's storage stage."""
from __future__ import annotations

import os
import sqlite3
from datetime import datetime

from bench.common import db_path, make_settings


def db_size(kw: dict) -> dict:
    """File size after a WAL checkpoint, and the bytes in use (pages minus free pages)."""
    from digest.store.db import dispose_all

    dispose_all()
    con = sqlite3.connect(db_path(kw))
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = con.execute("PRAGMA page_size").fetchone()[0]
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0]
        sections = con.execute("SELECT count(*) FROM ledger_sections").fetchone()[0]
        digests = con.execute("SELECT count(*) FROM digests").fetchone()[0]
        # bytes on disk per table and index (SQLite's dbstat: pages in use, free space inside them too)
        objects = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        owner = dict(con.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
    finally:
        con.close()
    ledger = {name: size for name, size in objects.items() if owner.get(name) in LEDGER_TABLES}
    return {"file_bytes": os.path.getsize(db_path(kw)), "used_bytes": (pages - free) * page,
            "ledger_sections": sections, "digests": digests, "ledger_bytes": sum(ledger.values()),
            "ledger_objects": dict(sorted(ledger.items(), key=lambda kv: -kv[1]))}


LEDGER_TABLES = ("digests", "ledger_sections")


def compact(kw: dict, now: datetime) -> int:
    from digest.store.db import session_factory
    from digest.delivery.ledger import compact_ledger

    s = make_settings(kw)
    with session_factory(s)() as session:
        return compact_ledger(session, keep_days=s.ledger_keep_days, lookback_days=s.lookback_days, now=now)


def window_days(kw: dict) -> int:
    return max(kw["ledger_keep_days"], kw["lookback_days"] + 1)
