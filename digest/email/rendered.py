"""A rendered digest (subject, preheader, HTML, text), possibly shared by every digest of one
content with the recipient's values filled into slots, and its parts' wire encoding."""
from __future__ import annotations

import binascii
import re
from operator import itemgetter

QP_LINE = 76            # characters of an encoded line (RFC 2045), the soft break's "=" included


def qp_fragment(text: str) -> bytes:
    """Quoted-printable of ``text`` (a piece of a line) followed by a soft line break, so the
    next piece starts on a line of its own: a piece of a line encodes without knowing its column,
    and pieces concatenate. Empty text: nothing. (A line end inside it, which the renderer never
    gives, stays a CRLF: each line is encoded on its own.)"""
    if not text:
        return b""
    if "\n" in text or "\r" in text:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return b"\r\n".join([_qp_line(x) for x in lines[:-1]] + [qp_fragment(lines[-1]) or b"=\r\n"])
    enc = _qp_line(text)
    start = enc.rfind(b"\n") + 1
    if len(enc) - start >= QP_LINE:      # b2a_qp lets a last line fill all 76: break it before adding "="
        cut = start + QP_LINE - 1
        at = enc.rfind(b"=", cut - 2, cut)           # never inside an "=XX" escape
        if at >= 0:
            cut = at
        enc = enc[:cut] + b"=\r\n" + enc[cut:]
    return enc + b"=\r\n"


def _qp_line(text: str) -> bytes:
    """Quoted-printable of one line's text (no line end): lines of at most 76 characters,
    trailing whitespace encoded, CRLF soft breaks."""
    return binascii.b2a_qp(text.encode("utf-8", "replace"), istext=True).replace(b"=\n", b"=\r\n")


class Slotted:
    """One part (HTML or text) rendered once for every digest of one content: blocks of whole
    lines shared by all, and the few lines that hold recipient slots (placeholder words
    ``{prefix}{k}x``), kept split as (text, slot, text, ...). ``encoded`` encodes each shared
    block once (QP is line-local, so whole-line encodings concatenate); in a line with slots,
    the text around them is encoded once too, each piece ended by a soft line break
    (``qp_fragment``), so a recipient costs only the encoding of their own values."""

    __slots__ = ("blocks", "counts", "nbytes", "newline_added", "_formatted", "_encoder")

    def __init__(self, text: str, prefix: str, n_slots: int):
        self.newline_added = not text.endswith("\n")
        if self.newline_added:
            text += "\n"
        split = re.compile(re.escape(prefix) + r"(\d)x").split
        blocks: list = []
        counts = [0] * n_slots
        nbytes = 0
        pos = 0
        find = text.find
        at = find(prefix)
        while at >= 0:
            start = text.rfind("\n", 0, at) + 1
            end = find("\n", at) + 1
            if start > pos:
                blocks.append(text[pos:start])
            parts = split(text[start:end])
            for i in range(1, len(parts), 2):
                k = parts[i] = int(parts[i])
                counts[k] += 1
            for i in range(0, len(parts), 2):
                nbytes += len(parts[i].encode("utf-8"))
            blocks.append(tuple(parts))
            pos = end
            at = find(prefix, end)
        if pos < len(text):
            blocks.append(text[pos:])
        nbytes += sum(len(b.encode("utf-8")) for b in blocks if type(b) is str)
        self.blocks = blocks
        self.counts = counts
        self.nbytes = nbytes
        self._formatted: tuple | None = None
        self._encoder = None

    def size(self, values: tuple[str, ...]) -> int:
        """UTF-8 bytes of the part filled with ``values`` (without the added final newline)."""
        n = self.nbytes - self.newline_added
        for count, v in zip(self.counts, values):
            if count:
                n += count * len(v.encode("utf-8"))
        return n

    def fill(self, values: tuple[str, ...]) -> str:
        out = []
        for b in self.blocks:
            if type(b) is str:
                out.append(b)
            else:
                out.extend([x if type(x) is str else values[x] for x in b])
        text = "".join(out)
        return text[:-1] if self.newline_added else text

    def encoded(self, values: tuple[str, ...], encode) -> bytes:
        """``encode`` (whole lines -> bytes) of the filled part, final newline included."""
        fmt, pick = self.formatted(encode)
        return fmt % pick([qp_fragment(v) for v in values]) if pick else fmt

    def formatted(self, encode) -> tuple:
        """``encoded_pieces`` as one bytes format (``%b`` where a slot goes) and the function that
        picks the encoded slot values in order from the list of all of them (None: no slots), so
        a recipient's copy is one C-level format instead of a loop over the pieces. Cached."""
        cached = self._formatted
        if cached is None or self._encoder is not encode:
            pieces = self.encoded_pieces(encode)
            order = [x for x in pieces if type(x) is not bytes]
            fmt = b"".join([x.replace(b"%", b"%%") if type(x) is bytes else b"%b" for x in pieces]) \
                if order else b"".join(pieces)
            if not order:
                cached = (fmt, None)
            elif len(order) == 1:
                k = order[0]
                cached = (fmt, lambda ev: (ev[k],))
            else:
                cached = (fmt, itemgetter(*order))
            self._formatted, self._encoder = cached, encode
        return cached

    def encoded_pieces(self, encode) -> list:
        """The part's encoding with slots left as their numbers: ``encode`` of the blocks of
        whole lines; in a line with slots, the text around them through ``qp_fragment`` (each
        piece ends in a soft line break). Adjacent bytes are joined."""
        pieces: list = []
        for b in self.blocks:
            if type(b) is str:
                pieces.append(encode(b))
            else:        # (text, slot, ..., text + newline): the texts encoded, slots as ints
                pieces.extend([qp_fragment(x) if i % 2 == 0 else x for i, x in enumerate(b[:-1])])
                pieces.append(encode(b[-1]))
        return _joined(pieces)


def _joined(pieces: list) -> list:
    """``pieces`` (bytes and slot numbers) with each run of adjacent bytes joined into one."""
    out: list = []
    run: list[bytes] = []
    for x in pieces:
        if type(x) is bytes:
            run.append(x)
        else:
            if run:
                out.append(b"".join(run))
                run = []
            out.append(x)
    if run:
        out.append(b"".join(run))
    return out


class Assembled:
    """One part put together from pieces of whole lines (Slotted; all but the last end with a
    newline): rendered sections shared by many digests, and the digest's own head and tail.
    QP is line-local, so the part's encoding is the pieces' encodings (each cached) joined."""

    __slots__ = ("pieces", "nbytes", "counts")

    def __init__(self, pieces: list):
        self.pieces = pieces
        self.nbytes = sum([p.nbytes - p.newline_added for p in pieces])
        self.counts = [sum(c) for c in zip(*[p.counts for p in pieces])]

    def size(self, values: tuple[str, ...]) -> int:
        n = self.nbytes
        for count, v in zip(self.counts, values):
            if count:
                n += count * len(v.encode("utf-8"))
        return n

    def fill(self, values: tuple[str, ...]) -> str:
        return "".join([p.fill(values) for p in self.pieces])

    def encoded(self, values: tuple[str, ...], encode) -> bytes:
        # one join over the pieces' cached encodings (not a copy kept per digest: memory)
        ev = [qp_fragment(v) for v in values]
        out = []
        for p in self.pieces:
            fmt, pick = p.formatted(encode)
            out.append(fmt % pick(ev) if pick else fmt)
        return b"".join(out)


def _whole_lines(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


class Rendered:
    """Subject, preheader, HTML and text of one digest. ``html``/``text`` are built on access
    when the digest came from the per-content cache; ``html_qp``/``text_qp`` give a part's
    wire encoding without building it."""

    __slots__ = ("subject", "preheader", "_html", "_text", "_html_values", "_text_values")

    def __init__(self, subject: str, html, text, preheader: str, *,
                 html_values: tuple[str, ...] = (), text_values: tuple[str, ...] = ()):
        self.subject = subject
        self.preheader = preheader
        self._html = html                # str, or a Slotted/Assembled filled with html_values
        self._text = text
        self._html_values = html_values
        self._text_values = text_values

    @property
    def html(self) -> str:
        h = self._html
        return h if type(h) is str else h.fill(self._html_values)

    @property
    def text(self) -> str:
        t = self._text
        return t if type(t) is str else t.fill(self._text_values)

    def html_qp(self, encode) -> bytes:
        h = self._html
        return encode(_whole_lines(h)) if type(h) is str else h.encoded(self._html_values, encode)

    def text_qp(self, encode) -> bytes:
        t = self._text
        return encode(_whole_lines(t)) if type(t) is str else t.encoded(self._text_values, encode)

    def __eq__(self, other):
        if not isinstance(other, Rendered):
            return NotImplemented
        return (self.subject, self.preheader, self.html, self.text) == \
            (other.subject, other.preheader, other.html, other.text)

    __hash__ = None

    def __repr__(self) -> str:
        return f"<Rendered {self.subject!r}>"
