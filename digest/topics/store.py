"""Matching stored papers: once per paper and topics-config version, in bulk."""
from __future__ import annotations

from datetime import datetime, timedelta

from digest import clock
from digest.topics.match import Matcher
from digest.topics.config import TopicConfig

NEAR_LEXICAL = 0.15  # a lexical score this far below a topic's min_score is "just below"
NEAR_LEARNED = 0.25  # ... a learned probability this far below its threshold


def decide_many(matcher, papers) -> tuple[list[list], list]:
    """For each paper: its assignments, and its best topic just below the threshold (or None)."""
    learned_near: list = [None] * len(papers)
    learned: set[str] = set()
    if hasattr(matcher, "decide"):  # the learned matcher says how close each of its topics came
        rows = matcher.decide(papers)
        assigned = [[a for a, ok in row if ok] for row in rows]
        learned_near = [next((a for a, ok in row if not ok and a.score >= 0.5 - NEAR_LEARNED), None) for row in rows]
        learned = set(matcher.learned_topics)
    else:
        assigned = matcher.match_many(papers)
    lexical = getattr(matcher, "lexical", None) or matcher
    near = []
    for paper, got, best in zip(papers, assigned, learned_near):
        taken = {a.topic_id for a in got}
        for c in lexical.candidates(paper) if best is None else ():  # best first
            tid = c.assignment.topic_id
            if tid not in taken and tid not in learned and not c.assigned and \
                    c.assignment.score >= config_min(lexical, tid) - NEAR_LEXICAL:
                best = c.assignment
                break
        near.append(best)
    return assigned, near


def config_min(matcher, topic_id: str) -> float:
    return matcher.config.by_id[topic_id].min_score


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

    from digest.store.models import NearMatch, Paper, TopicMatch, utcnow

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
        rows, near_rows = [], []
        assigned, near = decide_many(matcher, papers)
        for paper, assignments, n in zip(papers, assigned, near):
            for a in assignments:
                rows.append({"paper_id": paper.id, "topic_id": a.topic_id, "score": a.score,
                             "matched": a.matched, "matched_at": stamp})
            if n is not None:
                near_rows.append({"paper_id": paper.id, "topic_id": n.topic_id, "score": n.score, "matched": n.matched})
        session.execute(delete(TopicMatch).where(TopicMatch.paper_id.in_(ids)))
        session.execute(delete(NearMatch).where(NearMatch.paper_id.in_(ids)))
        if rows:
            session.execute(insert(TopicMatch), rows)
        if near_rows:
            session.execute(insert(NearMatch), near_rows)
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
