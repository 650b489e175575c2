"""Learning from readers: a model over the matcher's own evidence, trained on votes and examples.

Labels are (paper, topic, relevant) pairs: readers' votes, the admin's ``examples`` (relevant)
and ``counter_examples`` (not relevant), and a vote "this belongs in <other topic>" (relevant
for the other topic). Each (paper, topic) pair is described by what the plain matcher saw:

* ``assigned``: the plain matcher put the paper in the topic;
* ``score``, ``strongest``, ``phrases``, ``best``: lexical score, the weight of its strongest
  phrase (a keyword in the title weighs most), how many phrases matched, whether the topic is
  the paper's best lexical topic;
* ``z``: the semantic similarity in units of the topic's spread (0 without the semantic extra);
* ``like_relevant`` / ``like_not_relevant``: the highest similarity of the paper to the topic's
  relevant and to its not-relevant papers (words of title and abstract, hashed; the sentence
  embedding when the semantic extra is in use), and their difference.

One logistic regression (scikit-learn) is fitted on every topic's labels at once: with a few
votes per topic a model per topic would learn noise, while the features above are each topic's
own (its evidence, its readers' papers), so the decision stays per topic. A topic with fewer
than ``min_labels`` labels keeps the plain matcher. The pairs of a labelled paper with the
topics it was neither shown in nor given to are taken as weak negatives (weight
``implied_weight``): without them the model would never see a paper that belongs nowhere.

Training is deterministic (liblinear, fixed order), so the same stored votes give the same
model on SQLite and PostgreSQL; the model is a few numbers plus each topic's labelled paper ids,
stored as JSON with a version (see :mod:`digest.topics.learn_store`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from digest.topics.match import Assignment, Matcher
from digest.topics.words import STOPWORDS, _chunks, stem

FEATURES = ("assigned", "score", "strongest", "phrases", "best", "z", "like_relevant", "like_not_relevant",
            "like_margin")
LIKE_RELEVANT = "like papers readers marked relevant"
LIKE_MIN = 0.3  # similarity to a relevant paper that is worth saying in "why"


@dataclass(frozen=True)
class Label:
    paper: Any  # anything with id, title, abstract (a stored Paper or a PaperText)
    topic_id: str
    relevant: bool
    source: str = "vote"  # vote | example | counter_example


@dataclass
class LearnParams:
    min_labels: int = 3  # a topic with fewer labels keeps the plain matcher
    implied_weight: float = 0.3  # weight of an implied negative (see the module doc)
    threshold: float = 0.5  # probability a pair the plain matcher assigned needs to stay
    add_threshold: float = 0.7  # probability another pair needs to be added (most pairs belong nowhere)
    c: float = 1.0  # inverse regularisation strength of the logistic regression


@dataclass
class LearnedModel:
    """What training produced; ``to_json``/``from_json`` store it."""

    parts: dict[str, dict]  # "keep" (for pairs the plain matcher assigned), "add" (the others): coef, intercept
    topics: dict[str, dict[str, list[str]]]  # topic id -> {"relevant": [paper ids], "not_relevant": [...]}
    params: dict[str, float] = field(default_factory=dict)
    semantic: bool = False
    labels_hash: str = ""
    version: int = 0

    def to_json(self) -> dict:
        return {"parts": self.parts, "topics": self.topics, "params": self.params,
                "semantic": self.semantic, "labels_hash": self.labels_hash, "features": list(FEATURES)}

    @classmethod
    def from_json(cls, data: dict, version: int = 0) -> "LearnedModel":
        return cls(dict(data["parts"]), dict(data["topics"]), dict(data.get("params") or {}),
                   bool(data.get("semantic")), str(data.get("labels_hash", "")), version)


# --------------------------------------------------------------------------------------------
# Text vectors (for "like papers readers marked relevant")
# --------------------------------------------------------------------------------------------

_HASH_FEATURES = 2 ** 18


def _stems(paper: Any) -> list[str]:
    text = f"{getattr(paper, 'title', '') or ''}. {getattr(paper, 'abstract', '') or ''}"
    return [stem(p) for chunk in _chunks(text) for p in chunk if len(p) > 2 and p.lower() not in STOPWORDS]


def text_vectors(papers: Sequence[Any]):
    """Unit-length hashed bag of stems (title words count twice): stateless, so nothing to store."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(n_features=_HASH_FEATURES, analyzer=lambda doc: doc, alternate_sign=False,
                            norm="l2")
    docs = []
    for p in papers:
        title = [stem(t) for chunk in _chunks(getattr(p, "title", "") or "") for t in chunk
                 if len(t) > 2 and t.lower() not in STOPWORDS]
        docs.append(_stems(p) + title)
    return vec.transform(docs)


class _Vectors:
    """Paper vectors for similarity: sentence embeddings when the base matcher has them, else
    hashed words. Both are unit length, so a dot product is a cosine."""

    def __init__(self, base: Any):
        self.semantic = hasattr(base, "embed")
        self.base = base

    def of(self, papers: Sequence[Any]):
        import numpy as np

        if not papers:
            return None
        if self.semantic:
            return np.asarray(self.base.embed(list(papers)))
        return text_vectors(papers)

    @staticmethod
    def sims(a, b):
        """Dense (len(a), len(b)) cosine matrix."""
        import numpy as np

        if a is None or b is None:
            return None
        out = a @ b.T
        return np.asarray(out.todense()) if hasattr(out, "todense") else np.asarray(out)


# --------------------------------------------------------------------------------------------
# Evidence of the plain matcher, as features
# --------------------------------------------------------------------------------------------


def _lexical(base: Any) -> Matcher:
    return getattr(base, "lexical", None) or base


def _zscores(base: Any, papers: Sequence[Any]):
    """papers x topics z of the semantic matcher (None without it)."""
    if not hasattr(base, "similarities"):
        return None
    sims = base.similarities(list(papers))
    cal = base.calibration()
    if cal is None:
        return None
    return (sims - cal[0]) / cal[1]


@dataclass
class _PaperEvidence:
    assigned: dict[str, Assignment]
    lexical: dict[str, tuple[float, float, int, bool, list[str]]]  # score, strongest, phrases, best, matched


def _evidence(base: Any, papers: Sequence[Any]) -> list[_PaperEvidence]:
    lex = _lexical(base)
    out = []
    for paper, assigned in zip(papers, base.match_many(list(papers))):
        ev = lex.evidence(paper)
        rows = {}
        for c in lex.candidates(paper):
            rows[c.assignment.topic_id] = c
        lexical = {}
        ids = lex.config.ids
        for ti, e in ev.items():
            tid = ids[ti]
            c = rows.get(tid)
            if c is None:  # vetoed
                continue
            weights = [w for w, label in e.why if not label.startswith("category:")]
            lexical[tid] = (c.assignment.score, max(weights, default=0.0), len(weights), c.best,
                            list(c.assignment.matched))
        out.append(_PaperEvidence({a.topic_id: a for a in assigned}, lexical))
    return out


def _rows(evidence: list[_PaperEvidence], topic_ids: Sequence[str], z, sim_pos: dict, sim_neg: dict,
          config_ids: list[str]):
    """Feature matrix for every (paper, topic) pair, papers-major; sim_* map topic -> per-paper max."""
    import numpy as np

    X = np.zeros((len(evidence) * len(topic_ids), len(FEATURES)), dtype=float)
    r = 0
    for i, ev in enumerate(evidence):
        for tid in topic_ids:
            score, strongest, phrases, best, _ = ev.lexical.get(tid, (0.0, 0.0, 0, False, []))
            zt = 0.0 if z is None else float(np.clip(z[i, config_ids.index(tid)], -3, 5))
            pos = float(sim_pos[tid][i]) if tid in sim_pos else 0.0
            neg = float(sim_neg[tid][i]) if tid in sim_neg else 0.0
            X[r] = (1.0 if tid in ev.assigned else 0.0, score, min(strongest, 2.0), np.log1p(phrases),
                    1.0 if best else 0.0, zt, pos, neg, pos - neg)
            r += 1
    return X


def _max_sims(sims, exclude_self: list[int] | None = None):
    """Per-row maximum of a similarity matrix (0 for an empty one); ``exclude_self[i]`` is the
    column of row i's own paper (its own label must not describe it)."""
    import numpy as np

    if sims is None or sims.shape[1] == 0:
        return None
    s = sims.copy()
    if exclude_self is not None:
        for i, j in enumerate(exclude_self):
            if j is not None and j >= 0:
                s[i, j] = -1.0
    m = s.max(axis=1)
    return np.where(m < -0.5, 0.0, m)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def labels_hash(labels: Sequence[Label]) -> str:
    rows = sorted((getattr(lb.paper, "id", ""), lb.topic_id, bool(lb.relevant), lb.source) for lb in labels)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _dedupe(labels: Sequence[Label]) -> list[Label]:
    """One label per (paper, topic); the admin's word wins over votes, then the majority of votes."""
    by: dict[tuple[str, str], list[Label]] = {}
    for lb in labels:
        by.setdefault((str(lb.paper.id), lb.topic_id), []).append(lb)
    out = []
    for key in sorted(by):
        group = by[key]
        admin = [lb for lb in group if lb.source != "vote"]
        if admin:
            out.append(admin[-1])
            continue
        yes = sum(1 for lb in group if lb.relevant)
        out.append(Label(group[0].paper, key[1], yes * 2 >= len(group), "vote"))
    return out


def train(base: Any, labels: Sequence[Label], params: LearnParams | None = None) -> LearnedModel | None:
    """A model from labels, or None when no topic has enough of them (or only one class)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    params = params or LearnParams()
    config_ids = _lexical(base).config.ids
    labels = [lb for lb in _dedupe(labels) if lb.topic_id in config_ids]
    counts: dict[str, int] = {}
    for lb in labels:
        counts[lb.topic_id] = counts.get(lb.topic_id, 0) + 1
    learned = [t for t in config_ids if counts.get(t, 0) >= params.min_labels]
    if not learned:
        return None
    papers: dict[str, Any] = {}
    for lb in labels:
        papers.setdefault(str(lb.paper.id), lb.paper)
    pids = sorted(papers)
    plist = [papers[p] for p in pids]
    index = {p: i for i, p in enumerate(pids)}
    vectors = _Vectors(base)
    V = vectors.of(plist)
    all_sims = _Vectors.sims(V, V)
    topics: dict[str, dict[str, list[str]]] = {}
    sim_pos, sim_neg = {}, {}
    known: dict[tuple[str, str], bool] = {(str(lb.paper.id), lb.topic_id): lb.relevant for lb in labels}
    for tid in learned:
        pos = sorted(p for (p, t), rel in known.items() if t == tid and rel)
        neg = sorted(p for (p, t), rel in known.items() if t == tid and not rel)
        topics[tid] = {"relevant": pos, "not_relevant": neg}
        for ids, store in ((pos, sim_pos), (neg, sim_neg)):
            if ids:
                cols = [index[p] for p in ids]
                col_of = {index[p]: k for k, p in enumerate(ids)}
                store[tid] = _max_sims(all_sims[:, cols], [col_of.get(i) for i in range(len(pids))])
    evidence = _evidence(base, plist)
    X = _rows(evidence, learned, _zscores(base, plist), sim_pos, sim_neg, config_ids)
    y = np.zeros(len(X), dtype=int)
    w = np.zeros(len(X), dtype=float)
    r = 0
    for pid, ev in zip(pids, evidence):
        for tid in learned:
            if (pid, tid) in known:
                y[r], w[r] = int(known[(pid, tid)]), 1.0
            elif tid not in ev.assigned:
                y[r], w[r] = 0, params.implied_weight
            r += 1
    assigned = X[:, 0] > 0
    parts = {}
    for name, mask in (("keep", assigned & (w > 0)), ("add", ~assigned & (w > 0))):
        if len(set(y[mask])) < 2:
            continue
        clf = LogisticRegression(C=params.c, solver="liblinear", random_state=0)
        clf.fit(X[mask][:, 1:], y[mask], sample_weight=w[mask])
        parts[name] = {"coef": [round(float(c), 6) for c in clf.coef_[0]], "intercept": round(float(clf.intercept_[0]), 6)}
    if not parts:
        return None
    return LearnedModel(parts, topics, {"threshold": params.threshold, "add_threshold": params.add_threshold, "min_labels": params.min_labels},
                        vectors.semantic, labels_hash(labels))


# --------------------------------------------------------------------------------------------
# Matching with a model
# --------------------------------------------------------------------------------------------


class LearningMatcher:
    """The plain matcher, with each learned topic decided by the model. Same interface as
    :class:`digest.topics.match.Matcher` (``match``, ``match_many``, ``config``)."""

    def __init__(self, base: Any, model: LearnedModel, labelled: dict[str, Any]):
        """``labelled``: paper id -> paper, for every paper id the model names."""
        self.base = base
        self.model = model
        self.config = _lexical(base).config
        self.lexical = _lexical(base)
        self._vectors = _Vectors(base)
        ids = sorted({p for t in model.topics.values() for k in ("relevant", "not_relevant") for p in t[k]
                      if p in labelled})
        self._ids = {p: i for i, p in enumerate(ids)}
        self._V = self._vectors.of([labelled[p] for p in ids]) if ids else None

    @property
    def learned_topics(self) -> list[str]:
        return [t for t in self.config.ids if t in self.model.topics]

    def probabilities(self, papers: Sequence[Any]) -> tuple[list[_PaperEvidence], dict[str, list[float]], dict, dict]:
        import numpy as np

        papers = list(papers)
        evidence = _evidence(self.base, papers)
        learned = self.learned_topics
        if not papers or not learned:
            return evidence, {}, {}, {}
        P = self._vectors.of(papers)
        sims = _Vectors.sims(P, self._V)
        sim_pos, sim_neg = {}, {}
        for tid in learned:
            for key, store in (("relevant", sim_pos), ("not_relevant", sim_neg)):
                cols = [self._ids[p] for p in self.model.topics[tid][key] if p in self._ids]
                if cols and sims is not None:
                    # a paper that is itself labelled is described by its other labelled papers
                    own = [cols.index(self._ids[str(p.id)]) if str(p.id) in self._ids and self._ids[str(p.id)] in cols
                           else None for p in papers]
                    store[tid] = _max_sims(sims[:, cols], own)
        X = _rows(evidence, learned, _zscores(self.base, papers), sim_pos, sim_neg, self.config.ids)
        prob = np.zeros(len(X))
        for name, mask in (("keep", X[:, 0] > 0), ("add", X[:, 0] <= 0)):
            part = self.model.parts.get(name)
            if part is None:  # nothing learned for these pairs: the plain matcher's decision
                prob[mask] = 1.0 if name == "keep" else 0.0
                continue
            logits = X[mask][:, 1:] @ np.asarray(part["coef"]) + part["intercept"]
            prob[mask] = 1.0 / (1.0 + np.exp(-logits))
        out = {tid: [float(prob[i * len(learned) + k]) for i in range(len(papers))] for k, tid in enumerate(learned)}
        return evidence, out, sim_pos, sim_neg

    def match(self, paper: Any) -> list[Assignment]:
        return self.match_many([paper])[0]

    def match_many(self, papers) -> list[list[Assignment]]:
        return [[a for a, assigned in row if assigned] for row in self.decide(papers)]

    def decide(self, papers) -> list[list[tuple[Assignment, bool]]]:
        """For each paper, every topic with evidence or a learned probability: (assignment,
        assigned?), best first. A learned topic's score is the model's probability; its evidence
        starts with "like papers readers marked relevant" when that is what put the paper there."""
        papers = list(papers)
        evidence, prob, sim_pos, sim_neg = self.probabilities(papers)
        keep_at = float(self.model.params.get("threshold", 0.5))
        add_at = float(self.model.params.get("add_threshold", 0.7))
        order = {t: i for i, t in enumerate(self.config.ids)}
        out = []
        for i, ev in enumerate(evidence):
            row: list[tuple[Assignment, bool]] = []
            for tid, a in ev.assigned.items():
                if tid not in prob:
                    row.append((a, True))
            for tid, probs in prob.items():
                p = probs[i]
                threshold = keep_at if tid in ev.assigned else add_at
                lexical = ev.lexical.get(tid)
                plain = ev.assigned.get(tid)
                matched = list(plain.matched) if plain is not None else list(lexical[4]) if lexical else []
                like = sim_pos[tid][i] if tid in sim_pos else 0.0
                unlike = sim_neg[tid][i] if tid in sim_neg else 0.0
                if p >= threshold and like >= LIKE_MIN and like > unlike:  # the reader's words for "why"
                    matched.insert(0, LIKE_RELEVANT)
                row.append((Assignment(tid, round(p, 3), matched), p >= threshold))
            row.sort(key=lambda r: (-r[0].score, order.get(r[0].topic_id, 0)))
            out.append(row)
        return out
