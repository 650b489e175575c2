"""What a digest looks like before it is rendered: the views the templates see (digest,
section, paper), the caps on hostile text, and the cache keys of papers and sections (equal
keys always give equal output). Used by `render`; pages use `section_anchor`."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from markupsafe import Markup

from digest.email.content import PaperItem
from digest.email.display import URL_MAX, clean_text, format_date, safe_url, trim_words
from digest.email.why import why_line

# Caps on hostile text (characters, after cleaning)
TITLE_MAX = 300
AUTHOR_MAX = 80
SECTION_NAME_MAX = 80
CATEGORY_MAX = 32
PHRASE_MAX = 60
PHRASES_MAX = 5
ABSTRACT_LEVELS = (360, 160, 0)   # characters of abstract per shrink level



class _Shared:
    """A digest rendered once for one content, with recipient slots: its parts per shrink
    step, built when a recipient needs them: HTML per (abstract level, papers per section),
    text per papers per section (None: no cap). A part that cannot be assembled is None."""

    __slots__ = ("view", "subject", "preheader", "html", "text", "frames", "weight", "own", "own_html", "kept")

    def __init__(self, view: "DigestView"):
        self.view, self.subject, self.preheader = view, view.subject, view.preheader
        self.html: dict = {}
        self.text: dict = {}
        # each part without its sections (the same at every shrink step): "html"/"text" ->
        # [head, None, between, None, ..., tail], None where a section goes
        self.frames: dict = {}
        self.own: tuple = ()             # the view's own head lines (render._OWN), and escaped
        self.own_html: tuple = ()
        # its own pieces (head and tail) and their encodings, roughly; sections are counted
        # in the section cache
        self.weight = 4096               # the view and its sections' views, roughly
        self.kept = False                # in the renderer's content cache (its weight counted)


class _SectionEntry:
    """One section as the renderer shows it, cached across digests: its papers, and its
    rendered box (HTML, per abstract level and with/without a web page) and text block."""

    __slots__ = ("name", "anchor", "question", "extra", "papers", "html", "text", "topic_id", "paper_ids")

    def __init__(self, name: str, anchor: str, question: bool, extra: int, papers: list,
                 topic_id: str = "", paper_ids: list | None = None):
        self.name, self.anchor, self.question, self.extra, self.papers = name, anchor, question, extra, papers
        self.topic_id, self.paper_ids = topic_id, paper_ids or []   # what the vote links name
        self.html: dict = {}
        self.text: dict = {}


@dataclass(slots=True)
class PaperView:
    title: str
    url: str | None
    authors: str
    category: str
    date: str
    upvotes: int | None
    pdf_url: str | None
    hf_url: str | None
    code_url: str | None
    why: str
    abstract_src: str          # cleaned, up to the longest abstract level (+1 to know it was cut)
    abstract: str = ""         # set per shrink level just before the paper macro runs


class _Paper:
    """One cached paper: its view and its rendered fragments per abstract level."""
    __slots__ = ("view", "html", "extra", "text")

    def __init__(self, view: PaperView):
        self.view = view
        self.html: list = [None] * len(ABSTRACT_LEVELS)
        self.extra: list = [0] * len(ABSTRACT_LEVELS)   # UTF-8 bytes beyond len(html)
        self.text: list = [None] * len(ABSTRACT_LEVELS)


@dataclass(slots=True)
class SectionView:
    name: str
    all_papers: list[_Paper]
    extra: int                 # Section.more
    anchor: str = "papers"     # the section's id on the digest's web page (#t-{anchor})
    question: bool = False     # an "Is this <topic>?" section (digest.plan.add_questions): not counted
    topic_id: str = ""         # the section id the vote links name
    paper_ids: list[str] = field(default_factory=list)     # of all_papers, for the vote links
    papers: list[_Paper] = field(default_factory=list)
    more: int = 0
    papers_html: Markup = Markup("")                       # the shown papers, rendered
    papers_text: list[str] = field(default_factory=list)
    body: Markup = Markup("")                              # the section's box, rendered
    body_text: str = ""
    entry: _SectionEntry | None = None

    @property
    def count(self) -> int:
        return len(self.all_papers) + self.extra

    @property
    def name_head(self) -> str:
        """The name up to its last word (which stays on one line with "· N new")."""
        head, _, _ = self.name.rpartition(" ")
        return head + " " if head else ""

    @property
    def name_last(self) -> str:
        return self.name.rpartition(" ")[2]


@dataclass(slots=True)
class DigestView:
    title: str
    subject: str
    preheader: str
    sender: str
    kind: str
    date: str
    headline: str
    topics_line: str
    topic_names: str
    recipient: str
    unsubscribe_url: str
    preferences_url: str
    nothing_new: bool
    all_sections: list[SectionView]
    view_url: str = ""
    has_view: bool = False
    sections: list[SectionView] = field(default_factory=list)
    hidden_sections: int = 0
    hidden_papers: int = 0
    papers_chars: int = 0      # characters / extra UTF-8 bytes of the rendered papers (HTML)
    papers_extra: int = 0


def _shown(s: SectionView) -> int | None:
    """How many of the section's papers a shrink step shows (None: all)."""
    n = len(s.papers)
    return n if n < len(s.all_papers) else None


def _cut(value, limit: int) -> str:
    """The part of a text field that clean_text(value, limit) looks at (a short str is
    returned as is: slicing a whole str gives the same object, no copy)."""
    if type(value) is str:
        return value[: limit * 2 + 64]
    return "" if value is None else str(value)[: limit * 2 + 64]


def _url_part(value):
    return value if type(value) is str and len(value) <= URL_MAX + 64 else None


_TITLE_CUT = TITLE_MAX * 2 + 64
_ABSTRACT_CUT = (ABSTRACT_LEVELS[0] + 1) * 2 + 64
_AUTHOR_CUT = AUTHOR_MAX * 2 + 64
_URL_CUT = URL_MAX + 64


def _paper_key(p: PaperItem) -> tuple:
    """Everything of ``p`` that shows in the email, bounded in size. The view is computed
    from this key alone, so equal keys always give equal output (safe to cache)."""
    title, abstract, authors, matched = p.title, p.abstract, p.authors, p.matched
    url, pdf, hf, code, up = p.url, p.pdf_url, p.hf_url, p.code_url, p.hf_upvotes
    if type(authors) is list and len(authors) <= 3 and all(
            type(a) is str and len(a) <= _AUTHOR_CUT for a in authors):
        authors_key = tuple(authors)
        et_al = False
    else:
        if isinstance(authors, str):
            authors = [authors]
        elif not isinstance(authors, (list, tuple)):
            authors = []
        authors_key = tuple([_cut(a, AUTHOR_MAX) for a in authors[:3]])
        et_al = len(authors) > 3
    published = p.published
    return (
        title[:_TITLE_CUT] if type(title) is str else _cut(title, TITLE_MAX),
        url if type(url) is str and len(url) <= _URL_CUT else None,
        authors_key,
        et_al,
        abstract[:_ABSTRACT_CUT] if type(abstract) is str else _cut(abstract, ABSTRACT_LEVELS[0] + 1),
        _cut(p.primary_category, CATEGORY_MAX),
        published if isinstance(published, date) else None,
        up if type(up) is int and up >= 0 else None,
        pdf if type(pdf) is str and len(pdf) <= _URL_CUT else None,
        hf if type(hf) is str and len(hf) <= _URL_CUT else None,
        code if type(code) is str and len(code) <= _URL_CUT else None,
        tuple([_cut(m, PHRASE_MAX) for m in matched[: PHRASES_MAX * 2]])
        if isinstance(matched, (list, tuple)) else (),
    )


def _view_from_key(key: tuple) -> PaperView:
    (title, url, authors_in, et_al, abstract, category, published, upvotes,
     pdf_url, hf_url, code_url, matched) = key
    names = [n for n in (clean_text(a, AUTHOR_MAX) for a in authors_in) if n]
    authors = ", ".join(names)
    if et_al and names:
        authors += " et al."
    phrases: list[str] = []
    for m in matched:
        c = clean_text(m, PHRASE_MAX)
        if c and c not in phrases:
            phrases.append(c)
            if len(phrases) == PHRASES_MAX:
                break
    return PaperView(
        title=clean_text(title, TITLE_MAX) or "(untitled)",
        url=safe_url(url),
        authors=authors,
        category=clean_text(category, CATEGORY_MAX),
        date=format_date(published),
        upvotes=upvotes,
        pdf_url=safe_url(pdf_url),
        hf_url=safe_url(hf_url),
        code_url=safe_url(code_url),
        why=why_line(phrases),
        abstract_src=clean_text(abstract, ABSTRACT_LEVELS[0] + 1),
    )



def section_anchor(topic_id) -> str:
    """A section's fragment id: the topic id's slug characters (topic ids are slugs already)."""
    slug = "".join(ch for ch in str(topic_id or "").lower()[:64] if ch.isascii() and (ch.isalnum() or ch == "-"))
    return slug or "papers"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def digest_view(sections: list[SectionView], named: list[str], content, *, nothing_new: bool,
                recipient: tuple[str, ...], sender: str) -> DigestView:
    """The digest's view from its sections: headline, subject, preheader, topic chips and names
    (only sections with papers count; "Is this <topic>?" sections are not counted)."""
    sections = [s for s in sections if s.count > 0]
    counted = [s for s in sections if not s.question]  # headline and subject: not the questions
    total = sum(s.count for s in counted)
    weekly = bool(content.weekly)
    edition = format_date(content.edition)

    if total == 0:
        nothing_new = True
        headline = "Nothing new this week" if weekly else "Nothing new today"
        subject = f"{headline} — {edition}"
        preheader = "No new papers matched your topics" + (" this week." if weekly else " today.")
        topics_line = ""
    else:
        n_topics = len(counted)
        papers = _plural(total, "new paper", "new papers")
        headline = f"{papers} in {_plural(n_topics, 'topic', 'topics')}"
        names = ", ".join(trim_words(s.name, 40) for s in counted[:2])
        tail = f" +{n_topics - 2} more" if n_topics > 2 else ""
        when = " this week" if weekly else ""
        subject = f"{papers}{when}: {names}{tail} — {edition}"
        chips = [f"{s.name} ({s.count})" for s in counted[:6]]
        if n_topics > 6:
            chips.append(f"+{n_topics - 6} more")
        topics_line = " · ".join(chips)
        top = next((p.view.title for s in sections for p in s.all_papers), "")
        preheader = trim_words(f"{trim_words(top, 90)} · {topics_line}" if top else topics_line, 150)
    topic_names = ", ".join(trim_words(n, 40) for n in named[:4])
    if len(named) > 4:
        topic_names += f" and {len(named) - 4} more topics"

    address, unsub, prefs, view = recipient
    return DigestView(
        title=f"{sender} — {edition}",
        subject=subject,
        preheader=preheader,
        sender=sender,
        kind="Weekly digest" if weekly else "Daily digest",
        date=edition,
        headline=headline,
        topics_line=topics_line,
        topic_names=topic_names,
        recipient=address,
        unsubscribe_url=unsub,
        preferences_url=prefs,
        nothing_new=nothing_new,
        all_sections=sections,
        view_url=view,
        has_view=bool(safe_url(getattr(content, "view_url", ""))),
    )
