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
ROWS_KEPT = 100_000     # ledger sections remembered by build_rows (an edition has ~25,000 at 100k)


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
        self._rows: dict[tuple, Section] = {}
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
        sections = []
        for sid in sorted(groups, key=lambda sid: section_order(sid, 0, "", rank)):
            group = groups[sid]
            if len(group) > 1:
                group.sort(key=_by_position)
            sections.append(self._section(sid, [(it.paper_id, it.shown or all_shown) for it in group]))
        return self._content(recipient, edition, sections, weekly, digest_id,
                             (self._epoch, tuple([s.cache_key for s in sections])))

    def build_rows(self, recipient: Recipient, edition: date, rows: list[tuple[int, str, int, tuple[str, ...]]],
                   weekly: bool = False, *, order: list[str] | None = None,
                   digest_id: int | None = None) -> DigestContent:
        """``build`` from the digest's ledger sections, (row id, section, shown, paper ids) each
        (digest.store.ledger.section_rows): the Section of a row is built once and shared by
        every digest that carries it (keyed by the whole row: an id alone could be reused)."""
        if len({r[1] for r in rows}) != len(rows):      # one section in two rows: merge them as build does
            items = [PlannedItem(pid, name, pos, pos < shown) for _, name, shown, papers in rows
                     for pos, pid in enumerate(papers)]
            return self.build(recipient, edition, items, weekly, order=order, digest_id=digest_id)
        rank = {tid: i for i, tid in enumerate(dict.fromkeys(order or ()))}
        known = self._rows
        sections = []
        for row in sorted(rows, key=lambda r: section_order(r[1], 0, "", rank)):
            sec = known.get(row)
            if sec is None:
                if len(known) >= ROWS_KEPT:
                    known.clear()
                _, name, shown, papers = row
                sec = known[row] = self._section(name, [(pid, pos < shown) for pos, pid in enumerate(papers)])
            sections.append(sec)
        return self._content(recipient, edition, sections, weekly, digest_id,
                             (self._epoch, tuple([s.cache_key for s in sections])))

    def _section(self, sid: str, entries: list[tuple[str, bool]]) -> Section:
        """The section ``sid`` of papers (paper id, shown) in order; read-only once made."""
        name = self._names.get(sid)
        if name is None:
            name = self._names[sid] = section_name(sid, self.topic_names)
        sec = Section(topic_id=sid, name=name, papers=[])
        shown = self._shown
        for paper_id, is_shown in entries:
            if not is_shown:
                sec.more += 1
                continue
            item = shown.get((paper_id, sid))
            if item is None:
                base = self.papers.get(paper_id)
                if base is None:
                    continue
                score, matched = self.reasons.get((paper_id, sid), (0.0, []))
                item = shown[(paper_id, sid)] = PaperItem(**{**base.__dict__, "matched": matched, "score": score})
            sec.papers.append(item)
        sec.cache_key = (self._epoch, sid, sec.more, tuple([p.paper_id for p in sec.papers]))
        return sec

    def _content(self, recipient: Recipient, edition: date, sections: list[Section], weekly: bool,
                 digest_id: int | None, key: tuple) -> DigestContent:
        from digest.tokens import digest_url, preferences_url, unsubscribe_url

        return DigestContent(
            recipient=recipient, edition=edition, sections=sections, weekly=weekly,
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
