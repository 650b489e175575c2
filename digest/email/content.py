"""What one digest carries: plain data handed from planning to rendering and delivery.

Everything here that came from a feed (titles, abstracts, authors, phrases) is untrusted
text; renderers must escape it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass
class PaperItem:
    paper_id: str
    title: str
    url: str                      # arXiv abstract page, or the HF page when there is no arXiv id
    authors: list[str]
    abstract: str
    primary_category: str | None = None
    published: datetime | None = None   # first seen / announced
    hf_upvotes: int | None = None
    pdf_url: str | None = None
    hf_url: str | None = None
    code_url: str | None = None
    matched: list[str] = field(default_factory=list)  # "why you got this"
    score: float = 0.0


@dataclass
class Section:
    topic_id: str                 # "trending" for the Trending section
    name: str                     # heading shown in the email
    papers: list[PaperItem]       # shown papers, best first
    more: int = 0                 # papers only counted: "N more in this topic"
    # Set by builder.ContentBuilder: sections with equal non-None keys render the same
    # (the renderer caches rendered sections by it).
    cache_key: tuple | None = field(default=None, compare=False, repr=False)


@dataclass
class Recipient:
    subscriber_id: int
    email: str
    name: str | None = None
    timezone: str = "UTC"
    link_secret: str = ""         # the subscriber's link secret: binds the links in the email


@dataclass
class DigestContent:
    recipient: Recipient
    edition: date
    sections: list[Section]
    weekly: bool = False
    unsubscribe_url: str = ""
    preferences_url: str = ""
    view_url: str = ""            # the digest's web page ("View in browser"); "" = no page
    # Set by whoever built the sections when it can name them cheaply (send.ContentBuilder):
    # digests with equal non-None keys (and edition, frequency) have equal sections.
    cache_key: tuple | None = field(default=None, compare=False, repr=False)

    @property
    def shown_count(self) -> int:
        return sum(len(s.papers) for s in self.sections)

    @property
    def total_count(self) -> int:
        return sum(len(s.papers) + s.more for s in self.sections)

    @property
    def is_empty(self) -> bool:
        return self.total_count == 0
