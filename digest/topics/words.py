"""Words as the matcher reads them: stopwords and the field's generic vocabulary, a light
stemmer, tokens (hyphen, acronym and letter-digit aware), and the salient terms of a topic's
description (lists sharing a noun, compounds kept next to their head)."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


# --------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------

STOPWORDS = frozenset(
    """a an the and or nor but of in on at to for from by with without within into onto over under
    via as such like e.g eg i.e ie etc is are be been being was were it its this that these those
    their them they we our us you your he she his her which who whom whose what when where how why
    than then also both either neither each every all any some other others more most less least
    many much few several various very can could may might must shall should will would do does
    did not no non only own same so too just about across after against along among around before
    behind below beneath beside between beyond during except inside near off out outside per since
    through throughout toward towards upon versus vs whether while used using use""".split()
)

# Words so common in machine-learning abstracts that, alone, they say nothing about a topic.
# General vocabulary of the field, not tuned on any labelled paper.
GENERIC = frozenset(
    """model models modeling modelling method methods approach approaches network networks neural deep
    learning learn learned learns data dataset datasets image images imaging task tasks performance
    result results system systems framework frameworks technique techniques algorithm algorithms
    analysis study studies new novel design designs designed application applications based large
    small general different work paper problem problems training train trained architecture
    architectures representation representations feature features signal signals structure
    structures information input inputs output outputs process processing level levels type types
    form forms set sets state art existing propose proposed present presents show shows efficient
    effective improved improve improving better high low quality accuracy accurate robust simple
    multiple single various common specific global local visual vision language text video videos
    object objects scene scenes generation generative generate generating evaluation benchmark
    benchmarks experiment experiments layer layers module modules block blocks head heads token
    tokens label labels labeled unlabeled sample samples domain domains human humans people
    medical clinical computer computational body disease diseases recipe recipes alternative
    alternatives what learn learns""".split()
)

_ADJECTIVE_RE = re.compile(r"(?:al|ar|ic|ive|ous|ent|ant|ful|less|ible|able|ing)$")
_ADJECTIVES = frozenset("sparse dense long short fast slow deep shallow wide narrow light heavy".split())

_HYPHENS = "-\u2010\u2011\u2012\u2013\u2212"
_CHUNK_RE = re.compile(r"[^\W_]+(?:[" + _HYPHENS + r"][^\W_]+)*")
_HYPHEN_SPLIT_RE = re.compile("[" + _HYPHENS + "]")
_ALNUM_SPLIT_RE = re.compile(r"\d+|[^\W\d_]+")
_SENTENCE_RE = re.compile(r"(?<=[.!?;])\s+(?=[^\sa-z])")

_SUFFIXES = (
    # (suffix, replacement, shortest stem left)
    ("izations", "iz", 3), ("isations", "iz", 3),
    ("ization", "iz", 3), ("isation", "iz", 3),
    ("ability", "", 4), ("ibility", "", 4),
    ("ations", "", 4), ("ation", "", 4), ("itions", "", 4), ("ition", "", 4),
    ("izing", "iz", 3), ("ising", "iz", 3), ("ized", "iz", 3), ("ised", "iz", 3),
    ("izes", "iz", 3), ("ises", "iz", 3), ("ize", "iz", 3), ("ise", "iz", 3),
    ("ement", "", 4), ("ness", "", 4),
    ("ions", "", 4), ("ion", "", 4),
    ("able", "", 4), ("ible", "", 4),
    ("ings", "", 3), ("ing", "", 3), ("ity", "", 4), ("ive", "", 4),
    ("ly", "", 4), ("ed", "", 3), ("ers", "", 4), ("er", "", 4),
    ("yse", "yz", 3), ("yze", "yz", 3),
)


_OLOGY_RE = re.compile(r"(?<=..)olog(?:y|ical|ic|ist)$")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A light, deterministic English stemmer (same rules for phrases and texts)."""
    w = word.lower()
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("our") and len(w) > 5:  # tumour -> tumor, colour -> color
        w = w[:-3] + "or"
    root = _OLOGY_RE.sub("olog", w)  # pathology / pathological / pathologist: one family
    if root != w:
        return root
    for suffix, replacement, shortest in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= shortest:
            w = w[: -len(suffix)] + replacement
            break
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 4 and w[-1] == w[-2] and w[-1] not in "s" and not w[-1] in "aeiou":
        w = w[:-1]
    return w


def _is_acronym(token: str) -> bool:
    """ECG, OCT, WSI, ViT, fMRI, MLLM: mostly capitals. Not ResNet, Mamba, U."""
    letters = [c for c in token if c.isalpha()]
    if len(letters) < 2:
        return False
    upper = sum(1 for c in letters if c.isupper())
    return upper >= 2 and upper * 2 > len(letters)


def _singular_acronym(token: str) -> str:
    """ECGs -> ECG, ViTs -> ViT; leaves ordinary words alone."""
    if len(token) > 2 and token.endswith("s") and _is_acronym(token[:-1]):
        return token[:-1]
    return token


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c))


def _chunks(text: str) -> list[list[str]]:
    """Words of a text; each hyphenated compound is one list of its parts."""
    out = []
    for match in _CHUNK_RE.finditer(_fold(text)):
        parts: list[str] = []
        for piece in _HYPHEN_SPLIT_RE.split(match.group(0)):
            parts.extend(_ALNUM_SPLIT_RE.findall(piece))
        if parts:
            out.append(parts)
    return out


def tokenize(text: str) -> list[str]:
    """Original-case tokens of a text (for tests and debugging)."""
    return [p for chunk in _chunks(text) for p in chunk]


# Splitting a description into salient terms
_DESC_SPLIT_RE = re.compile(
    r"[,;:.()\[\]/]|(?<![\w-])(?:and|or|such as|e\.g|i\.e|including|include|like|as|used as|used|with|without|in|of|for|from|"
    r"to|by|on|via|into|other|their|its|what|how|which|that|new|about)(?![\w-])",
    re.IGNORECASE,
)


def _clean_term(segment: str) -> str | None:
    words = segment.split()
    while words and words[0].lower() in STOPWORDS | GENERIC and not _is_acronym(words[0]):
        words.pop(0)
    while words and words[-1].lower() in STOPWORDS and not _is_acronym(words[-1]):
        words.pop()
    if not words:
        return None
    tokens = tokenize(" ".join(words))
    if not tokens or len(tokens) > 4:
        return None
    if all(t.lower() in GENERIC or t.lower() in STOPWORDS for t in tokens) and not any(map(_is_acronym, tokens)):
        return None
    if len(tokens) == 1 and len(tokens[0]) < 3 and not _is_acronym(tokens[0]):
        return None
    return " ".join(words)


def _is_modifier(term: str) -> bool:
    """A lone adjective or participle ('Sparse', 'linear', 'Decoding'): it modifies the noun
    at the end of its list ('Sparse, linear or routing attention')."""
    if " " in term or _is_acronym(term):
        return False
    low = term.lower()
    return low in _ADJECTIVES or bool(_ADJECTIVE_RE.search(low))


_LIST_SPLIT_RE = re.compile(r"([.;:()\\[\\]])")
_LIST_SEP_RE = re.compile(r"[.;:()\\[\\]]")


def _salient_terms(text: str) -> list[str]:
    """'Segmenting organs, tumours ... in CT, MRI' -> ['Segmenting organs', 'tumours', 'CT', 'MRI'];
    'Sparse, linear or routing attention' -> ['sparse attention', 'linear attention', 'routing attention']."""
    out: list[str] = []
    pieces = [p for p in _LIST_SPLIT_RE.split(text or "")]
    items: list[str] = []
    for piece in pieces:
        if piece is None:
            continue
        if _LIST_SEP_RE.fullmatch(piece):
            continue
        for segment in _DESC_SPLIT_RE.split(piece):
            term = _clean_term(segment) if segment else None
            if term:
                # a compound whose head alone is left ('token reduction' -> 'reduction') is kept
                # whole as well: the compound is the specific term, the head the broader one
                whole = " ".join(w for w in segment.split() if w.lower() not in STOPWORDS)
                if " " not in term and 1 < len(whole.split()) <= 3:
                    items.append(whole)
                items.append(term)
    pending: list[str] = []
    for term in items:
        if _is_modifier(term):
            pending.append(term)
            continue
        words = term.split()
        for mod in pending:
            # a list shares its noun: 'sparse or linear attention', 'decoding or encoding brain activity';
            # a lone gerund ('pruning') is a noun unless the next item starts with one too
            if len(words) > 1 and _is_modifier(words[0]) and mod.lower().endswith("ing") == words[0].lower().endswith("ing"):
                out.append(f"{mod.lower()} {' '.join(words[1:])}")
            elif len(words) > 1 and not mod.lower().endswith("ing"):
                out.append(f"{mod.lower()} {words[-1]}")
            else:
                out.append(mod)
        pending = []
        out.append(term)
    out.extend(pending)
    return list(dict.fromkeys(out))
