"""Render a DigestContent into an email: subject, preheader, HTML (Jinja2 → MJML → HTML) and text.

Everything from feeds is hostile. Before it reaches a template, every string is cleaned
(control characters and bidi overrides removed, whitespace collapsed, length capped) and every
URL is checked (only http(s) becomes a link). The MJML template is autoescaped.

Size budget: the HTML must stay under ``settings.max_html_bytes`` (Gmail clips at ~102 KB).
When a render crosses it, the digest is shrunk step by step — shorter abstracts, then no
abstracts, then fewer shown papers per section (the rest are counted in "N more"), then fewer
sections — and rendered again. The HTML is never cut.

Speed: MRML (mjml-python) spends most of its time parsing the inline HTML inside
``<mj-text>``, which it copies to the output unchanged anyway. So before compiling, the body of
every ``<mj-text>`` is lifted out and replaced by a unique placeholder word; after compiling,
the placeholders are swapped back (one pass, so content is never re-scanned). The result is the
same HTML MRML produces for the full document (``lift_text=False`` does that, for checking).
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import parseaddr

import mjml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from digest.edition import DigestContent, PaperItem
from digest import tokens

HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"

# Caps on hostile text (characters, after cleaning)
TITLE_MAX = 300
AUTHOR_MAX = 80
SECTION_NAME_MAX = 80
CATEGORY_MAX = 32
PHRASE_MAX = 60
PHRASES_MAX = 5
URL_MAX = 900
ABSTRACT_LEVELS = (360, 160, 0)   # characters of abstract per shrink level

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _build_clean_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for cp in list(range(0x00, 0x20)) + list(range(0x7F, 0xA0)):
        table[cp] = " "                       # C0/C1 controls incl. CR, LF, TAB
    for cp in (0x2028, 0x2029, 0x85):
        table[cp] = " "                       # line/paragraph separators
    for cp in list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)) + [0x200E, 0x200F, 0x061C]:
        table[cp] = None                      # bidi embeddings/overrides/isolates/marks (spoofing)
    for cp in [0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB, 0xFFFE, 0xFFFF] + list(range(0xD800, 0xE000)):
        table[cp] = None                      # BOM, interlinear annotations, lone surrogates
    return table


_CLEAN = _build_clean_table()
# absolute http(s), no userinfo@ (https://arxiv.org@evil.example), no spaces or controls
_URL_OK = re.compile(r"https?://[^\x00-\x20\x7f/?#\\@]+(?:[/?#][^\x00-\x20\x7f]*)?", re.I)


def clean_text(value, limit: int) -> str:
    """One line of display text: no control characters, collapsed whitespace, at most ``limit``
    characters (cut at a word, with an ellipsis)."""
    if not value:
        return ""
    if not isinstance(value, str):
        value = str(value)
    s = value[: limit * 2 + 64]
    if not s.isprintable():                   # fast path: nothing to remove
        s = s.translate(_CLEAN)
    s = " ".join(s.split())
    if len(s) > limit:
        s = trim_words(s, limit)
    return s


def trim_words(s: str, limit: int) -> str:
    if len(s) <= limit:
        return s
    if limit <= 1:
        return "…"
    cut = s[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


def safe_url(value) -> str | None:
    """``value`` if it is a plain absolute http(s) URL, else None (never linked)."""
    if not value or not isinstance(value, str):
        return None
    u = value.strip()
    if len(u) > URL_MAX or not u.isascii():
        return None
    return u if _URL_OK.fullmatch(u) else None


def format_date(d) -> str:
    if isinstance(d, datetime):
        d = d.date()
    if not isinstance(d, date):
        return ""
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    preheader: str


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
    abstract: str = ""


@dataclass(slots=True)
class SectionView:
    name: str
    all_papers: list[PaperView]
    extra: int                 # Section.more
    papers: list[PaperView] = field(default_factory=list)
    more: int = 0

    @property
    def count(self) -> int:
        return len(self.all_papers) + self.extra


@dataclass(slots=True)
class DigestView:
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
    sections: list[SectionView] = field(default_factory=list)
    hidden_sections: int = 0
    hidden_papers: int = 0


def _paper_view(p: PaperItem) -> PaperView:
    authors_in = p.authors or []
    if isinstance(authors_in, str):
        authors_in = [authors_in]
    names = [n for n in (clean_text(a, AUTHOR_MAX) for a in authors_in[:3]) if n]
    authors = ", ".join(names)
    if len(authors_in) > 3 and names:
        authors += " et al."
    phrases: list[str] = []
    for m in (p.matched or [])[: PHRASES_MAX * 2]:
        c = clean_text(m, PHRASE_MAX)
        if c and c not in phrases:
            phrases.append(c)
            if len(phrases) == PHRASES_MAX:
                break
    upvotes = p.hf_upvotes if isinstance(p.hf_upvotes, int) and not isinstance(p.hf_upvotes, bool) \
        and p.hf_upvotes >= 0 else None
    return PaperView(
        title=clean_text(p.title, TITLE_MAX) or "(untitled)",
        url=safe_url(p.url),
        authors=authors,
        category=clean_text(p.primary_category, CATEGORY_MAX),
        date=format_date(p.published),
        upvotes=upvotes,
        pdf_url=safe_url(p.pdf_url),
        hf_url=safe_url(p.hf_url),
        code_url=safe_url(p.code_url),
        why=", ".join(f"“{ph}”" for ph in phrases),
        abstract_src=clean_text(p.abstract, ABSTRACT_LEVELS[0] + 1),
    )


class Renderer:
    """Loads the templates once; ``render(content)`` is cheap (call it 100,000 times)."""

    def __init__(self, settings, *, lift_text: bool = True):
        self.settings = settings
        self.max_html_bytes = int(settings.max_html_bytes)
        self.lift_text = lift_text
        self.env = Environment(
            loader=FileSystemLoader(str(settings.templates_dir)),
            autoescape=select_autoescape(enabled_extensions=("mjml.j2", "html.j2", "html", "mjml"),
                                         default_for_string=True, default=False),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            undefined=StrictUndefined,
        )
        self.html_template = self.env.get_template(HTML_TEMPLATE)
        self.text_template = self.env.get_template(TEXT_TEMPLATE)
        name, _ = parseaddr(settings.from_addr)
        self.sender = clean_text(name, 60) or "Paper Digest"
        nonce = secrets.token_hex(6)
        self._token = f"mjlift{nonce}x"   # a plain word MRML copies as is

    # -- public API ---------------------------------------------------------------------------
    def render(self, content: DigestContent) -> Rendered:
        """Subject, preheader, HTML and text of one digest, HTML within the size budget."""
        view = self._view(content, nothing_new=False)
        return self._render_within_budget(view)

    def render_nothing_new(self, content: DigestContent) -> Rendered:
        """The short "nothing new today" note (same header and footer, no papers)."""
        view = self._view(content, nothing_new=True)
        return self._render_within_budget(view)

    # -- internals ------------------------------------------------------------------------------
    def mjml_source(self, content: DigestContent) -> str:
        """The MJML document (before MJML → HTML), for debugging and tests."""
        view = self._view(content, nothing_new=False)
        self._apply(view, ABSTRACT_LEVELS[0], None, None)
        return self.html_template.render(v=view)

    def _compile(self, source: str) -> str:
        if not self.lift_text:
            return mjml.mjml2html(source, disable_comments=True, fonts={})
        skeleton, fragments = _lift_mj_text(source, self._token)
        html = mjml.mjml2html(skeleton, disable_comments=True, fonts={})
        pieces = html.split(self._token)
        if len(pieces) != len(fragments) + 1:  # cannot happen with MRML; be safe anyway
            return mjml.mjml2html(source, disable_comments=True, fonts={})
        out = [pieces[0]]
        for frag, piece in zip(fragments, pieces[1:]):
            out.append(frag)
            out.append(piece)
        return "".join(out)

    def _render_once(self, view: DigestView) -> tuple[str, int]:
        html = self._compile(self.html_template.render(v=view))
        return html, len(html.encode("utf-8"))

    def _render_within_budget(self, view: DigestView) -> Rendered:
        budget = self.max_html_bytes
        html = ""
        size = 0
        for abstract_len in ABSTRACT_LEVELS:
            self._apply(view, abstract_len, None, None)
            html, size = self._render_once(view)
            if size < budget:
                return self._finish(view, html)
        # Still too big without abstracts: show fewer papers per section (the rest go to "more").
        cap = max((len(s.all_papers) for s in view.all_sections), default=0)
        while size >= budget and cap > 0:
            cap = min(cap - 1, int(cap * budget * 0.9 / size))
            cap = max(cap, 0)
            self._apply(view, 0, cap, None)
            html, size = self._render_once(view)
        # Then fewer sections (a line counts the hidden ones).
        n_sections = len(view.all_sections)
        while size >= budget and n_sections > 0:
            n_sections = max(0, min(n_sections - 1, int(n_sections * budget * 0.9 / size)))
            self._apply(view, 0, 0, n_sections)
            html, size = self._render_once(view)
        if size >= budget:
            raise ValueError(f"digest HTML is {size} bytes even when empty; budget {budget}")
        return self._finish(view, html)

    def _finish(self, view: DigestView, html: str) -> Rendered:
        text = self.text_template.render(v=view)
        return Rendered(subject=view.subject, html=html, text=text, preheader=view.preheader)

    @staticmethod
    def _apply(view: DigestView, abstract_len: int, cap: int | None, n_sections: int | None) -> None:
        sections = view.all_sections if n_sections is None else view.all_sections[:n_sections]
        for s in sections:
            shown = s.all_papers if cap is None else s.all_papers[:cap]
            s.papers = shown
            s.more = s.extra + len(s.all_papers) - len(shown)
            for p in shown:
                p.abstract = trim_words(p.abstract_src, abstract_len) if abstract_len else ""
        view.sections = sections
        hidden = view.all_sections[len(sections):]
        view.hidden_sections = len(hidden)
        view.hidden_papers = sum(s.count for s in hidden)

    def _view(self, content: DigestContent, *, nothing_new: bool) -> DigestView:
        settings = self.settings
        sections = []
        for sec in content.sections:
            papers = [_paper_view(p) for p in sec.papers]
            extra = sec.more if isinstance(sec.more, int) and sec.more > 0 else 0
            if nothing_new:
                papers, extra = [], 0
            sections.append(SectionView(name=clean_text(sec.name, SECTION_NAME_MAX) or "Papers",
                                        all_papers=papers, extra=extra))
        named = [clean_text(s.name, SECTION_NAME_MAX) for s in content.sections]
        named = [n for n in named if n]
        nonempty = [s for s in sections if s.count > 0]
        if nothing_new:
            sections = []
        total = sum(s.count for s in nonempty)
        weekly = bool(content.weekly)
        edition = format_date(content.edition)
        sid = content.recipient.subscriber_id

        if nothing_new or total == 0:
            headline = "Nothing new this week" if weekly else "Nothing new today"
            subject = f"{headline} — {edition}"
            preheader = "No new papers matched your topics" + (" this week." if weekly else " today.")
            topics_line = ""
        else:
            n_topics = len(nonempty)
            headline = f"{_plural(total, 'new paper', 'new papers')} in {_plural(n_topics, 'topic', 'topics')}"
            names = [trim_words(s.name, 40) for s in nonempty[:2]]
            tail = f" +{n_topics - 2} more" if n_topics > 2 else ""
            when = " this week" if weekly else ""
            subject = f"{_plural(total, 'new paper', 'new papers')}{when}: {', '.join(names)}{tail} — {edition}"
            chips = [f"{s.name} ({s.count})" for s in nonempty[:6]]
            if n_topics > 6:
                chips.append(f"+{n_topics - 6} more")
            topics_line = " · ".join(chips)
            top = next((p.title for s in nonempty for p in s.all_papers), "")
            preheader = trim_words(f"{trim_words(top, 90)} · {topics_line}" if top else topics_line, 150)
        topic_names = ", ".join(trim_words(n, 40) for n in named[:4])
        if len(named) > 4:
            topic_names += f" and {len(named) - 4} more topics"

        unsub = safe_url(content.unsubscribe_url) or tokens.unsubscribe_url(settings, sid)
        prefs = safe_url(content.preferences_url) or tokens.preferences_url(settings, sid)
        return DigestView(
            subject=subject,
            preheader=preheader,
            sender=self.sender,
            kind="Weekly digest" if weekly else "Daily digest",
            date=edition,
            headline=headline,
            topics_line=topics_line,
            topic_names=topic_names,
            recipient=clean_text(content.recipient.email, 254),
            unsubscribe_url=unsub,
            preferences_url=prefs,
            nothing_new=nothing_new,
            all_sections=sections,
        )


def _lift_mj_text(source: str, token: str) -> tuple[str, list[str]]:
    """Replace the body of every ``<mj-text ...>body</mj-text>`` by ``token``; return the
    skeleton and the bodies in document order. Self-closing ``<mj-text ... />`` (in
    mj-attributes) is left alone. Bodies hold autoescaped text, so a literal "</mj-text>" can
    only come from the template itself."""
    out: list[str] = []
    fragments: list[str] = []
    pos = 0
    find = source.find
    while True:
        start = find("<mj-text", pos)
        if start < 0:
            break
        tag_end = find(">", start)
        if tag_end < 0:
            break
        if source[tag_end - 1] == "/":      # <mj-text ... />
            out.append(source[pos:tag_end + 1])
            pos = tag_end + 1
            continue
        close = find("</mj-text>", tag_end)
        if close < 0:
            break
        out.append(source[pos:tag_end + 1])
        out.append(token)
        fragments.append(source[tag_end + 1:close])
        pos = close
    out.append(source[pos:])
    return "".join(out), fragments


def render(settings, content: DigestContent) -> Rendered:
    """One-off convenience; use a :class:`Renderer` for many digests."""
    return Renderer(settings).render(content)
