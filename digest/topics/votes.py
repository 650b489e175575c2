"""Readers' votes: "Relevant" / "Not for me" on a paper in a section, one per (subscriber,
paper, topic); a new vote replaces the old one. The learned model reads them (learn_store.py)."""
from __future__ import annotations

from sqlalchemy import select

from digest import clock
from digest.store.models import Paper, Subscriber, Vote


class VoteError(ValueError):
    """A vote that cannot be recorded (unknown subscriber or paper); one line."""


def record_vote(session, subscriber_id: int, paper_id: str, topic_id: str, relevant: bool,
                other_topic: str | None = None) -> Vote:
    """Record (or change) a subscriber's vote on a paper in a topic's section; flushes, the caller
    commits. ``other_topic``: the reader says the paper belongs in that topic instead."""
    if session.get(Subscriber, subscriber_id) is None:
        raise VoteError(f"no subscriber with id {subscriber_id}")
    if session.get(Paper, paper_id) is None:
        raise VoteError(f"no stored paper '{paper_id}'")
    topic_id = str(topic_id).strip()
    if not topic_id:
        raise VoteError("a vote needs a topic")
    other_topic = (other_topic or "").strip() or None
    if other_topic == topic_id:
        other_topic = None
    now = clock.now()
    vote = session.scalars(select(Vote).where(Vote.subscriber_id == subscriber_id, Vote.paper_id == paper_id,
                                              Vote.topic_id == topic_id)).first()
    if vote is None:
        vote = Vote(subscriber_id=subscriber_id, paper_id=paper_id, topic_id=topic_id, relevant=bool(relevant),
                    other_topic=other_topic, created_at=now, updated_at=now)
        session.add(vote)
    else:
        vote.relevant, vote.other_topic, vote.updated_at = bool(relevant), other_topic, now
    session.flush()
    return vote


def votes_of(session, subscriber_id: int) -> dict[tuple[str, str], bool]:
    """(paper id, topic id) -> relevant, for one reader."""
    rows = session.execute(select(Vote.paper_id, Vote.topic_id, Vote.relevant).where(Vote.subscriber_id == subscriber_id))
    return {(p, t): bool(r) for p, t, r in rows}
