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
the placeholders are swapped back (one pass, so content is never re-scanned; digest/email/layout.py).
The result is the same HTML MRML produces for the full document (``lift_text=False`` does that,
for checking).

Digests of equal content (same sections, papers, edition, frequency) differ only in the
recipient's address and links, so a digest is rendered once per content with placeholder words
in their place (``Slotted``) and filled in per recipient, escaped as the template would have.
Sections repeat across digests far more than whole digests do, so each section's box (HTML)
and block (text) is rendered once, at each abstract level it is needed at, and a digest is put
together from them (``Assembled``) inside a frame (head, footer) shared by every digest with
as many sections: the few lines of the frame that differ between contents (preheader,
headline, topic chips and names) are slots too. Every piece is whole lines, so its
quoted-printable encoding is computed once as well; slot values are encoded on their own.
"""
from __future__ import annotations

import dataclasses
import secrets
from datetime import date
from email.utils import parseaddr

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from digest import tokens
from digest.email.display import URL_MAX, clean_text, format_date, safe_url, trim_words  # noqa: F401 (re-exported)
from digest.email.content import DigestContent, PaperItem
from digest.email.layout import LayoutCompiler
from digest.email.rendered import Assembled, Rendered, Slotted
from digest.email.views import (ABSTRACT_LEVELS, DigestView, PaperView, SECTION_NAME_MAX, SectionView,
                                digest_view, section_anchor, _Paper, _SectionEntry, _Shared, _cut, _paper_key,
                                _shown, _view_from_key)
from digest.email.vote_links import labels as vote_labels, votable, vote_query
from digest.plan import ASK

HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"



class Renderer:
    """Loads the templates once; ``render(content)`` is cheap (call it 100,000 times).

    Papers recur across the digests of one edition, so each paper's view and rendered
    fragments (HTML and text, per abstract level) are cached, keyed by the paper's displayed
    fields; the compiled MJML layout is cached per layout; sections (their rendered box and
    text block per shrink step) and whole digests are cached per content (least recently used
    first out, each cache bounded in bytes), with the recipient's address and links as slots.
    Not thread-safe: use one Renderer per thread or process.
    """

    PAPER_CACHE_MAX = 8192
    LAYOUT_CACHE_MAX = 512
    CONTENT_CACHE_BYTES = 48 << 20
    SECTION_CACHE_BYTES = 96 << 20
    FRAME_CACHE_MAX = 4096
    VOTES_CACHE_MAX = 16384

    def __init__(self, settings, *, lift_text: bool = True, cache: bool = True):
        self.settings = settings
        self.max_html_bytes = int(settings.max_html_bytes)
        self.lift_text = lift_text
        self.cache = cache
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
        self._html_macro = self.html_template.module.paper
        self._text_macro = self.text_template.module.paper
        self._html_box = self.html_template.module.section
        self._text_box = self.text_template.module.section
        name, _ = parseaddr(settings.from_addr)
        self.sender = clean_text(name, 60) or "Paper Digest"
        self._papers: dict[tuple, _Paper] = {}
        self._by_item: dict[int, tuple[PaperItem, _Paper]] = {}
        self._mjml = LayoutCompiler(lift_text=lift_text, cache=cache, max_layouts=self.LAYOUT_CACHE_MAX)
        # recipient slots: plain words that pass autoescaping, MJML and URL fields unchanged
        self._slot_prefix = f"pdslot{secrets.token_hex(8)}n"
        # 0-3: the recipient's (_recipient); then the digest's own lines around its sections
        # (_OWN), so that layout is shared by digests that differ only in them
        self._slots = tuple(f"{self._slot_prefix}{k}x" for k in range(4 + len(_OWN)))
        self._contents: dict[tuple, _Shared | None] = {}
        self._contents_weight = 0
        # a section's place in a digest rendered with its body left out (a plain word)
        self._sec_token = f"pdsec{secrets.token_hex(8)}x"
        self._sections: dict[tuple, _SectionEntry] = {}
        self._sections_weight = 0
        self._between: dict[str, Slotted] = {}            # the layout between two sections
        self._frames: dict[tuple, list] = {}              # _frame_key -> frame (see _put_together)
        self._vote_html: dict[tuple, str] = {}            # (page URL, paper, section, text) -> links

    # -- public API ---------------------------------------------------------------------------
    def render(self, content: DigestContent) -> Rendered:
        """Subject, preheader, HTML and text of one digest, HTML within the size budget."""
        return self._render(content, nothing_new=False)

    def render_nothing_new(self, content: DigestContent) -> Rendered:
        """The short "nothing new today" note (same header and footer, no papers)."""
        return self._render(content, nothing_new=True)

    def mjml_source(self, content: DigestContent) -> str:
        """The MJML document (before MJML → HTML) at full detail, for debugging and tests."""
        view = self._view(content, nothing_new=False, recipient=self._recipient(content))
        self._apply(view, None, None)
        self._fill(view, 0, text=False)
        return self.html_template.render(v=view)

    # -- per-content cache -----------------------------------------------------------------------
    def _recipient(self, content: DigestContent) -> tuple[str, str, str, str]:
        """The recipient-specific values, in slot order: address, unsubscribe and preferences
        URLs, the digest's web page ("" when it has none)."""
        sid, bind = content.recipient.subscriber_id, content.recipient.link_secret
        return (clean_text(content.recipient.email, 254),
                safe_url(content.unsubscribe_url) or tokens.unsubscribe_url(self.settings, sid, bind),
                safe_url(content.preferences_url) or tokens.preferences_url(self.settings, sid, bind),
                safe_url(getattr(content, "view_url", "")) or "")

    def _content_key(self, content: DigestContent, nothing_new: bool):
        """Everything but the recipient that shows in the digest, or None (not cacheable).
        ``content.cache_key``, when set, stands for the sections (see ContentBuilder)."""
        own = getattr(content, "cache_key", None)
        edition = content.edition if isinstance(content.edition, date) else None
        head = (nothing_new, edition, bool(content.weekly), bool(safe_url(getattr(content, "view_url", ""))))
        try:
            if own is not None:
                key = ("k", *head, own)
            else:
                key = ("c", *head, tuple([
                    (_cut(s.name, SECTION_NAME_MAX), str(s.topic_id), s.more if type(s.more) is int else 0,
                     tuple([(str(p.paper_id), _paper_key(p)) for p in s.papers or ()]))
                    for s in content.sections]))
            hash(key)
        except (TypeError, AttributeError):      # hostile, unhashable field values
            return None
        return key

    def _render(self, content: DigestContent, *, nothing_new: bool) -> Rendered:
        values = self._recipient(content)
        if self.cache and self.lift_text:
            key = self._content_key(content, nothing_new)
            if key is not None:
                contents = self._contents
                if key in contents:
                    shared = contents[key] = contents.pop(key)       # most recently used last
                else:
                    shared = self._shared(content, nothing_new)
                    self._remember(key, shared)
                if shared is not None:
                    html_values = tuple([str(escape(v)) for v in values]) + shared.own_html
                    picked = self._pick(shared, html_values)
                    if picked is not None:
                        html, text = picked
                        return Rendered(shared.subject, html, text, shared.preheader,
                                        html_values=html_values, text_values=values + shared.own)
        # not cacheable, or fewer sections needed for this recipient: shrink with real values
        return self._render_within_budget(self._view(content, nothing_new=nothing_new, recipient=values))

    def _pick(self, shared: _Shared, html_values: tuple[str, ...]):
        """The shrink step _render_within_budget would take for these recipient values, from
        the shared parts: (html, text), or None when it is not one they cover."""
        budget = self.max_html_bytes
        size, html, level = 0, None, 0
        for level in range(len(ABSTRACT_LEVELS)):
            html = self._shared_part(shared, level, None)
            if html is None:
                return None
            size = html.size(html_values)
            if size < budget:
                return html, shared.text[None]
        cap = max((len(s.all_papers) for s in shared.view.all_sections), default=0)
        while size >= budget and cap > 0:
            cap = max(0, min(cap - 1, int(cap * budget * 0.9 / size)))
            html = self._shared_part(shared, level, cap)
            if html is None:
                return None
            size = html.size(html_values)
        if size >= budget:
            return None
        return html, self._shared_part(shared, None, cap)

    def _shared_part(self, shared: _Shared, level: int | None, cap: int | None) -> Assembled | None:
        """HTML at ``level`` (text when None) with at most ``cap`` papers per section."""
        parts, key = (shared.text, cap) if level is None else (shared.html, (level, cap))
        try:
            return parts[key]
        except KeyError:
            pass
        self._apply(shared.view, cap, None)
        part = parts[key] = self._assemble_text(shared) if level is None else self._assemble_html(shared, level)
        if part is not None:        # its list of pieces (the pieces themselves are cached and weighed apart)
            self._weigh_content(shared, 256 + 16 * len(part.pieces))
        return part

    def _weigh_content(self, shared: _Shared, weight: int) -> None:
        """Add to a content's weight; to the cache's total only once it is in the cache (_remember
        adds the weight it had by then)."""
        shared.weight += weight
        if shared.kept:
            self._contents_weight += weight

    def _shared(self, content: DigestContent, nothing_new: bool) -> _Shared | None:
        """The digest with recipient slots: its view and text part (HTML per level on demand);
        None when it cannot be put together from pieces (it takes the direct path)."""
        shared = _Shared(self._view(content, nothing_new=nothing_new, recipient=self._slots[:4]))
        shared.own = tuple([getattr(shared.view, name) for name in _OWN])
        shared.own_html = tuple([str(escape(v)) for v in shared.own])
        return shared if self._shared_part(shared, None, None) is not None else None

    # -- sections and assembly ---------------------------------------------------------------------
    def _section_key(self, sec, builder_items: bool):
        own = getattr(sec, "cache_key", None)
        try:
            if own is not None and builder_items:
                key = ("k", own)
            else:
                more = sec.more if type(sec.more) is int else 0
                key = ("c", _cut(sec.name, SECTION_NAME_MAX), str(sec.topic_id), more,
                       tuple([(str(p.paper_id), _paper_key(p)) for p in sec.papers or ()]))
            hash(key)
        except (TypeError, AttributeError):      # hostile, unhashable field values
            return None
        return key

    def _section(self, sec, paper, builder_items: bool) -> _SectionEntry:
        key = self._section_key(sec, builder_items) if self.cache else None
        if key is not None:
            entry = self._sections.pop(key, None)
            if entry is not None:
                self._sections[key] = entry                      # most recently used last
                return entry
        extra = sec.more if type(sec.more) is int and sec.more > 0 else 0
        entry = _SectionEntry(clean_text(sec.name, SECTION_NAME_MAX), section_anchor(sec.topic_id),
                              str(sec.topic_id).startswith(ASK), extra, [paper(p) for p in sec.papers or ()],
                              str(sec.topic_id), [str(p.paper_id) for p in sec.papers or ()])
        if key is not None:
            self._sections[key] = entry
            self._weigh_sections(256)
        return entry

    def _weigh_sections(self, weight: int) -> None:
        self._sections_weight += weight
        sections = self._sections
        while sections and self._sections_weight > self.SECTION_CACHE_BYTES:
            old = sections.pop(next(iter(sections)))
            self._sections_weight -= 256 + sum(2 * x.nbytes for x in (*old.html.values(), *old.text.values()))

    def _section_html(self, view: DigestView, s: SectionView, level: int) -> Slotted | None:
        """The section's box at ``level`` with the web page slot, whole lines (without the
        leading newline the template gives it); cached on its entry. None: not whole lines."""
        key = (level, view.has_view, view.nothing_new, _shown(s))   # (vote links: page, not "nothing new")
        entry = s.entry
        part = entry.html.get(key) if entry is not None else None
        if part is None:
            s.papers_html = self._papers_html(view, s, level)
            body = str(self._html_box(view, s))
            s.papers_html = Markup("")           # the view may live on in the content cache
            if not (body.startswith("\n") and body.endswith("\n")):
                return None
            part = Slotted(body[1:], self._slot_prefix, len(self._slots))
            if entry is not None:
                entry.html[key] = part
                self._weigh_sections(2 * part.nbytes)
        return part

    def _section_text(self, view: DigestView, s: SectionView) -> Slotted | None:
        entry = s.entry
        key = (view.has_view, view.nothing_new, _shown(s))
        part = entry.text.get(key) if entry is not None else None
        if part is None:
            s.papers_text = self._papers_text(view, s, 0)
            body = self._text_box(view, s)
            s.papers_text = []
            if not body.endswith("\n"):
                return None
            part = Slotted(body, self._slot_prefix, len(self._slots))
            if entry is not None:
                entry.text[key] = part
                self._weigh_sections(2 * part.nbytes)
        return part

    def _frame(self, whole: str, n_sections: int, lead: str) -> list | None:
        """``whole`` (a part rendered with each section's body replaced by the section token)
        as pieces of whole lines, None where a section goes; ``lead``: what each body started
        with before it was cut off (it ends the line before it). None: not whole lines."""
        parts = whole.split(self._sec_token)
        if len(parts) != n_sections + 1:
            return None
        frame: list = []
        between = self._between
        for i, text in enumerate(parts[:-1]):
            text += lead
            if text:
                if not text.endswith("\n"):
                    return None
                if i == 0:
                    frame.append(Slotted(text, self._slot_prefix, len(self._slots)))
                else:                            # the same layout for every section: encoded once
                    piece = between.get(text)
                    if piece is None:
                        if len(between) >= 64:
                            between.clear()
                        piece = between[text] = Slotted(text, self._slot_prefix, len(self._slots))
                    frame.append(piece)
            frame.append(None)
        frame.append(Slotted(parts[-1], self._slot_prefix, len(self._slots)))
        return frame

    def _frame_key(self, view: DigestView, which: str) -> tuple:
        """What a part's frame (the layout around the section bodies) is made of: the view's
        own fields (not its sections') and the number of sections. Contents that differ only
        inside their sections (most do: each reader's history removes other papers) share it."""
        return (which, len(view.sections), *[getattr(view, name) for name in _FRAME_FIELDS],
                *[bool(getattr(view, name)) for name in _OWN])

    def _put_together(self, shared: _Shared, which: str, bodies: list) -> Assembled | None:
        frame = shared.frames.get(which)
        if frame is None and self.cache:
            frame = self._frames.get(self._frame_key(shared.view, which))
            if frame is not None:
                shared.frames[which] = frame
        if frame is None:
            view = shared.view
            for s in view.sections:
                if which == "html":
                    s.body = Markup(self._sec_token)
                else:
                    s.body_text = self._sec_token
            own = [getattr(view, name) for name in _OWN]
            for name, value, slot in zip(_OWN, own, self._slots[4:]):
                if value:                                # (the template tests some for emptiness)
                    setattr(view, name, slot)
            try:
                if which == "html":
                    whole, _, _ = self._compile(self.html_template.render(v=view))
                else:
                    whole = self.text_template.render(v=view)
            finally:
                for name, value in zip(_OWN, own):
                    setattr(view, name, value)
            frame = shared.frames[which] = self._frame(whole, len(view.sections), "\n" if which == "html" else "")
            if frame is None:
                return None
            if self.cache:
                if len(self._frames) >= self.FRAME_CACHE_MAX:
                    self._frames.clear()
                self._frames[self._frame_key(view, which)] = frame
            # its own head and tail
            self._weigh_content(shared, 2 * sum([p.nbytes for p in (frame[0], frame[-1]) if p is not None]))
        it = iter(bodies)
        return Assembled([next(it) if piece is None else piece for piece in frame])

    def _assemble_html(self, shared: _Shared, level: int) -> Assembled | None:
        view, bodies = shared.view, []
        for s in view.sections:
            body = self._section_html(view, s, level)
            if body is None:
                return None
            bodies.append(body)
        return self._put_together(shared, "html", bodies)

    def _assemble_text(self, shared: _Shared) -> Assembled | None:
        view, bodies = shared.view, []
        for s in view.sections:
            body = self._section_text(view, s)
            if body is None:
                return None
            bodies.append(body)
        return self._put_together(shared, "text", bodies)

    def _remember(self, key: tuple, shared: _Shared | None) -> None:
        contents = self._contents
        weight = shared.weight if shared is not None else 64
        while contents and self._contents_weight + weight > self.CONTENT_CACHE_BYTES:
            old = contents.pop(next(iter(contents)))
            self._contents_weight -= old.weight if old is not None else 64
            if old is not None:
                old.kept = False
        contents[key] = shared
        self._contents_weight += weight
        if shared is not None:
            shared.kept = True

    # -- papers ----------------------------------------------------------------------------------
    def _paper(self, item: PaperItem) -> _Paper:
        key = _paper_key(item)
        if not self.cache:
            return _Paper(_view_from_key(key))
        try:
            entry = self._papers.get(key)
        except TypeError:                      # an unhashable value in a hostile field
            return _Paper(_view_from_key(key))
        if entry is None:
            if len(self._papers) >= self.PAPER_CACHE_MAX:
                self._papers.clear()
            entry = self._papers[key] = _Paper(_view_from_key(key))
        return entry

    def _shared_paper(self, item: PaperItem) -> _Paper:
        """``_paper`` for the read-only items of a ContentBuilder (content with a cache_key),
        found by identity; the item is kept referenced, so its id cannot be reused."""
        hit = self._by_item.get(id(item))
        if hit is not None and hit[0] is item:
            return hit[1]
        entry = self._paper(item)
        if len(self._by_item) >= self.PAPER_CACHE_MAX:
            self._by_item.clear()
        self._by_item[id(item)] = (item, entry)
        return entry

    @staticmethod
    def _set_level(view: PaperView, level: int) -> None:
        n = ABSTRACT_LEVELS[level]
        view.abstract = trim_words(view.abstract_src, n) if n else ""

    def _paper_html(self, entry: _Paper, level: int) -> Markup:
        html = entry.html[level]
        if html is None:
            self._set_level(entry.view, level)
            # newlines between tags are the template's layout only (MRML drops them too)
            html = entry.html[level] = Markup(str(self._html_macro(entry.view)).replace(">\n<", "><"))
            entry.extra[level] = len(html.encode("utf-8")) - len(html)
        return html

    def _paper_text(self, entry: _Paper, level: int) -> str:
        text = entry.text[level]
        if text is None:
            self._set_level(entry.view, level)
            text = entry.text[level] = self._text_macro(entry.view)
        return text

    # -- MJML --------------------------------------------------------------------------------------
    def _compile(self, source: str) -> tuple[str, int, int]:
        return self._mjml.compile(source)

    # -- budget ------------------------------------------------------------------------------------
    def _fill(self, view: DigestView, level: int, *, text: bool) -> None:
        """Put the rendered papers (HTML or text, at abstract level ``level``) on the sections."""
        if text:
            for s in view.sections:
                s.papers_text = self._papers_text(view, s, level)
                s.body_text = self._text_box(view, s)
        else:
            chars = extra = 0
            for s in view.sections:
                s.papers_html = self._papers_html(view, s, level)
                chars += len(s.papers_html)
                extra += sum([p.extra[level] for p in s.papers])
                s.body = self._html_box(view, s)
            view.papers_chars, view.papers_extra = chars, extra

    def _papers_html(self, view: DigestView, s: SectionView, level: int) -> Markup:
        """The section's shown papers, one per line (the message encodes (QP) each line once for
        all digests), each with its vote links when the digest has a web page."""
        papers = [self._paper_html(p, level) for p in s.papers]
        if view.has_view and not view.nothing_new and votable(s.topic_id):
            # inside the paper's block; only their URLs' line is per recipient (see the macro)
            papers = [str(h)[:-6] + self._votes(view.view_url, pid, s.topic_id, text=False) + "</div>"
                      for h, pid in zip(papers, s.paper_ids)]
        return Markup("\n".join(papers))

    def _papers_text(self, view: DigestView, s: SectionView, level: int) -> list[str]:
        texts = [self._paper_text(p, level) for p in s.papers]
        if view.has_view and not view.nothing_new and votable(s.topic_id):
            texts = [t.rstrip("\n") + "\n\n" + self._votes(view.view_url, pid, s.topic_id, text=True)
                     for t, pid in zip(texts, s.paper_ids)]
        return texts

    def _votes(self, view_url: str, paper_id: str, section: str, *, text: bool) -> str:
        """The "Relevant" / "Not for me" links of one paper (the template's `votes` macro);
        remembered, as in a shared render the page URL is the same slot word for everyone."""
        key = (view_url, paper_id, section, text)
        links = self._vote_html.get(key)
        if links is None:
            if len(self._vote_html) >= self.VOTES_CACHE_MAX:
                self._vote_html.clear()
            links = self._vote_html[key] = self._vote_links(view_url, paper_id, section, text=text)
        return links

    def _vote_links(self, view_url: str, paper_id: str, section: str, *, text: bool) -> str:
        urls = (view_url + vote_query(paper_id, section, True), view_url + vote_query(paper_id, section, False))
        if text:
            return self.text_template.module.votes(vote_labels(section), urls)
        return str(self.html_template.module.votes(vote_labels(section), urls))

    def _render_html(self, view: DigestView, level: int) -> tuple[str, int]:
        self._fill(view, level, text=False)
        source = self.html_template.render(v=view)
        html, layout_chars, layout_extra = self._compile(source)
        # Cheap upper bound of the UTF-8 size: exact extra bytes for the layout and the cached
        # papers, at most 3 extra bytes per character for the rest (headings, footer). Encode
        # the whole HTML only when the bound is not clearly inside the budget.
        n = len(html)
        rest = n - layout_chars - view.papers_chars
        bound = n + layout_extra + view.papers_extra + 3 * rest if layout_chars else 4 * n
        if bound < self.max_html_bytes:
            return html, bound
        return html, len(html.encode("utf-8"))

    def _render_within_budget(self, view: DigestView) -> Rendered:
        budget = self.max_html_bytes
        html, size, level = "", 0, 0
        self._apply(view, None, None)
        for level in range(len(ABSTRACT_LEVELS)):
            html, size = self._render_html(view, level)
            if size < budget:
                return self._finish(view, html, level)
        # Still too big without abstracts: fewer papers per section (the rest go to "more").
        cap = max((len(s.all_papers) for s in view.all_sections), default=0)
        while size >= budget and cap > 0:
            cap = max(0, min(cap - 1, int(cap * budget * 0.9 / size)))
            self._apply(view, cap, None)
            html, size = self._render_html(view, level)
        # Then fewer sections (one line counts the hidden ones).
        n_sections = len(view.all_sections)
        while size >= budget and n_sections > 0:
            n_sections = max(0, min(n_sections - 1, int(n_sections * budget * 0.9 / size)))
            self._apply(view, 0, n_sections)
            html, size = self._render_html(view, level)
        if size >= budget:
            raise ValueError(f"digest HTML is {size} bytes with no papers shown; budget {budget}")
        return self._finish(view, html, level)

    def _finish(self, view: DigestView, html: str, level: int) -> Rendered:
        self._fill(view, 0, text=True)    # the text part keeps the abstracts the HTML budget cut
        text = self.text_template.render(v=view)
        return Rendered(subject=view.subject, html=html, text=text, preheader=view.preheader)

    @staticmethod
    def _apply(view: DigestView, cap: int | None, n_sections: int | None) -> None:
        sections = view.all_sections if n_sections is None else view.all_sections[:n_sections]
        for s in sections:
            s.papers = s.all_papers if cap is None else s.all_papers[:cap]
            s.more = s.extra + len(s.all_papers) - len(s.papers)
        view.sections = sections
        hidden = view.all_sections[len(sections):]
        view.hidden_sections = len(hidden)
        view.hidden_papers = sum(s.count for s in hidden)

    # -- the digest view -----------------------------------------------------------------------------
    def _view(self, content: DigestContent, *, nothing_new: bool, recipient: tuple[str, ...]) -> DigestView:
        sections: list[SectionView] = []
        named: list[str] = []
        builder_items = self.cache and getattr(content, "cache_key", None) is not None
        paper = self._shared_paper if builder_items else self._paper
        for sec in content.sections:
            if nothing_new:
                name = clean_text(sec.name, SECTION_NAME_MAX)
                if name:
                    named.append(name)
                continue
            e = self._section(sec, paper, builder_items)
            if e.name and not e.question:
                named.append(e.name)
            sections.append(SectionView(name=e.name or "Papers", all_papers=e.papers, extra=e.extra,
                                        anchor=e.anchor, question=e.question, entry=e,
                                        topic_id=e.topic_id, paper_ids=e.paper_ids))
        return digest_view(sections, named, content, nothing_new=nothing_new, recipient=recipient,
                           sender=self.sender)


# what the layout around the sections shows of the content (counts, the first title, the
# topics): slots in the frame, filled like the recipient's. The frame is keyed by the view's
# other fields (not its sections, nor the sizes the budget counts)
_OWN = ("preheader", "headline", "topics_line", "topic_names")
_FRAME_FIELDS = tuple(f.name for f in dataclasses.fields(DigestView)
                      if f.name not in ("all_sections", "sections", "papers_chars", "papers_extra", "subject", *_OWN))


def render(settings, content: DigestContent) -> Rendered:
    """One-off convenience; use a :class:`Renderer` for many digests."""
    return Renderer(settings).render(content)
