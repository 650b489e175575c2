"""Keeping the send ledger bounded.

What a digest carried (its section list) is only needed for the diff while its papers can
still be candidates, i.e. inside the look-back window; after that the first-seen filter alone
keeps an old paper from ever being sent again. So older digests drop their section list (the
per-digest rows stay, with subject, counts and status, for `digest history` and `digest
stats`), and sections no digest refers to any more are deleted.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from digest import clock
from digest.store.ledger import decode_ids
from digest.store.models import Digest, LedgerSection


def compact_ledger(session: Session, *, keep_days: int, lookback_days: int, now: datetime | None = None) -> int:
    """Forget what digests older than max(keep_days, lookback_days + 1) days carried, and
    delete the sections no digest refers to; returns the number of sections deleted."""
    now = now or clock.now()
    cutoff = now - timedelta(days=max(keep_days, lookback_days + 1))
    # the edition bound lets the (edition, status) index skip the recent rows
    session.execute(update(Digest).where(Digest.edition <= cutoff.date(), Digest.planned_at < cutoff,
                                         Digest.sections.is_not(None)).values(sections=None))
    referenced: set[int] = set()
    for (text,) in session.execute(Digest.__table__.select().with_only_columns(Digest.sections)
                                   .where(Digest.sections.is_not(None))):
        referenced.update(decode_ids(text))
    # a section touched since the cutoff may be about to get a digest (a planner running now)
    stale = [sid for (sid,) in session.execute(
        LedgerSection.__table__.select().with_only_columns(LedgerSection.id)
        .where(LedgerSection.used_on < cutoff.date())) if sid not in referenced]
    postgres = session.get_bind().dialect.name == "postgresql"
    deleted = 0
    for start in range(0, len(stale), 2000):
        chunk = stale[start:start + 2000]
        if postgres:
            # lock in hash order, as planners do (no deadlock), skipping rows a planner holds now
            chunk = list(session.scalars(
                select(LedgerSection.id).where(LedgerSection.id.in_(chunk), LedgerSection.used_on < cutoff.date())
                .order_by(LedgerSection.hash).with_for_update(skip_locked=True)))
        result = session.execute(delete(LedgerSection).where(
            LedgerSection.id.in_(chunk), LedgerSection.used_on < cutoff.date()))
        deleted += result.rowcount or 0
    session.commit()
    return deleted
