"""Topic health for the admin (``digest topics report``, ``digest status``): what each section
showed, what readers said about it, and what separates the papers they liked from the others."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from digest import clock
from digest.store.ledger import sections_of
from digest.store.models import Digest, Paper, TopicMatch, Vote
from digest.topics.config import TopicConfig
from digest.topics.words import GENERIC, STOPWORDS, _chunks

MIN_VOTES = 5  # fewer votes say nothing about a topic's health
UNHEALTHY_PRECISION = 0.6


@dataclass
class TopicHealth:
    topic_id: str
    shown: int = 0
    votes: int = 0
    relevant: int = 0
    disliked: list[tuple[str, str, int, list[str]]] = field(default_factory=list)  # id, title, votes, matched
    suggest_keywords: list[str] = field(default_factory=list)
    suggest_excludes: list[str] = field(default_factory=list)
    overlaps: list[tuple[str, int]] = field(default_factory=list)  # other topic, papers in both
    moved: list[tuple[str, int, int]] = field(default_factory=list)  # "belongs in" topic, papers, votes

    @property
    def precision(self) -> float | None:
        return self.relevant / self.votes if self.votes else None

    @property
    def unhealthy(self) -> bool:
        return self.votes >= MIN_VOTES and (self.precision or 0.0) < UNHEALTHY_PRECISION


def _terms(paper: Paper) -> set[str]:
    """Words and two-word phrases of a paper (lowercase, no stop or generic words)."""
    words = [w.lower() for chunk in _chunks(f"{paper.title}. {paper.abstract or ''}") for w in chunk]
    keep = [w if len(w) > 2 and w not in STOPWORDS and w not in GENERIC and not w.isdigit() else None for w in words]
    out = {w for w in keep if w}
    out |= {f"{a} {b}" for a, b in zip(keep, keep[1:]) if a and b}
    return out


def _separating(liked: list[Paper], disliked: list[Paper], n: int = 5) -> tuple[list[str], list[str]]:
    """Terms far more frequent among liked papers (suggested keywords) and among disliked ones
    (suggested excludes): document frequencies, at least two papers, smoothed."""
    if not liked or not disliked:
        return [], []
    like = Counter(t for p in liked for t in _terms(p))
    dis = Counter(t for p in disliked for t in _terms(p))

    def ranked(a: Counter, na: int, b: Counter, nb: int) -> list[str]:
        score = {t: (c / na) - (b.get(t, 0) / nb) for t, c in a.items() if c >= 2 and b.get(t, 0) / nb <= 0.1}
        best = sorted(score, key=lambda t: (-score[t], t))
        out: list[str] = []
        for t in best:  # a phrase makes its words redundant, and the other way round
            if any(t in o.split() or o in t.split() for o in out):
                continue
            out.append(t)
            if len(out) == n:
                break
        return out

    return ranked(like, len(liked), dis, len(disliked)), ranked(dis, len(disliked), like, len(liked))


def topic_health(session, config: TopicConfig, days: int = 30) -> list[TopicHealth]:
    since = clock.now() - timedelta(days=days)
    out = {t.id: TopicHealth(t.id) for t in config.topics}
    per_topic: dict[str, set[str]] = defaultdict(set)
    for section in sections_of(session, Digest.planned_at >= since):
        for it in section:
            if it.shown:
                per_topic[it.section].add(it.paper_id)
    for tid, pids in per_topic.items():
        if tid in out:
            out[tid].shown = len(pids)
    votes = session.execute(select(Vote.topic_id, Vote.paper_id, Vote.relevant, Vote.other_topic)
                            .where(Vote.updated_at >= since)).all()
    by_topic: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    moved: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))  # topic -> other -> papers
    for tid, pid, rel, other in votes:
        if tid in out:
            by_topic[tid].append((pid, bool(rel)))
            if other:
                moved[tid][other].append(pid)
    for tid, targets in moved.items():
        out[tid].moved = sorted(((o, len(set(p)), len(p)) for o, p in targets.items()), key=lambda x: (-x[1], -x[2], x[0]))
    ids = {pid for rows in by_topic.values() for pid, _ in rows}
    papers = {p.id: p for p in session.scalars(select(Paper).where(Paper.id.in_(sorted(ids))))} if ids else {}
    matched = {(m.paper_id, m.topic_id): list(m.matched or []) for m in
               session.scalars(select(TopicMatch).where(TopicMatch.paper_id.in_(sorted(ids))))} if ids else {}
    for tid, rows in by_topic.items():
        h = out[tid]
        h.votes, h.relevant = len(rows), sum(1 for _, r in rows if r)
        against = Counter(pid for pid, r in rows if not r)
        h.disliked = [(pid, papers[pid].title, n, matched.get((pid, tid), [])) for pid, n in
                      sorted(against.items(), key=lambda kv: (-kv[1], kv[0]))[:5] if pid in papers]
        liked = [papers[p] for p in sorted({p for p, r in rows if r}) if p in papers]
        disliked = [papers[p] for p in sorted(against) if p in papers]
        h.suggest_keywords, h.suggest_excludes = _separating(liked, disliked)
    recent = session.execute(select(TopicMatch.paper_id, TopicMatch.topic_id).join(Paper, Paper.id == TopicMatch.paper_id)
                             .where(Paper.first_seen_at >= since)).all()
    topics_of: dict[str, set[str]] = defaultdict(set)
    for pid, tid in recent:
        topics_of[pid].add(tid)
    pairs: Counter = Counter()
    for tids in topics_of.values():
        for a in tids:
            for b in tids:
                if a != b:
                    pairs[(a, b)] += 1
    for (a, b), n in pairs.items():
        if a in out:
            out[a].overlaps.append((b, n))
    for h in out.values():
        h.overlaps.sort(key=lambda x: (-x[1], x[0]))
        h.overlaps = h.overlaps[:3]
    return [out[t.id] for t in config.topics]


def moved_line(other: str, papers: int, votes: int) -> str:
    """"2 papers to vision-language (3 votes)": what readers said belongs in another topic."""
    text = f"{papers} {'paper' if papers == 1 else 'papers'} to {other}"
    return text if votes == papers else f"{text} ({votes} votes)"


def unhealthy_lines(session, config: TopicConfig, days: int = 30) -> list[str]:
    """One line per topic readers mostly dislike (for ``digest status``)."""
    return [f"topic '{h.topic_id}': readers marked {h.votes - h.relevant} of {h.votes} papers 'Not for me' "
            f"in {days} days (precision {h.precision:.2f}); see `digest topics report`"
            for h in topic_health(session, config, days) if h.unhealthy]
