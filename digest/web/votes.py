"""Votes from the digest page (issue 14): what a POST may record, and the reader's current votes.

A vote names a paper and a section of one digest; it is recorded only when the digest's signed
link is bound to its subscriber and that digest carried that paper in that section (the same
ledger rows the page shows). A question section "ask:<topic>" votes on <topic>.

"Belongs in <other topic>" is a "Not for me" vote with ``other``: a topic id of the current
topics config other than the section's own (learning counts it as relevant there).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from digest import tokens
from digest.email.vote_links import votable
from digest.plan import ASK
from digest.store.db import session_scope
from digest.store.ledger import items_of
from digest.store.models import Digest, Subscriber, Vote
from digest.topics.votes import VoteError, record_vote

FIELD_MAX = 200     # characters of a paper or section id in a request


class VoteRefused(ValueError):
    """A vote that is not recorded: ``status`` and a one-line reason for the reader."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


def topic_of(section: str) -> str:
    """The topic a vote in ``section`` is about."""
    return section[len(ASK):] if section.startswith(ASK) else section


def parse_vote(paper, section, value, other=None, topic_ids=()) -> tuple[str, str, bool, str | None]:
    """The paper id, section id, relevance and other topic ("belongs in", or None) a request
    names, or VoteRefused (400). ``other`` is None when the form has no such field; when given it
    must be one of ``topic_ids`` (the current config's) and not the section's topic."""
    paper, section, value = (str(x or "").strip() for x in (paper, section, value))
    if not paper or len(paper) > FIELD_MAX or not section or len(section) > FIELD_MAX:
        raise VoteRefused(400, "The vote does not name a paper and a topic of this digest.")
    if not votable(section):
        raise VoteRefused(400, "Votes are for topic sections, not for this one.")
    if value not in ("yes", "no"):
        raise VoteRefused(400, "A vote is yes or no.")
    if other is None:
        return paper, section, value == "yes", None
    other = str(other).strip()
    if section.startswith(ASK):
        raise VoteRefused(400, "A paper can be moved to another topic from a topic section, not from a question.")
    if not other:
        raise VoteRefused(400, "Choose the topic this paper belongs in.")
    if value != "no":
        raise VoteRefused(400, "A paper that belongs in another topic is a 'Not for me' vote (v=no) for this one.")
    if other == section:
        raise VoteRefused(400, "The paper is already in that topic: choose another one.")
    if other not in topic_ids:
        shown = "".join(c if c.isprintable() else "?" for c in other[:64]) + ("…" if len(other) > 64 else "")
        raise VoteRefused(400, f"There is no topic '{shown}' to move the paper to.")
    return paper, section, False, other


def cast_vote(settings, token: tokens.Token, paper, section, value, other=None, topic_ids=()) -> tuple[str, str]:
    """Record the vote of the digest ``token`` names (one row per reader, paper and topic; a new
    vote replaces the old, and a vote without ``other`` clears an earlier "belongs in"). Returns
    (paper id, section id); VoteRefused when nothing was recorded."""
    paper_id, section, relevant, other = parse_vote(paper, section, value, other, topic_ids)
    try:
        _cast(settings, token, paper_id, section, relevant, other)
    except IntegrityError:      # the same vote, twice at once: the second is an update now
        _cast(settings, token, paper_id, section, relevant, other)
    return paper_id, section


def _cast(settings, token: tokens.Token, paper_id: str, section: str, relevant: bool, other: str | None) -> None:
    with session_scope(settings) as session:
        row = session.execute(select(Digest.subscriber_id, Subscriber.link_secret)
                              .join(Subscriber, Subscriber.id == Digest.subscriber_id)
                              .where(Digest.id == token.subject_id)).first()
        if row is None or not token.bound_to(row.link_secret):
            raise VoteRefused(400, "This link is not valid: use the link of the email as it is.")
        carried = any(it.paper_id == paper_id and it.section == section
                      for it in items_of(session, [token.subject_id]).get(token.subject_id, []))
        if not carried:
            raise VoteRefused(400, f"This digest did not carry paper '{paper_id}' in section '{section}'.")
        try:
            record_vote(session, row.subscriber_id, paper_id, topic_of(section), relevant, other_topic=other)
        except VoteError as exc:
            raise VoteRefused(400, f"The vote was not recorded: {exc}.") from None


def reader_votes(settings, digest_id: int) -> tuple[dict[tuple[str, str], bool], dict[tuple[str, str], str]]:
    """The votes of the reader of digest ``digest_id``: (paper id, topic id) -> relevant, and
    (paper id, topic id) -> the other topic the reader moved the paper to."""
    with session_scope(settings) as session:
        sid = session.scalar(select(Digest.subscriber_id).where(Digest.id == digest_id))
        rows = [] if sid is None else session.execute(
            select(Vote.paper_id, Vote.topic_id, Vote.relevant, Vote.other_topic).where(Vote.subscriber_id == sid))
        votes, moves = {}, {}
        for paper_id, topic_id, relevant, other in rows:
            votes[(paper_id, topic_id)] = bool(relevant)
            if other:
                moves[(paper_id, topic_id)] = other
        return votes, moves
