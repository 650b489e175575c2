"""Planning an edition: for each due subscriber, the new papers in their topics they were never sent.

The diff rests on one invariant: a digest's papers are chosen at planning time from papers
that exist then. So every paper first seen after a subscriber's last (non-failed) digest was
planned cannot have been sent to them, and the candidates are exactly the matching papers
first seen since then (bounded by the look-back window). Papers only counted in "N more"
belong to that digest too, so they do not come back.

Work is shared: subscribers with the same topics, frequency, trending choice and the same
candidate window get one computed plan.
"""
from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest import clock
from digest.store.ledger import PlannedItem, encode_ids, section_keys, upsert_sections
from digest.store.models import Digest, NearMatch, Paper, Subscriber, TopicMatch

log = logging.getLogger("digest.plan")
ACTIVE_LEDGER = ("planned", "sending", "sent", "deferred", "unconfirmed")  # papers spoken for (not exhausted)
BATCH = 1000


@dataclass
class Candidate:
    paper_id: str
    first_seen_at: datetime
    hf_upvotes: int | None
    hf_listed_on: date | None
    scores: dict[str, float] = field(default_factory=dict)  # topic id -> score


@dataclass
class PlanReport:
    planned: int = 0
    empty: int = 0                # due subscribers with nothing new (no email)
    already: int = 0              # already had a digest for the edition
    not_due: int = 0              # weekly subscribers on another weekday
    groups: int = 0
    warnings: list[str] = field(default_factory=list)
    dry: list[tuple[int, date, list[PlannedItem]]] = field(default_factory=list)  # dry runs only


@dataclass
class PlanOptions:
    lookback_days: int = 7
    section_cap: int = 10
    weekly_section_cap: int = 5
    trending_count: int = 5
    send_empty: bool = False


def local_today(tz: str, now: datetime) -> date:
    try:
        return now.astimezone(ZoneInfo(tz)).date()
    except Exception:
        return now.astimezone(timezone.utc).date()


def load_candidates(session: Session, since: datetime) -> list[Candidate]:
    """New papers first seen after `since`, with their topic scores, oldest first."""
    rows = session.execute(
        select(Paper.id, Paper.first_seen_at, Paper.hf_upvotes, Paper.hf_listed_on)
        .where(Paper.is_new.is_(True), Paper.first_seen_at > since)
        .order_by(Paper.first_seen_at, Paper.id)
    ).all()
    cands = {r.id: Candidate(r.id, r.first_seen_at, r.hf_upvotes, r.hf_listed_on) for r in rows}
    if cands:
        for pid, tid, score in session.execute(
            select(TopicMatch.paper_id, TopicMatch.topic_id, TopicMatch.score)
            .join(Paper, Paper.id == TopicMatch.paper_id)
            .where(Paper.is_new.is_(True), Paper.first_seen_at > since)
        ):
            if pid in cands:
                cands[pid].scores[tid] = score
    return list(cands.values())


# --- "Is this <topic>?" (issue 14): at most one paper per section just below the threshold, in
# a section of its own named ASK + topic id, right after the topic's section.
ASK = "ask:"


def load_questions(session: Session, since: datetime) -> dict[str, list[tuple[datetime, str]]]:
    """Topic -> (first seen, paper id) of new papers just below its threshold, best first."""
    rows = session.execute(
        select(NearMatch.topic_id, NearMatch.paper_id, NearMatch.score, Paper.first_seen_at)
        .join(Paper, Paper.id == NearMatch.paper_id)
        .where(Paper.is_new.is_(True), Paper.first_seen_at > since)).all()
    out: dict[str, list] = defaultdict(list)
    for tid, pid, score, seen in sorted(rows, key=lambda r: (-r.score, r.paper_id)):
        out[tid].append((seen, pid))
    return out


def add_questions(items: list[PlannedItem], questions: dict, since: datetime) -> list[PlannedItem]:
    """Items with one question after each topic section that has a near paper not already shown."""
    if not questions:
        return items
    taken = {it.paper_id for it in items}
    out: list[PlannedItem] = []
    for k, it in enumerate(items):
        out.append(it)
        last_of_section = k + 1 == len(items) or items[k + 1].section != it.section
        if last_of_section and it.section in questions:
            pid = next((p for seen, p in questions[it.section] if seen > since and p not in taken), None)
            if pid is not None:
                taken.add(pid)
                out.append(PlannedItem(pid, ASK + it.section, 0, True))
    return out
# --- end "Is this <topic>?"


def _rank_key(tid: str):
    """Section ranking: match score, then HF upvotes, then recency."""
    return lambda c: (-c.scores[tid], -(c.hf_upvotes or 0), -c.first_seen_at.timestamp(), c.paper_id)


def _trending(hf: list[Candidate], n: int) -> list[PlannedItem]:
    """Today's most upvoted Hugging Face papers (the latest listed day), whatever their topics."""
    if not hf:
        return []
    latest = max(c.hf_listed_on for c in hf)
    top = sorted((c for c in hf if c.hf_listed_on == latest), key=lambda c: (-(c.hf_upvotes or 0), c.paper_id))
    return [PlannedItem(c.paper_id, "trending", pos, True) for pos, c in enumerate(top[:n])]


class CandidateIndex:
    """Candidates of one plan run indexed per topic, so a group only touches its topics' papers.

    `by_topic[t]` holds (position in cands, candidate) pairs already in the section ranking order
    of topic t; `hf` the positions of Hugging Face-listed candidates, in cands order. A paper
    matching several topics is the only thing that makes one subscriber's sections depend on
    their other topics, so each topic's section is computed once per (cut, cap) and reused for
    every group where none of its papers goes to another of the group's topics.
    """

    def __init__(self, cands: list[Candidate]):
        self.cands = cands
        pos = {id(c): i for i, c in enumerate(cands)}
        per_topic: dict[str, list[Candidate]] = defaultdict(list)
        for c in cands:
            for tid in c.scores:
                per_topic[tid].append(c)
        self.by_topic: dict[str, list[tuple[int, Candidate]]] = {
            tid: [(pos[id(c)], c) for c in sorted(lst, key=_rank_key(tid))] for tid, lst in per_topic.items()}
        self.hf = [i for i, c in enumerate(cands) if c.hf_listed_on is not None]
        self._views: dict[tuple[str, int], tuple[list, list]] = {}
        self._alone: dict[tuple[str, int, int], list[PlannedItem]] = {}

    def _view(self, tid: str, cut: int) -> tuple[list[tuple[int, Candidate]], list[tuple[int, Candidate]]]:
        """Topic tid's ranked candidates in cands[cut:], and those of them that match other topics."""
        key = (tid, cut)
        view = self._views.get(key)
        if view is None:
            ranked = [(i, c) for i, c in self.by_topic.get(tid, ()) if i >= cut]
            view = self._views[key] = (ranked, [(i, c) for i, c in ranked if len(c.scores) > 1])
        return view

    def _section(self, tid: str, cut: int, cap: int, lost: set[int] | None) -> list[PlannedItem]:
        """Topic tid's section over cands[cut:], without the papers in `lost`."""
        out: list[PlannedItem] = []
        pos = 0
        for i, c in self._view(tid, cut)[0]:
            if not (lost and i in lost):
                out.append(PlannedItem(c.paper_id, tid, pos, pos < cap))
                pos += 1
        return out

    def sections(self, cut: int, topics: list[str], *, cap: int, trending: int) -> list[PlannedItem]:
        """Sections for candidates cands[cut:] in the subscriber's topic order; each paper once,
        in its best-scoring topic (on equal scores the earlier topic keeps it)."""
        chosen = set(topics)
        owner: dict[int, str] = {}   # shared paper position -> the topic that keeps it
        for tid in topics:
            for i, c in self._view(tid, cut)[1]:
                if i in owner:
                    continue
                best, best_score = tid, c.scores[tid]
                for other in topics:  # topic order: on equal scores the earlier topic keeps it
                    score = c.scores.get(other)
                    if score is not None and score > best_score:
                        best, best_score = other, score
                owner[i] = best
        lost: dict[str, set[int]] = defaultdict(set)
        for i, keeper in owner.items():
            for tid in self.cands[i].scores:
                if tid != keeper and tid in chosen:
                    lost[tid].add(i)
        items: list[PlannedItem] = []
        for tid in dict.fromkeys(topics):
            if tid in lost:
                items += self._section(tid, cut, cap, lost[tid])
                continue
            key = (tid, cut, cap)
            alone = self._alone.get(key)
            if alone is None:
                alone = self._alone[key] = self._section(tid, cut, cap, None)
            items += alone
        if trending:
            cands = self.cands
            items += _trending([cands[i] for i in self.hf[bisect.bisect_left(self.hf, cut):]
                                if chosen.isdisjoint(cands[i].scores)], trending)
        return items


def _last_planned(session: Session, ids: list[int]) -> dict[int, datetime]:
    rows = session.execute(
        select(Digest.subscriber_id, func.max(Digest.planned_at))
        .where(Digest.subscriber_id.in_(ids), Digest.status.in_(ACTIVE_LEDGER))
        .group_by(Digest.subscriber_id)
    ).all()
    out = {}
    for sid, when in rows:
        if isinstance(when, str):  # aggregate results bypass the column type on SQLite
            when = datetime.fromisoformat(when)
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        out[sid] = when
    return out


def _insert_ignore(session: Session):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(Digest.__table__).on_conflict_do_nothing(index_elements=["subscriber_id", "edition"])
    if dialect == "sqlite":
        return sqlite.insert(Digest.__table__).on_conflict_do_nothing(index_elements=["subscriber_id", "edition"])
    return insert(Digest.__table__)


class _Planned:
    """What one group of subscribers gets (same topics, cut, cap and trending choice): the
    sections, then the questions added (they depend on the cut only), its section keys and
    its count of shown papers, computed once for every subscriber of the group who never voted."""

    __slots__ = ("base", "items", "keys", "shown")

    def __init__(self, base: list[PlannedItem], questions: dict, since: datetime):
        self.base = base
        self.items = add_questions(base, questions, since) if base else base
        self.keys = section_keys(self.items)
        self.shown = sum(k[1] for k in self.keys)


def _section_refs(session: Session, rows: list[dict], keys_by_sub: dict, known: dict, today: date) -> None:
    """Give each digest row its ``sections`` (ledger_sections ids in order), storing the sections
    not stored yet; ``known`` maps section content to its id for the whole plan run."""
    missing = {k for keys in keys_by_sub.values() for k in keys if k not in known}
    if missing:
        known.update(upsert_sections(session.connection(), missing, today))
    for r in rows:
        r["sections"] = encode_ids(known[k] for k in keys_by_sub[r["subscriber_id"]])


def plan_edition(session: Session, known_topics: Iterable[str], options: PlanOptions, *,
                 edition: date | None = None, now: datetime | None = None,
                 subscriber_ids: list[int] | None = None, dry_run: bool = False, personal=None) -> PlanReport:
    """Write one `planned` digest row (with what it carries) per due subscriber with something new.

    ``personal``: an object with ``load(session, subscriber_ids)`` and ``apply(subscriber_id,
    items)`` that puts each reader's sections in their own order (digest.topics.personal).

    Idempotent and safe to run twice at once: the (subscriber, edition) key is unique and
    rows that exist are left alone. Commits per batch of subscribers.
    """
    now = now or clock.now()
    known = set(known_topics)
    report = PlanReport()
    horizon = now - timedelta(days=options.lookback_days)
    cands = load_candidates(session, horizon)
    questions = load_questions(session, horizon)
    seen_times = [c.first_seen_at for c in cands]
    warned: set[str] = set()
    group_cache: dict[tuple, _Planned] = {}
    section_ids: dict[tuple, int] = {}   # section content -> ledger_sections id, for this run
    index = CandidateIndex(cands)

    query = select(Subscriber.id, Subscriber.topics, Subscriber.timezone, Subscriber.frequency,
                   Subscriber.weekly_day, Subscriber.trending).where(Subscriber.status == "active")
    if subscriber_ids is not None:
        query = query.where(Subscriber.id.in_(subscriber_ids))
    subs = session.execute(query.order_by(Subscriber.id)).all()
    session.rollback()  # end the read transaction before writing in batches

    for start in range(0, len(subs), BATCH):
        batch = subs[start:start + BATCH]
        ids = [s.id for s in batch]
        editions = {s.id: edition or local_today(s.timezone, now) for s in batch}
        have = set(session.execute(
            select(Digest.subscriber_id, Digest.edition)
            .where(Digest.subscriber_id.in_(ids), Digest.edition.in_(set(editions.values())))
        ))
        last = _last_planned(session, ids)
        if personal is not None:  # personal order from readers' votes (issue 14)
            personal.load(session, ids)
        digest_rows, items_by_sub, keys_by_sub = [], {}, {}
        for sub in batch:
            ed = editions[sub.id]
            if (sub.id, ed) in have:
                report.already += 1
                continue
            weekly = sub.frequency == "weekly"
            if weekly and ed.weekday() != sub.weekly_day:
                report.not_due += 1
                continue
            topics = []
            for tid in sub.topics or []:
                if tid in known:
                    topics.append(tid)
                elif tid not in warned:
                    warned.add(tid)
                    report.warnings.append(f"topic {tid!r} chosen by subscribers is not in topics.yaml; ignored")
            since = max(horizon, last.get(sub.id, horizon))
            cut = bisect.bisect_right(seen_times, since)
            cap = options.weekly_section_cap if weekly else options.section_cap
            trending = options.trending_count if sub.trending else 0
            key = (tuple(topics), cut, cap, trending)
            group = group_cache.get(key)
            if group is None:
                group = group_cache[key] = _Planned(index.sections(cut, topics, cap=cap, trending=trending),
                                                    questions, since)
            items, keys, shown = group.items, group.keys, group.shown
            if personal is not None:
                mine = personal.apply(sub.id, group.base)
                if mine is not group.base:   # the reader voted: their own order
                    items = add_questions(mine, questions, since) if mine else mine
                    keys = section_keys(items)
                    shown = sum(k[1] for k in keys)
            if not items and not (options.send_empty and cut < len(cands)):
                report.empty += 1
                continue
            digest_rows.append({"subscriber_id": sub.id, "edition": ed, "status": "planned", "attempts": 0,
                                "paper_count": shown, "planned_at": now})
            items_by_sub[sub.id] = items
            keys_by_sub[sub.id] = keys
        if dry_run:  # plan in memory only; nothing is written
            report.planned += len(digest_rows)
            report.dry.extend((r["subscriber_id"], r["edition"], items_by_sub[r["subscriber_id"]]) for r in digest_rows)
            continue
        if digest_rows:
            _section_refs(session, digest_rows, keys_by_sub, section_ids, now.date())
            stmt = _insert_ignore(session).returning(Digest.__table__.c.id, Digest.__table__.c.subscriber_id)
            inserted = session.execute(stmt, digest_rows).all()
            report.already += len(digest_rows) - len(inserted)
            report.planned += len(inserted)
        session.commit()
    report.groups = len(group_cache)
    for line in report.warnings:
        log.warning(line)
    return report
