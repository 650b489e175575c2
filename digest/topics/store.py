"""Matching stored papers: once per paper and topics-config version, in bulk."""
from __future__ import annotations

from datetime import datetime, timedelta

from digest import clock
from digest.topics.match import Matcher
from digest.topics.config import TopicConfig


def match_pending(
    session,
    config: TopicConfig,
    matcher: Matcher | None = None,
    *,
    lookback_days: int | None = None,
    all_papers: bool = False,
    batch_size: int = 500,
    now: datetime | None = None,
    version: str | None = None,
) -> int:
    """Match every stored paper whose ``matched_version`` is not ``config.version``.

    Only papers first seen within ``2 * lookback_days`` days (default: the settings' value)
    are considered, since older papers never appear in an edition; ``all_papers=True`` matches
    every stored paper. For each paper its old :class:`TopicMatch` rows are replaced by the new
    ones and ``matched_version`` is set, in bulk per batch. Returns the number of papers matched.
    Idempotent: a second call with the same config does nothing.
    """
    from sqlalchemy import delete, insert, or_, select, update

    from digest.store.models import Paper, TopicMatch, utcnow

    matcher = matcher or Matcher(config)
    version = version or config.version
    query = select(Paper).where(or_(Paper.matched_version.is_(None), Paper.matched_version != version))
    if not all_papers:
        if lookback_days is None:
            from digest.store.settings import get_settings

            lookback_days = get_settings().lookback_days
        since = (now or clock.now()) - timedelta(days=2 * lookback_days)
        query = query.where(Paper.first_seen_at >= since)
    # Two runs may match at once (two `send-now`, a scheduler and a CLI run): on PostgreSQL the
    # second waits on the row locks, then skips the papers the first has matched meanwhile
    # (the WHERE is re-checked on the committed rows). SQLite has one writer anyway.
    query = query.order_by(Paper.id).with_for_update()
    done = 0
    while True:
        papers = session.scalars(query.limit(batch_size)).all()
        if not papers:
            break
        ids = [p.id for p in papers]
        stamp = now or utcnow()
        rows = []
        for paper, assignments in zip(papers, matcher.match_many(papers)):
            for a in assignments:
                rows.append({"paper_id": paper.id, "topic_id": a.topic_id, "score": a.score,
                             "matched": a.matched, "matched_at": stamp})
        session.execute(delete(TopicMatch).where(TopicMatch.paper_id.in_(ids)))
        if rows:
            session.execute(insert(TopicMatch), rows)
        session.execute(
            update(Paper).where(Paper.id.in_(ids)).values(matched_version=version).execution_options(synchronize_session=False)
        )
        session.flush()
        for paper in papers:
            session.expire(paper, ["matched_version"])
        done += len(ids)
        if len(ids) < batch_size:
            break
    return done
