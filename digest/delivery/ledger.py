"""Keeping the send ledger bounded.

Per-paper rows (digest_items) are only needed for the diff while their papers can still be
candidates, i.e. inside the look-back window; after that the first-seen filter alone keeps
an old paper from ever being sent again. Older per-paper rows are deleted (the per-digest
rows stay, with subject, counts and status, for `digest history` and `digest stats`).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from digest import clock
from digest.store.models import Digest, DigestItem


def compact_ledger(session: Session, *, keep_days: int, lookback_days: int, now: datetime | None = None) -> int:
    """Delete per-paper send records older than max(keep_days, lookback_days + 1) days."""
    now = now or clock.now()
    cutoff = now - timedelta(days=max(keep_days, lookback_days + 1))
    old = select(Digest.id).where(Digest.planned_at < cutoff).scalar_subquery()
    result = session.execute(delete(DigestItem).where(DigestItem.digest_id.in_(old)))
    session.commit()
    return result.rowcount or 0
