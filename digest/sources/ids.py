"""arXiv identifiers in every form they appear in: links, guids, Atom ids, "arXiv:" prefixes.

Canonical id = the arXiv id without version: ``2401.01234``, ``hep-th/9901001``.
"""
from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

# New style (since 2007): YYMM.NNNN (to 2014) or YYMM.NNNNN. Old style: archive[.SUBJ]/YYMMNNN,
# e.g. hep-th/9901001, math.GT/0309136 (the subject class is not part of the canonical id).
_NEW_RE = re.compile(r"(?P<id>\d{4}\.\d{4,5})(?:v(?P<version>\d{1,4}))?")
_OLD_RE = re.compile(
    r"(?P<archive>[a-z]+(?:-[a-z]+)?)(?:\.[A-Z]{2})?/(?P<num>\d{7})(?:v(?P<version>\d{1,4}))?"
)
_PREFIX_RE = re.compile(
    # the host must be arxiv.org itself (or a subdomain such as export.), not notarxiv.org
    r"(?:(?:^|(?<=://)|(?<=://www\.)|(?<=://export\.))arxiv\.org/(?:abs|pdf|html|format)/|oai:arxiv\.org:|arxiv:|^)\s*",
    re.IGNORECASE
)
_ENDS = "/?#& \t\n\"'<>)]"


class ArxivId(NamedTuple):
    id: str
    version: int | None


def _valid_new(ident: str) -> bool:
    yymm = ident.split(".")[0]
    month = int(yymm[2:])
    return 1 <= month <= 12


def parse_arxiv_id(text: str | None) -> ArxivId | None:
    """Find an arXiv id in a link, guid, Atom id or bare string; None when there is none.

    Only ids in a recognised position count (after arxiv.org/abs|pdf/, oai:arXiv.org:,
    arXiv:, or as the whole string), so a random number in a URL is not taken for an id.
    """
    if not text:
        return None
    text = text.strip()
    for prefix in _PREFIX_RE.finditer(text):
        rest = text[prefix.end():]
        m = _NEW_RE.match(rest)
        if m:
            ident = m.group("id")
            if not 1 <= int(ident[2:4]) <= 12:
                continue
        else:
            m = _OLD_RE.match(rest)
            if not m:
                continue
            ident = f"{m.group('archive')}/{m.group('num')}"
        tail = rest[m.end():]
        # the id must end its token: nothing, a separator, or ".pdf"
        sentence_end = bool(tail) and tail[0] in ".,;:" and (len(tail) == 1 or tail[1].isspace())
        if tail and tail[0] not in _ENDS and not tail.lower().startswith(".pdf") and not sentence_end:
            continue
        version = int(m.group("version")) if m.group("version") else None
        return ArxivId(ident, version)
    return None


def canonical_id(text: str | None) -> str | None:
    found = parse_arxiv_id(text)
    return found.id if found else None


def fallback_id(prefix: str, *parts: str) -> str:
    """A stable id for a paper without an arXiv id, derived from what identifies it."""
    digest = hashlib.sha256("\x1f".join(p.strip().lower() for p in parts).encode()).hexdigest()[:16]
    return f"{prefix}:{digest}"


def abs_url(arxiv_id: str) -> str:
    return f"https://arxiv.org/abs/{arxiv_id}"


def pdf_url(arxiv_id: str) -> str:
    return f"https://arxiv.org/pdf/{arxiv_id}"
