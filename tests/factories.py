"""Small builders for rows the tests need (papers, matches, subscribers)."""
from __future__ import annotations

import time
from datetime import date, datetime, timezone

from digest.store.models import Paper, Subscriber, TopicMatch


def add_paper(session, pid: str, *, title: str | None = None, abstract: str = "An abstract.",
              seen: datetime, is_new: bool = True, upvotes: int | None = None, hf_on: date | None = None,
              matches: dict[str, float] | None = None, authors: list[str] | None = None) -> Paper:
    paper = Paper(id=pid, arxiv_id=pid, title=title or f"Paper {pid}", abstract=abstract,
                  authors=authors or ["A. Author", "B. Author"], categories=["cs.CV"], primary_category="cs.CV",
                  version=1, announce_type="new" if is_new else "replace", is_new=is_new, first_seen_at=seen,
                  updated_at=seen, abs_url=f"https://arxiv.org/abs/{pid}", pdf_url=f"https://arxiv.org/pdf/{pid}",
                  hf_upvotes=upvotes, hf_listed_on=hf_on, matched_version="fixed")
    session.add(paper)
    for tid, score in (matches or {}).items():
        session.add(TopicMatch(paper_id=pid, topic_id=tid, score=score, matched=[f"{tid} phrase"], matched_at=seen))
    session.flush()
    return paper


def add_subscriber(session, email: str, topics: list[str], **kw) -> Subscriber:
    sub = Subscriber(email=email, topics=topics, timezone=kw.pop("timezone", "UTC"), status=kw.pop("status", "active"), **kw)
    session.add(sub)
    session.flush()
    return sub


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def wait_for(predicate, timeout: float = 30.0, poll: float = 0.1) -> bool:
    """Poll `predicate` until it is true (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False
