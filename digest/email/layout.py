"""MJML → HTML, fast: MRML (mjml-python) spends most of its time parsing the inline HTML inside
``<mj-text>``, which it copies to the output unchanged anyway. So before compiling, the body of
every ``<mj-text>`` (and the ``<mj-preview>`` text) is lifted out and replaced by a unique
placeholder word; the compiled layout is cached by that skeleton, and the bodies are put back
in one pass (content is never re-scanned)."""
from __future__ import annotations

import secrets

import mjml


class LayoutCompiler:
    """Compiles MJML, caching the layout of each skeleton (``cache``); ``lift_text=False``
    compiles the whole document as MRML would (for checking)."""

    def __init__(self, *, lift_text: bool = True, cache: bool = True, max_layouts: int = 512):
        self.lift_text, self.cache, self.max_layouts = lift_text, cache, max_layouts
        self._token = f"mjlift{secrets.token_hex(6)}x"   # a plain word MRML copies as is
        self._layouts: dict[str, tuple] = {}

    def compile(self, source: str) -> tuple[str, int, int]:
        """MJML → HTML. Returns the HTML and, for the size bound, how many of its characters
        come from the compiled layout and their UTF-8 bytes beyond one per character."""
        if not self.lift_text:
            return mjml.mjml2html(source, disable_comments=True, fonts={}), 0, 0
        skeleton, fragments = lift_mj_text(source, self._token)
        layout = self._layouts.get(skeleton) if self.cache else None
        if layout is None:
            html = mjml.mjml2html(skeleton, disable_comments=True, fonts={})
            pieces = html.split(self._token)
            if len(pieces) != len(fragments) + 1:   # not expected from MRML; be safe anyway
                return mjml.mjml2html(source, disable_comments=True, fonts={}), 0, 0
            chars = sum(len(x) for x in pieces)
            layout = (pieces, chars, sum(len(x.encode("utf-8")) for x in pieces) - chars)
            if self.cache:
                if len(self._layouts) >= self.max_layouts:
                    self._layouts.clear()
                self._layouts[skeleton] = layout
        pieces, chars, extra = layout
        out = [pieces[0]]
        for frag, piece in zip(fragments, pieces[1:]):
            out.append(frag)
            out.append(piece)
        return "".join(out), chars, extra


def lift_mj_text(source: str, token: str) -> tuple[str, list[str]]:
    """Replace the body of every ``<mj-text ...>body</mj-text>`` by ``token``; return the
    skeleton and the bodies in document order. Self-closing ``<mj-text ... />`` (in
    mj-attributes) is left alone. Bodies hold autoescaped text, so a literal "</mj-text>" can
    only come from the template itself. The ``<mj-preview>`` text (MRML copies it as is) is
    lifted the same way, so the layout does not change with each digest's preheader."""
    out: list[str] = []
    fragments: list[str] = []
    pos = 0
    find = source.find
    start = find("<mj-preview>")
    if start >= 0:
        close = find("</mj-preview>", start)
        # before every mj-text (fragments stay in order); an empty preview MRML leaves out
        if close >= 0 and find("<mj-text", 0, start) < 0 and source[start + 12:close].strip():
            body = start + len("<mj-preview>")
            out.append(source[:body])
            out.append(token)
            fragments.append(source[body:close])
            pos = close
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
