"""Turn feed markup (HTML fragments, LaTeX-ish macros, hard wraps) into clean plain text."""
from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

_WS = re.compile(r"\s+")
_SKIP_TAGS = {"script", "style", "head", "title", "iframe", "object", "noscript", "template"}
_BLOCK_TAGS = {"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}
# \textbf{x}, \emph{x}, \mathrm{x} ... keep the argument
_LATEX_ARG = re.compile(r"\\(?:text(?:bf|it|tt|rm|sc|sf)?|emph|math(?:rm|bf|it|cal|bb|sf|tt)|mbox|operatorname|url)\s*\{([^{}]*)\}")
_LATEX_ESCAPES = {r"\%": "%", r"\&": "&", r"\_": "_", r"\#": "#", r"\$": "$", r"\{": "{", r"\}": "}"}
# \'e -> é etc.: the accent macro becomes a Unicode combining mark, then NFC composes it
_ACCENT = re.compile(r"""\\(['"`^~=.]|[cuvHk](?=\{))\{?([A-Za-z])\}?""")
_COMBINING = {"'": "\u0301", '"': "\u0308", "`": "\u0300", "^": "\u0302", "~": "\u0303", "=": "\u0304",
              ".": "\u0307", "c": "\u0327", "u": "\u0306", "v": "\u030c", "H": "\u030b", "k": "\u0328"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2028\u2029\ufeff]")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


# Only a '<' that opens a real HTML tag (or comment) is markup; "k<n and m>p" is mathematics.
_HTML_TAGS = ("a|abbr|acronym|address|area|article|aside|audio|b|base|bdi|bdo|big|blockquote|body|br|button|"
              "canvas|caption|center|cite|code|col|colgroup|dd|del|details|dfn|div|dl|dt|em|embed|fieldset|"
              "figcaption|figure|font|footer|form|frame|frameset|h[1-6]|head|header|hr|html|i|iframe|img|input|"
              "ins|kbd|label|legend|li|link|main|map|mark|math|meta|nav|noscript|object|ol|optgroup|option|p|"
              "param|pre|q|s|samp|script|section|select|small|source|span|strike|strong|style|sub|summary|sup|"
              "svg|table|tbody|td|template|textarea|tfoot|th|thead|title|tr|tt|u|ul|var|video|wbr")
_NOT_A_TAG = re.compile(rf"<(?!/?(?:{_HTML_TAGS})(?=[\s/>])|!--|!\[CDATA\[)", re.IGNORECASE)


def strip_html(text: str) -> str:
    if "<" not in text and "&" not in text:
        return text
    text = _NOT_A_TAG.sub("&lt;", text)
    parser = _TextExtractor()
    try:
        parser.feed(text)
        parser.close()
    except Exception:  # pragma: no cover - HTMLParser is lenient; be safe anyway
        return html.unescape(re.sub(r"<[^>]*>", " ", text))
    return "".join(parser.parts)


def strip_latex(text: str) -> str:
    if "\\" not in text and "$" not in text:
        return text
    text = _ACCENT.sub(lambda m: m.group(2) + _COMBINING[m.group(1)], text)
    for _ in range(3):  # nested \textbf{\emph{x}}
        new = _LATEX_ARG.sub(r"\1", text)
        if new == text:
            break
        text = new
    for src, dst in _LATEX_ESCAPES.items():
        text = text.replace(src, dst)
    text = re.sub(r"(?<!\\)\$\$?", "", text)  # inline math delimiters
    return text


def collapse(text: str) -> str:
    return _WS.sub(" ", text).strip()


def clean_text(text: str | None, *, max_len: int | None = None, markup: bool = True) -> str:
    """Plain, single-spaced text with no markup and no control characters.

    markup=False for sources whose fields are plain text already (HF JSON): a '<' there is text.
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
    if markup:
        text = strip_html(text)
    text = strip_latex(text)
    text = _CONTROL.sub(" ", text)
    text = unicodedata.normalize("NFC", collapse(text))
    if max_len is not None and len(text) > max_len:
        text = text[:max_len].rsplit(" ", 1)[0] + "…"
    return text


def split_authors(value: str | None) -> list[str]:
    """Split arXiv's dc:creator string ("A, B, C and D") into names."""
    if not value:
        return []
    value = clean_text(value)
    parts = re.split(r",\s*|\s+and\s+|;\s*", value)
    return [p.strip() for p in parts if p.strip()]
