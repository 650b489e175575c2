"""The learned model in the database: labels from stored votes and the admin's examples,
training (``digest topics learn`` and a scheduler job), versions, and the matcher that uses the
newest model. A model is reproducible: the same stored votes, examples and config give the same
numbers (training is deterministic), on SQLite and PostgreSQL alike."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from digest import clock
from digest.store.models import Paper, TopicModel, Vote
from digest.topics.config import TopicConfig, TopicError
from digest.topics.learn import Label, LearnedModel, LearningMatcher, LearnParams, labels_hash, train

log = logging.getLogger("digest.learn")


def _papers_by_id(session, ids: set[str]) -> dict[str, Paper]:
    """Stored papers by id or arXiv id (an admin writes arXiv ids)."""
    ids = {i for i in ids if i}
    if not ids:
        return {}
    out: dict[str, Paper] = {}
    ids_list = sorted(ids)
    for start in range(0, len(ids_list), 500):
        chunk = ids_list[start:start + 500]
        for p in session.scalars(select(Paper).where(or_(Paper.id.in_(chunk), Paper.arxiv_id.in_(chunk)))):
            out.setdefault(p.id, p)
            if p.arxiv_id:
                out.setdefault(p.arxiv_id, p)
    return out


def missing_examples(session, config: TopicConfig) -> list[TopicError]:
    """An error (file, line, topic, field) for each example id that is not a stored paper."""
    wanted = {v for t in config.topics for _, v, _ in t.example_lines}
    found = _papers_by_id(session, wanted)
    return [TopicError(config.path, line, f"'{pid}' is not a stored paper (ingest it first)", t.id, fld)
            for t in config.topics for fld, pid, line in t.example_lines if pid not in found]


def stored_labels(session, config: TopicConfig) -> list[Label]:
    """Every reader's votes and the admin's examples, as labels. A vote "belongs in <other
    topic>" also counts as relevant for the other topic. Unknown topics and papers are skipped."""
    known = set(config.ids)
    labels: list[Label] = []
    rows = session.execute(select(Vote, Paper).join(Paper, Paper.id == Vote.paper_id)
                           .order_by(Vote.paper_id, Vote.topic_id, Vote.subscriber_id)).all()
    for vote, paper in rows:
        if vote.topic_id in known:
            labels.append(Label(paper, vote.topic_id, bool(vote.relevant), "vote"))
        if vote.other_topic in known:
            labels.append(Label(paper, vote.other_topic, True, "vote"))
    wanted = {v for t in config.topics for v in t.examples + t.counter_examples}
    papers = _papers_by_id(session, wanted)
    for t in config.topics:
        for ids, relevant, source in ((t.examples, True, "example"), (t.counter_examples, False, "counter_example")):
            for pid in ids:
                if pid in papers:
                    labels.append(Label(papers[pid], t.id, relevant, source))
    return labels


@dataclass
class LearnResult:
    version: int
    labels: int
    trained: bool  # False: the stored model already came from these labels
    topics: list[str]  # topics the model decides (the others keep the plain matcher)


def latest_model(session, config: TopicConfig, kind: str = "lexical") -> TopicModel | None:
    return session.scalars(select(TopicModel).where(TopicModel.config_version == config.version,
                                                    TopicModel.matcher == kind)
                           .order_by(TopicModel.version.desc()).limit(1)).first()


def learn(session, config: TopicConfig, base: Any, kind: str = "lexical", *, force: bool = False,
          params: LearnParams | None = None) -> LearnResult:
    """Train from the stored labels and store a new version, unless the newest model for this
    config and matcher was trained on exactly these labels (``force``: train anyway)."""
    labels = stored_labels(session, config)
    digest_ = labels_hash(labels)
    last = latest_model(session, config, kind)
    if last is not None and last.labels_hash == digest_ and not force:
        return LearnResult(last.version, last.labels, False, sorted((last.model or {}).get("topics", {})))
    model = train(base, labels, params)
    row = TopicModel(trained_at=clock.now(), config_version=config.version, matcher=kind, labels_hash=digest_,
                     labels=len(labels), model=model.to_json() if model else None)
    session.add(row)
    session.flush()
    log.info("event=learn version=%d labels=%d topics=%d", row.version, len(labels), len(model.topics) if model else 0)
    return LearnResult(row.version, len(labels), True, sorted(model.topics) if model else [])


_cache: dict[tuple, Any] = {}


def learned_matcher(session, config: TopicConfig, base: Any, kind: str = "lexical") -> tuple[Any, str | None]:
    """The matcher to use now: the newest stored model over ``base``, or ``base`` itself when
    no model has enough labels; and the model's version tag (None for the plain matcher)."""
    row = latest_model(session, config, kind)
    if row is None or not row.model:
        return base, None
    key = (config.version, kind, row.version, id(base))
    if key not in _cache:
        model = LearnedModel.from_json(row.model, row.version)
        ids = {p for t in model.topics.values() for k in ("relevant", "not_relevant") for p in t[k]}
        papers = {p.id: p for p in session.scalars(select(Paper).where(Paper.id.in_(sorted(ids))))} if ids else {}
        for p in papers.values():  # detached copies: the matcher outlives the session
            session.expunge(p)
        _cache.clear()
        _cache[key] = LearningMatcher(base, model, papers)
    return _cache[key], f"model-{row.version}"


def versioned(match_version: str, tag: str | None) -> str:
    """The matched_version of papers matched with a model: a new model re-scores pending papers."""
    return match_version if tag is None else hashlib.sha256(f"{match_version}:{tag}".encode()).hexdigest()
