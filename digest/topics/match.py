"""Match papers to topics: a lexical matcher that reads like a person skimming a title.

How a (paper, topic) pair is scored
-----------------------------------
Text is split into tokens (words; hyphenated compounds are split into their parts and also
kept joined, letters and digits are split: ``ResNet50`` -> ``ResNet 50``) and every token is
reduced to a light stem (``segmentation``, ``segmenting``, ``segmented`` -> ``segment``;
``tumours`` -> ``tumor``; ``pathology``, ``pathological``, ``pathologist`` -> ``patholog``; a keyword
``ophthalmology`` also finds its adjective ``ophthalmic``). Phrases from the topic are stemmed the same way, so a phrase matches
a run of stems at word boundaries, in any of these spellings: ``vision-language`` /
``vision language`` / ``visionlanguage`` / ``vision-and-language``. A keyword written mostly in capitals (``ECG``,
``OCT``, ``WSI``, ``ViT``, ``fMRI``) is an acronym and matches only the same capitals (plural
``ECGs`` included): never ``oct`` in "October" or an ordinary lowercase word.

Evidence, each worth a weight:

* a keyword in the title (strongest), in the abstract (more for repeated mentions);
* a keyword of several words whose words all occur in one sentence, in any order (weaker);
* salient terms taken from the topic's description and name (much weaker: they only tip a
  paper over the threshold together with other evidence). A list shares its noun ("sparse or
  linear attention", "decoding or encoding brain activity"), and a compound is kept whole next
  to its head ("token reduction" and "reduction");
* one of the topic's arXiv categories (weak; primary category more than cross-lists).

Evidence adds up to ``E`` and the score is ``1 - exp(-E)`` in [0, 1); the pair is assigned
when the score reaches the topic's ``min_score``. An ``exclude`` phrase anywhere vetoes the
topic; a paper by one of the topic's ``authors`` is always assigned (score 1.0).

Matching depends only on the paper and the config (never on the other papers of a batch nor
on a subscriber), so it runs once per paper; see :func:`match_pending`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence

from digest.topics.config import Topic, TopicConfig
from digest.topics.words import (GENERIC, STOPWORDS, _SENTENCE_RE, _chunks, _fold, _is_acronym, _salient_terms,
                    _singular_acronym, stem, tokenize)

__all__ = [
    "Assignment",
    "Candidate",
    "MatchParams",
    "Matcher",
    "PaperText",
    "stem",
    "tokenize",
]

# --------------------------------------------------------------------------------------------
# A paper, indexed once
# --------------------------------------------------------------------------------------------


class PaperLike(Protocol):
    title: str
    abstract: str


@dataclass
class PaperText:
    """The text of a paper, enough to match it (``digest.store.models.Paper`` also fits)."""

    id: str
    title: str
    abstract: str = ""
    authors: Sequence[str] = ()
    categories: Sequence[str] = ()  # primary first


class _Index:
    __slots__ = ("stems", "title_len", "sentence", "pos", "compound", "caps", "sent_sets", "n_sentences")

    def __init__(self, title: str, abstract: str):
        self.stems: list[str] = []
        self.sentence: list[int] = []
        self.pos: dict[str, list[int]] = {}
        self.compound: dict[str, list[int]] = {}
        self.caps: dict[str, list[int]] = {}
        self.sent_sets: dict[str, set[int]] = {}
        sentences = [title or ""] + [s for s in _SENTENCE_RE.split(abstract or "") if s.strip()]
        self.title_len = 0
        for sid, sentence in enumerate(sentences):
            for parts in _chunks(sentence):
                start = len(self.stems)
                for part in parts:
                    s = stem(part)
                    p = len(self.stems)
                    self.stems.append(s)
                    self.sentence.append(sid)
                    self.pos.setdefault(s, []).append(p)
                    self.sent_sets.setdefault(s, set()).add(sid)
                    cap = _singular_acronym(part)
                    if _is_acronym(cap):
                        self.caps.setdefault(cap, []).append(p)
                if len(parts) > 1:
                    forms = ["".join(parts)]
                    if len(parts) > 2:  # "vision-and-language" also reads as "vision-language"
                        content = [q for q in parts if q.lower() not in STOPWORDS]
                        if 1 < len(content) < len(parts):
                            forms.append("".join(content))
                    for form in forms:
                        joined = stem(form.lower())
                        self.compound.setdefault(joined, []).append(start)
                        self.sent_sets.setdefault(joined, set()).add(sid)
            if sid == 0:
                self.title_len = len(self.stems)
        self.n_sentences = len(sentences)


# --------------------------------------------------------------------------------------------
# Phrases, compiled once per config
# --------------------------------------------------------------------------------------------


@dataclass
class _Phrase:
    text: str
    stems: tuple[str, ...]
    joined: str | None  # the stem of all parts written as one word, for multi-part phrases
    acronym: str | None  # case-sensitive form of a one-token acronym phrase
    content: tuple[str, ...]  # content stems, for the any-order match within a sentence

    @property
    def specific(self) -> bool:
        return self.acronym is not None or len(self.content) > 1

    def triggers(self) -> list[tuple[str, str]]:
        if self.acronym is not None:
            return [("C", self.acronym), ("C", self.acronym.upper())]
        keys = [("S", self.stems[0])]
        if self.joined:
            keys.append(("S", self.joined))
            keys.append(("J", self.joined))
        elif len(self.stems) == 1:
            keys.append(("J", self.stems[0]))  # "superresolution" finds "super-resolution"
        if len(self.content) > 1:
            keys.append(("S", self.content[0]))
        return keys


def _compile_phrase(text: str) -> _Phrase | None:
    chunks = _chunks(text)
    parts = [p for chunk in chunks for p in chunk]
    if not parts:
        return None
    if len(parts) == 1 and _is_acronym(parts[0]):
        return _Phrase(text, (stem(parts[0]),), None, parts[0], (stem(parts[0]),))
    stems = tuple(stem(p) for p in parts)
    joined = stem("".join(parts).lower()) if len(parts) > 1 else None
    content = tuple(dict.fromkeys(s for p, s in zip(parts, stems) if p.lower() not in STOPWORDS))
    return _Phrase(text, stems, joined, None, content or stems)


@dataclass
class _Hits:
    title: int = 0
    abstract: int = 0
    first_sentence: bool = False  # in the abstract's first sentence
    loose_title: bool = False
    loose_abstract: int = 0  # sentences holding every content word, without the exact phrase


def _find(phrase: _Phrase, ix: _Index) -> _Hits | None:
    starts: set[int] = set()
    if phrase.acronym is not None:
        starts.update(ix.caps.get(phrase.acronym, ()))
        if phrase.acronym.upper() != phrase.acronym:
            starts.update(ix.caps.get(phrase.acronym.upper(), ()))
    else:
        n = len(phrase.stems)
        stems = ix.stems
        for p in ix.pos.get(phrase.stems[0], ()):
            if n == 1 or tuple(stems[p : p + n]) == phrase.stems:
                starts.add(p)
        if n == 1:
            starts.update(ix.compound.get(phrase.stems[0], ()))
        if phrase.joined:
            starts.update(ix.pos.get(phrase.joined, ()))
            starts.update(ix.compound.get(phrase.joined, ()))
    hits = _Hits()
    exact_sentences: set[int] = set()
    for p in starts:
        sid = ix.sentence[p]
        exact_sentences.add(sid)
        if p < ix.title_len:
            hits.title += 1
        else:
            hits.abstract += 1
            if sid == 1:
                hits.first_sentence = True
    if phrase.acronym is None and len(phrase.content) > 1:
        for sid in _loose_sentences(phrase, ix) - exact_sentences:
            if sid == 0:
                hits.loose_title = True
            else:
                hits.loose_abstract += 1
    if not (hits.title or hits.abstract or hits.loose_title or hits.loose_abstract):
        return None
    return hits


def _loose_sentences(phrase: _Phrase, ix: _Index) -> set[int]:
    """Sentences where the phrase's words occur close together in another order or form
    ("segmentation of medical images"); one generic word may be missing
    ("convolutional networks" for "convolutional neural network")."""
    content = phrase.content
    needed = [s for s in content if s not in _GENERIC_STEMS]
    optional = [s for s in content if s in _GENERIC_STEMS]
    if not needed:
        return set()
    need_all = len(content) - (1 if optional and len(content) > 2 else 0)
    anchor = min(needed, key=lambda s: len(ix.pos.get(s, ())))
    anchor_pos = ix.pos.get(anchor, ())
    if not anchor_pos or any(s not in ix.pos and s not in ix.compound for s in needed):
        return set()
    window = len(content) + 1
    found: set[int] = set()
    for p in anchor_pos:
        sid = ix.sentence[p]
        if sid in found:
            continue
        lo, hi = p - window, p + window
        count = 0
        ok = True
        for s in content:
            near = any(lo <= q <= hi and ix.sentence[q] == sid for q in ix.pos.get(s, ()))
            if near:
                count += 1
            elif s in needed:
                ok = False
                break
        if ok and count >= need_all:
            found.add(sid)
    return found


# --------------------------------------------------------------------------------------------
# The matcher
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchParams:
    """Weights of the evidence. Defaults were set on principles and checked on a split of a
    labelled set (see bench/eval_topics.py); they are not per-topic."""

    title: float = 1.4  # a keyword in the title
    abstract: float = 0.3  # a keyword once in the abstract
    abstract_repeat: float = 0.25  # each further mention (up to two more)
    first_sentence: float = 0.15  # bonus when the abstract's first sentence has it
    loose_title: float = 0.8  # all words of a multi-word keyword in the title, other order
    loose_abstract: float = 0.25  # ... in one sentence of the abstract
    single_word: float = 0.6  # factor for a one-word, non-acronym keyword (more ambiguous)
    description: float = 0.2  # factor for a term taken from the description
    name: float = 0.5  # factor for a term taken from the topic's name
    phrase_cap: float = 1.6  # most one phrase can contribute
    category_primary: float = 0.35
    category_cross: float = 0.2
    threshold_shift: float = 0.0  # added to every topic's min_score (for experiments)
    relative: float = 0.45  # a topic also needs this fraction of the best topic's evidence


@dataclass(frozen=True)
class Assignment:
    topic_id: str
    score: float
    matched: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.topic_id, "score": self.score, "matched": list(self.matched)}


@dataclass(slots=True)
class Candidate:
    """A topic with lexical evidence for a paper, and the tests it passes."""

    assignment: Assignment
    by_author: bool
    above_min: bool  # score reaches the topic's min_score
    above_relative: bool  # evidence reaches params.relative of the paper's best topic
    best: bool  # the paper's best lexical topic

    @property
    def assigned(self) -> bool:
        return self.by_author or (self.above_min and self.above_relative)


_GENERIC_STEMS = frozenset(stem(w) for w in GENERIC)

_KEYWORD, _NAME, _DESCRIPTION, _EXCLUDE = "keyword", "name", "description", "exclude"


@dataclass
class _Evidence:
    total: float = 0.0
    why: list[tuple[float, str]] = field(default_factory=list)
    vetoed_by: str | None = None


def _author_key(name: str) -> tuple[str, str]:
    words = re.findall(r"[^\W\d_]+", _fold(name).lower())
    if not words:
        return ("", "")
    return (words[0][0], words[-1]) if len(words) > 1 else ("", words[0])


def _author_full(name: str) -> str:
    return " ".join(re.findall(r"[^\W\d_]+", _fold(name).lower()))


class Matcher:
    """Compile a :class:`TopicConfig` once; then ``match(paper)`` for each paper."""

    def __init__(self, config: TopicConfig, params: MatchParams | None = None):
        self.config = config
        self.params = params or MatchParams()
        self.topics: list[Topic] = list(config.topics)
        self._phrases: list[_Phrase] = []
        self._phrase_ids: dict[tuple, int] = {}
        # phrase id -> [(topic index, kind)]
        self._uses: list[list[tuple[int, str]]] = []
        self._trigger: dict[tuple[str, str], list[int]] = {}
        self._categories: dict[str, list[int]] = {}
        self._authors_full: dict[str, list[int]] = {}
        self._authors_short: dict[tuple[str, str], list[int]] = {}
        for ti, topic in enumerate(self.topics):
            seen: set[tuple] = set()
            for kw in topic.keywords:
                self._add(kw, ti, _KEYWORD, seen)
            if topic.use_description:
                for term in _salient_terms(topic.name):
                    self._add(term, ti, _NAME, seen)
                for term in _salient_terms(topic.description):
                    self._add(term, ti, _DESCRIPTION, seen)
            for phrase in topic.exclude:
                self._add(phrase, ti, _EXCLUDE, set())
            for cat in topic.categories:
                self._categories.setdefault(cat.lower(), []).append(ti)
            for author in topic.authors:
                self._authors_full.setdefault(_author_full(author), []).append(ti)
                key = _author_key(author)
                if key[0]:
                    self._authors_short.setdefault(key, []).append(ti)

    def _add(self, text: str, ti: int, kind: str, seen: set[tuple]) -> None:
        phrase = _compile_phrase(text)
        if phrase is None:
            return
        key = (phrase.stems, phrase.acronym)
        if kind != _EXCLUDE:
            if key in seen:  # a description term that repeats a keyword adds nothing
                return
            seen.add(key)
        if kind != _EXCLUDE and phrase.acronym is None and len(phrase.stems) == 1:
            root = phrase.stems[0][:-4] if phrase.stems[0].endswith("olog") else ""
            if len(root) >= 4:  # ophthalmology -> ophthalmic, the adjective of the same field
                self._add(root + "ic", ti, kind, seen)
        pid = self._phrase_ids.get(key)
        if pid is None:
            pid = self._phrase_ids[key] = len(self._phrases)
            self._phrases.append(phrase)
            self._uses.append([])
            for trig in dict.fromkeys(phrase.triggers()):
                self._trigger.setdefault(trig, []).append(pid)
        self._uses[pid].append((ti, kind))

    # -- scoring ------------------------------------------------------------------------------
    def _weight(self, phrase: _Phrase, hits: _Hits, kind: str) -> float:
        p = self.params
        w = 0.0
        if hits.title:
            w += p.title
        elif hits.loose_title:
            w += p.loose_title
        if hits.abstract:
            w += p.abstract + p.abstract_repeat * min(hits.abstract - 1, 2)
            if hits.first_sentence:
                w += p.first_sentence
        if hits.loose_abstract:
            w += p.loose_abstract * min(hits.loose_abstract, 2)
        w = min(w, p.phrase_cap)
        if not phrase.specific:
            w *= p.single_word
        if kind == _DESCRIPTION:
            w *= p.description
        elif kind == _NAME:
            w *= p.name
        return w

    def evidence(self, paper: Any) -> dict[int, _Evidence]:
        """Topic index -> the evidence found for it (for debugging and tuning)."""
        title = getattr(paper, "title", "") or ""
        abstract = getattr(paper, "abstract", "") or ""
        ix = _Index(title, abstract)
        candidates: set[int] = set()
        for s in ix.pos:
            candidates.update(self._trigger.get(("S", s), ()))
        for s in ix.compound:
            candidates.update(self._trigger.get(("J", s), ()))
        for s in ix.caps:
            candidates.update(self._trigger.get(("C", s), ()))
        out: dict[int, _Evidence] = {}
        for pid in sorted(candidates):
            phrase = self._phrases[pid]
            hits = _find(phrase, ix)
            if hits is None:
                continue
            for ti, kind in self._uses[pid]:
                ev = out.get(ti) or out.setdefault(ti, _Evidence())
                if kind == _EXCLUDE:
                    if hits.title or hits.abstract:
                        ev.vetoed_by = ev.vetoed_by or phrase.text
                    continue
                w = self._weight(phrase, hits, kind)
                if w > 0:
                    ev.total += w
                    # "~": only found loosely (words apart); the email does not quote it as written
                    ev.why.append((w, phrase.text if hits.title or hits.abstract else "~" + phrase.text))
        categories = list(dict.fromkeys(str(c) for c in (getattr(paper, "categories", None) or [])))
        for i, cat in enumerate(categories):
            for ti in self._categories.get(cat.lower(), ()):
                ev = out.get(ti) or out.setdefault(ti, _Evidence())
                w = self.params.category_primary if i == 0 else self.params.category_cross
                ev.total += w
                ev.why.append((w, f"category:{cat}"))
        return out

    def _author_topics(self, paper: Any) -> dict[int, str]:
        found: dict[int, str] = {}
        if not (self._authors_full or self._authors_short):
            return found
        for author in getattr(paper, "authors", None) or []:
            if isinstance(author, dict):
                author = author.get("name", "")
            author = str(author)
            for ti in self._authors_full.get(_author_full(author), ()):
                found.setdefault(ti, author)
            for ti in self._authors_short.get(_author_key(author), ()):
                found.setdefault(ti, author)
        return found

    def candidates(self, paper: Any) -> list[Candidate]:
        """Every topic with evidence and no veto, best first, with the tests it passes (the
        semantic matcher decides on these)."""
        authors = self._author_topics(paper)
        evidence = self.evidence(paper)
        rows: list[tuple[Assignment, float]] = []
        for ti in set(evidence) | set(authors):
            ev = evidence.get(ti) or _Evidence()
            if ev.vetoed_by and ti not in authors:
                continue
            matched = [label for _, label in sorted(ev.why, key=lambda x: -x[0])]
            if ti in authors:
                score, total = 1.0, math.inf
                matched.insert(0, f"author:{authors[ti]}")
            else:
                score, total = round(1.0 - math.exp(-ev.total), 3), ev.total
            rows.append((Assignment(self.topics[ti].id, score, matched), total))
        best = max((total for _, total in rows if total != math.inf), default=0.0)
        floor = self.params.relative * best
        shift = self.params.threshold_shift
        out = []
        for a, total in rows:
            author = total == math.inf
            above_min = author or (a.score > 0 and a.score >= self.config.by_id[a.topic_id].min_score + shift)
            out.append(Candidate(a, author, above_min, author or total >= floor, author or total == best))
        order = {t.id: i for i, t in enumerate(self.topics)}
        out.sort(key=lambda c: (-c.assignment.score, order[c.assignment.topic_id]))
        return out

    def _scored(self, paper: Any) -> list[tuple[Assignment, bool]]:
        return [(c.assignment, c.assigned) for c in self.candidates(paper)]

    def score_all(self, paper: Any) -> list[Assignment]:
        """Every topic with any evidence, assigned or not, best first (vetoed ones left out)."""
        return [a for a, _ in self._scored(paper)]

    def match(self, paper: Any) -> list[Assignment]:
        """The topics a paper is assigned to, best first.

        Assigned: a listed author, or score >= the topic's ``min_score`` and at least
        ``params.relative`` of the best topic's evidence (a passing mention of a second topic
        does not make the paper part of it)."""
        return [a for a, assigned in self._scored(paper) if assigned]

    def match_many(self, papers: Iterable[Any]) -> list[list[Assignment]]:
        """``match`` for each paper (the semantic matcher batches here; same interface)."""
        return [self.match(p) for p in papers]
