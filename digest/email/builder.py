"""From what the ledger says a digest carries (planned items) to what its email shows."""
from __future__ import annotations

import uuid
from datetime import date
from operator import attrgetter

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.email.content import DigestContent, PaperItem, Recipient, Section
from digest.plan import ASK, PlannedItem
from digest.store.models import Paper, TopicMatch
from digest.store.settings import Settings

AUTHORS_KEPT = 12


class ContentBuilder:
    """Turns ledger items into DigestContent, caching papers and match reasons across digests.

    A paper's data and its match reasons are loaded once and never change for the life of a
    builder, so the item shown for (paper, section) is built once and shared by every digest,
    and a digest's sections are identified by their paper ids: ``DigestContent.cache_key`` lets
    the renderer reuse one rendering for all digests with the same sections. Treat the
    PaperItems it returns as read-only.
    """

    def __init__(self, settings: Settings, topic_names: dict[str, str]):
        self.settings = settings
        self.topic_names = topic_names
        self.papers: dict[str, PaperItem] = {}
        self.reasons: dict[tuple[str, str], tuple[float, list[str]]] = {}
        self._shown: dict[tuple[str, str], PaperItem] = {}
        self._names: dict[str, str] = {}
        self._epoch = uuid.uuid4().hex       # keys of two builders never meet in one renderer

    def load(self, session: Session, paper_ids: set[str]) -> None:
        missing = [p for p in paper_ids if p not in self.papers]
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            for p in session.scalars(select(Paper).where(Paper.id.in_(chunk))):
                url = p.abs_url or p.hf_url or ""
                self.papers[p.id] = PaperItem(
                    paper_id=p.id, title=p.title, url=url, authors=list(p.authors or [])[:AUTHORS_KEPT],
                    abstract=p.abstract or "", primary_category=p.primary_category,
                    published=p.published_at or p.first_seen_at, hf_upvotes=p.hf_upvotes, pdf_url=p.pdf_url,
                    hf_url=p.hf_url, code_url=p.code_url)
            for m in session.scalars(select(TopicMatch).where(TopicMatch.paper_id.in_(chunk))):
                self.reasons[(m.paper_id, m.topic_id)] = (m.score, list(m.matched or []))

    def build(self, recipient: Recipient, edition: date, items: list[PlannedItem], weekly: bool = False, *,
              order: list[str] | None = None, digest_id: int | None = None, all_shown: bool = False) -> DigestContent:
        """``order``: the subscriber's topic ids; sections follow it (others after, by id), Trending
        last. ``digest_id``: the ledger row, for the "View in browser" link. ``all_shown``: every
        item as a shown paper (the web page of a digest shows what the email only counted)."""
        from digest.tokens import digest_url, preferences_url, unsubscribe_url

        # sections in the subscriber's order, each one's items by position: grouped first, so
        # only the few sections are sorted by the (Python) section key
        groups: dict[str, list[PlannedItem]] = {}
        for it in items:
            group = groups.get(it.section)
            if group is None:
                groups[it.section] = [it]
            else:
                group.append(it)
        rank = {tid: i for i, tid in enumerate(dict.fromkeys(order or ()))}
        sections: dict[str, Section] = {}
        shown = self._shown
        names = self._names
        for sid in sorted(groups, key=lambda sid: section_order(sid, 0, "", rank)):
            name = names.get(sid)
            if name is None:
                name = names[sid] = section_name(sid, self.topic_names)
            sec = sections[sid] = Section(topic_id=sid, name=name, papers=[])
            group = groups[sid]
            if len(group) > 1:
                group.sort(key=_by_position)
            for it in group:
                if not (it.shown or all_shown):
                    sec.more += 1
                    continue
                item = shown.get((it.paper_id, sid))
                if item is None:
                    base = self.papers.get(it.paper_id)
                    if base is None:
                        continue
                    score, matched = self.reasons.get((it.paper_id, sid), (0.0, []))
                    item = shown[(it.paper_id, sid)] = PaperItem(
                        **{**base.__dict__, "matched": matched, "score": score})
                sec.papers.append(item)
        keys = []
        for s in sections.values():
            s.cache_key = (self._epoch, s.topic_id, s.more, tuple([p.paper_id for p in s.papers]))
            keys.append(s.cache_key)
        key = (self._epoch, tuple(keys))
        return DigestContent(
            recipient=recipient, edition=edition, sections=list(sections.values()), weekly=weekly,
            unsubscribe_url=unsubscribe_url(self.settings, recipient.subscriber_id, recipient.link_secret),
            preferences_url=preferences_url(self.settings, recipient.subscriber_id, recipient.link_secret),
            cache_key=key,
            view_url=digest_url(self.settings, digest_id, recipient.link_secret) if digest_id is not None else "")


_by_position = attrgetter("position", "paper_id")


def section_order(section: str, position: int, paper_id: str, rank: dict[str, int]):
    """Sort key of a ledger item (the email and the digest's web page share it): Trending last;
    the subscriber's topics in their order, each followed by its question; topics they no longer
    follow after those (by id, so the order never depends on how the database returned the rows)."""
    trending = section == "trending"
    # an "Is this <topic>?" question comes right after its topic's section
    topic, asked = (section[len(ASK):], 1) if section.startswith(ASK) else (section, 0)
    return (trending, rank.get(topic, len(rank)), "" if trending else topic, asked, position, paper_id)


def section_name(section: str, topic_names: dict[str, str]) -> str:
    """The heading of a section: the topic's name, the question for a paper just below its
    threshold, or Trending."""
    if section == "trending":
        return "Trending on Hugging Face"
    if section.startswith(ASK):
        topic = section[len(ASK):]
        return f"Is this {topic_names.get(topic, topic)}?"
    return topic_names.get(section, section)
