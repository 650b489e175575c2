"""Rendering: content, escaping of hostile text, the size budget, subject, text part."""
from __future__ import annotations

from datetime import date
from html.parser import HTMLParser

import pytest

from digest.email.content import DigestContent, Recipient, Section
from digest.email.render import Renderer, clean_text, safe_url, trim_words
from digest.store.settings import Settings
from tests.digest_samples import EMOJI, RTL, hostile, paper, realistic

VOID = {"br", "meta", "img", "link", "hr", "input", "col", "area", "base", "source", "wbr"}


class TagChecker(HTMLParser):
    """Balanced non-void tags; records tags, attributes and script-ish things."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(html: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(html)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    return checker


@pytest.fixture(scope="module")
def settings():
    return Settings(database_url="sqlite://", DIGEST_FROM="Paper Digest <digest@example.org>", secret_key="s")


@pytest.fixture(scope="module")
def renderer(settings):
    return Renderer(settings)


def test_realistic_digest(renderer):
    content = realistic(20)
    out = renderer.render(content)
    assert out.subject == "23 new papers: Vision-language models, Computational pathology +1 more — 21 Nov 2026"
    assert out.preheader.startswith("Sparse Mixture-of-Experts Adapters")
    checker = check_html(out.html)
    text = "".join(checker.text)
    assert "23 new papers in 3 topics" in text
    assert "Vision-language models" in text and "+ 3 more in this topic" in text
    assert "Ada Moreau, Kenji Watanabe, Priya Raman et al." in text
    assert "▲ 3" in text and text.count("▲") == 14               # only when known (6 unknown)
    assert "Why: mentions “vision-language” and “adapter”" in text
    hrefs = [a["href"] for tag, a in checker.tags if tag == "a"]
    assert "https://arxiv.org/abs/2611.10000" in hrefs and "https://arxiv.org/pdf/2611.10000" in hrefs
    assert "https://huggingface.co/papers/2611.10000" in hrefs
    assert "https://github.com/example-lab/sparse-adapters" in hrefs
    assert "https://digest.example.org/unsubscribe/tok42" in hrefs
    assert "https://digest.example.org/preferences/tok42" in hrefs
    assert len(out.html.encode()) < 60_000
    assert out.preheader in out.html                             # hidden preheader


def test_abstract_trimmed_at_a_word(renderer):
    out = renderer.render(realistic(3))
    assert "with no…" in out.html and "in detail." not in out.html


def test_plain_text_part(renderer):
    out = renderer.render(realistic(20))
    t = out.text
    assert "23 new papers in 3 topics" in t
    assert "== Vision-language models (11 new) ==" in t
    assert "1. Sparse Mixture-of-Experts Adapters" in t
    assert "   https://arxiv.org/abs/2611.10000" in t
    assert "PDF: https://arxiv.org/pdf/2611.10000" in t
    assert "+ 3 more in this topic" in t
    assert "Unsubscribe: https://digest.example.org/unsubscribe/tok42" in t
    assert "<" not in t.replace("<-", "")                        # no markup
    assert max(len(line) for line in t.splitlines()) <= 998


def test_weekly_and_singular(renderer):
    content = DigestContent(Recipient(1, "a@example.org"), date(2026, 11, 21),
                            [Section("t", "Pathology", [paper(0)])], weekly=True)
    out = renderer.render(content)
    assert out.subject == "1 new paper this week: Pathology — 21 Nov 2026"
    assert "1 new paper in 1 topic" in out.html and "Weekly digest" in out.html


def test_nothing_new(renderer):
    content = DigestContent(Recipient(1, "a@example.org"), date(2026, 11, 21), [Section("t", "Pathology", [])],
                            unsubscribe_url="https://x.example/unsubscribe/t")
    out = renderer.render_nothing_new(content)
    assert out.subject == "Nothing new today — 21 Nov 2026"
    assert "No new papers matched" in out.html and "https://x.example/unsubscribe/t" in out.html
    assert "Unsubscribe: https://x.example/unsubscribe/t" in out.text
    check_html(out.html)
    assert renderer.render(content).subject == out.subject       # an empty digest renders the same


def test_hostile_content_escaped(renderer):
    out = renderer.render(hostile(40, 20_000))
    checker = check_html(out.html)
    tags = {t for t, _ in checker.tags}
    assert "script" not in tags and "img" not in tags
    assert not any(k.startswith("on") for _, attrs in checker.tags for k in attrs)
    assert "&lt;script&gt;" in out.html
    for _, attrs in checker.tags:
        if "href" in attrs:
            assert attrs["href"].startswith(("http://", "https://")), attrs["href"]
    assert "javascript:" not in out.html.lower() and "vbscript:" not in out.html.lower()
    assert "data:text" not in out.html
    assert "\u202e" not in out.html                              # bidi override stripped
    assert "X-Evil: 1" in out.html                               # CRLF became a space, kept as text
    assert "\r" not in out.subject and "\n" not in out.subject


def test_javascript_url_not_linked(renderer):
    p = paper(0, url="javascript:alert(1)", pdf_url=" JAVASCRIPT:alert(1)", hf_url="data:text/html,x",
              code_url="https://user@evil.example/")
    content = DigestContent(Recipient(1, "a@example.org"), date(2026, 11, 21), [Section("t", "T", [p])])
    out = renderer.render(content)
    hrefs = [a["href"] for tag, a in check_html(out.html).tags if tag == "a"]
    assert all(h.startswith("http") for h in hrefs)
    assert p.title in out.html and "PDF</a>" not in out.html and "HF page</a>" not in out.html
    assert "Code</a>" not in out.html


def test_rtl_and_emoji_survive(renderer):
    content = DigestContent(Recipient(1, "a@example.org"), date(2026, 11, 21),
                            [Section("t", RTL, [paper(0, title=EMOJI, authors=[RTL])])])
    out = renderer.render(content)
    assert RTL in out.html and EMOJI in out.html and EMOJI in out.text and RTL in out.subject
    assert 'dir="auto"' in out.html


def test_size_budget_with_huge_content(renderer, settings):
    content = hostile(200, 1_000_000)
    out = renderer.render(content)
    size = len(out.html.encode("utf-8"))
    assert size < settings.max_html_bytes
    check_html(out.html)
    text = out.html
    assert "more in this topic" in text                           # shown papers moved into "more"
    assert "205 new papers" in out.subject                        # the count is still the total


def test_size_budget_steps(settings):
    """Shorter abstracts come before dropping abstracts, which come before dropping papers."""
    content = realistic(20)
    full = len(Renderer(settings).render(content).html.encode())
    small = Settings(database_url="sqlite://", max_html_bytes=full - 2000)
    out = Renderer(small).render(content)
    assert len(out.html.encode()) < full - 2000
    assert "with no…" not in out.html and "We study how" in out.html    # shorter abstracts
    assert "+ 3 more in this topic" in out.html                           # no paper dropped yet
    tiny = Settings(database_url="sqlite://", max_html_bytes=20_000)
    out = Renderer(tiny).render(content)
    assert len(out.html.encode()) < 20_000 and "We study how" not in out.html
    assert "23 new papers in 3 topics" in out.html
    check_html(out.html)


def test_layout_lifting_matches_plain_mjml(settings):
    content = realistic(12)
    fast = Renderer(settings).render(content)
    plain = Renderer(settings, lift_text=False, cache=False).render(content)
    assert fast.html.replace(">\n<", "><") == plain.html.replace(">\n<", "><")
    assert fast.text == plain.text and fast.subject == plain.subject


def test_cache_gives_same_output_for_new_objects(renderer):
    a = renderer.render(realistic(20, subscriber_id=1, email="one@example.org"))
    b = renderer.render(realistic(20, subscriber_id=1, email="one@example.org"))
    assert a == b
    c = realistic(20, subscriber_id=1, email="one@example.org")
    c.sections[0].papers[0].title = "Changed title"
    assert "Changed title" in renderer.render(c).html


def test_helpers():
    assert clean_text("a\r\nb\tc\x00d  e", 100) == "a b c d e"
    assert clean_text("x" * 50, 10) == "x" * 9 + "…"
    assert trim_words("alpha beta gamma delta", 14) == "alpha beta…"
    assert safe_url("https://arxiv.org/abs/1") == "https://arxiv.org/abs/1"
    for bad in ["javascript:alert(1)", "http://", "https://a b", "//evil", "https://x@evil", "http://x/\x01", 5, None]:
        assert safe_url(bad) is None, bad


def test_render_speed(renderer):
    """Not a benchmark, a guard: a 20-paper digest renders (HTML + text) well under 2 ms."""
    import time
    contents = [realistic(20, subscriber_id=i, email=f"u{i}@example.org") for i in range(300)]
    renderer.render(contents[0])
    start = time.process_time()
    for c in contents:
        renderer.render(c)
    per = (time.process_time() - start) / len(contents)
    assert per < 0.002, f"{per * 1e6:.0f} µs per render"


def _contents():
    nothing = realistic(0)
    return [realistic(20), realistic(7, weekly=True), realistic(3, email="ü@exämple.org", name=None),
            hostile(40, 20_000), nothing]


@pytest.mark.parametrize("i", range(5))
def test_rendered_once_per_content_equals_direct_render(settings, i):
    """The per-content cache (recipient slots filled in) gives exactly the direct render."""
    content = _contents()[i]
    cached, direct = Renderer(settings), Renderer(settings, cache=False)
    for sid, address in ((1, "one@example.org"), (2, "two&<x>@example.org")):
        content.recipient = Recipient(sid, address)
        content.unsubscribe_url = f"https://digest.example.org/unsubscribe/t{sid}?a=1&b=2"
        content.preferences_url = ""                               # generated from the id
        for method in ("render", "render_nothing_new"):
            a, b = getattr(cached, method)(content), getattr(direct, method)(content)
            assert a == b and a.html == b.html and a.text == b.text and a.preheader == b.preheader
    assert "two&amp;&lt;x&gt;@example.org" in a.html and "two&<x>@example.org" in a.text
    assert "&amp;b=2" in a.html and "t2?a=1&b=2" in a.text


def test_recipients_of_one_content_keep_their_own_values(renderer):
    first = realistic(20, subscriber_id=11, email="first@example.org")
    second = realistic(20, subscriber_id=22, email="second@example.org")
    for content in (first, second):
        content.cache_key = ("same sections",)                    # as ContentBuilder sets it
    a, b = renderer.render(first), renderer.render(second)
    assert a.subject == b.subject
    for out, own, other in ((a, "first", "second"), (b, "second", "first")):
        for part in (out.html, out.text):
            assert f"{own}@example.org" in part and f"{other}@example.org" not in part
            tok_own, tok_other = ("tok11", "tok22") if own == "first" else ("tok22", "tok11")
            assert tok_own in part and tok_other not in part
            assert "pdslot" not in part


def test_budget_is_checked_per_recipient(settings):
    """A recipient whose links are long enough to pass the budget gets a shrunk digest, the
    same as rendering it alone would give; the others keep full detail."""
    content = realistic(20)
    full = len(Renderer(settings).render(content).html.encode())
    tight = Settings(database_url="sqlite://", max_html_bytes=full + 500)
    cached, direct = Renderer(tight), Renderer(tight, cache=False)
    assert "with no…" in cached.render(content).html                 # fits: full abstracts
    content.unsubscribe_url = "https://digest.example.org/unsubscribe/" + "u" * 800
    long_links = cached.render(content)
    assert len(long_links.html.encode()) < full + 500
    assert "with no…" not in long_links.html                         # shrunk for this one
    assert long_links == direct.render(content)


def assert_qp_of(encoded: bytes, text: str) -> None:
    """``encoded`` is valid quoted-printable (CRLF lines of at most 76 characters, nothing but
    printable ASCII) of ``text`` with a final newline."""
    import binascii

    assert encoded.count(b"\n") == encoded.count(b"\r\n")
    lines = encoded.split(b"\r\n")
    assert all(len(line) <= 76 for line in lines), max(lines, key=len)
    assert all(32 <= c < 127 or c == 9 for line in lines for c in line)          # (a tab is allowed)
    want = text if text.endswith("\n") else text + "\n"
    assert binascii.a2b_qp(encoded).decode("utf-8") == want.replace("\n", "\r\n")


def test_qp_of_a_cached_render_matches_encoding_it_whole(renderer):
    from digest.email.message import qp_lines

    content = realistic(20, subscriber_id=5, email="five@example.org")
    content.cache_key = ("k",)
    out = renderer.render(content)
    out2 = renderer.render(content)                                   # shared blocks now encoded
    assert out.html_qp(qp_lines) == out2.html_qp(qp_lines)
    assert_qp_of(out.html_qp(qp_lines), out.html)
    assert_qp_of(out.text_qp(qp_lines), out.text)
    other = realistic(20, subscriber_id=6, email="six.with.a.longer.address@example.org")
    other.cache_key = ("k",)
    assert_qp_of(renderer.render(other).html_qp(qp_lines), renderer.render(other).html)


@pytest.mark.parametrize("value", ["", "a", " ", "x" * 75, "x" * 76, "x" * 74 + "=", "x" * 73 + "é",
                                   "é" * 40, "a b \t", ".", "=" * 30, "x" * 74 + "é", "two\nlines " + "y" * 80,
                                   "=xxxxxxxééxxxxxxx=xxxxxxxéxxxxxxx é=\t=a=\t= \nfoo", "ends with a break\n"])
def test_qp_fragments_concatenate(value):
    from digest.email.rendered import qp_fragment

    for before in ("", "<a href=\"", "y" * 75, "z " * 40):
        enc = qp_fragment(before) + qp_fragment(value) + b"tail\r\n"
        assert_qp_of(enc, before + value + "tail")


def _mixed_contents(budget_links: bool = False):
    """Digests that share sections in different combinations and orders: topics, a question
    ("Is this ...?") section, Trending, a hostile section; with and without a web page."""
    from copy import deepcopy

    from digest.plan import ASK

    base = realistic(20)
    vlm, path, diff = base.sections
    bad = hostile(6, 3000).sections[0]
    question = Section(topic_id=ASK + "path", name="Is this Computational pathology?",
                       papers=[paper(40), paper(41)])
    trending = Section(topic_id="trending", name="Trending on Hugging Face",
                       papers=[paper(50 + i, hf_upvotes=100 - i) for i in range(5)], more=2)
    # (question,) first: a digest of only a question counts as "nothing new" yet shows it, and
    # must not hand its box (no vote links) to the digests after it
    combos = [(question,), (vlm, path, diff), (path, question, diff, trending), (vlm, bad, trending), (diff,),
              (vlm, path, diff), (bad, question), ()]
    out = []
    for i, combo in enumerate(combos):
        for weekly in (False, True):
            for view in ("", f"https://digest.example.org/d/{i}?t=a&b"):
                c = DigestContent(recipient=base.recipient, edition=base.edition, weekly=weekly,
                                  sections=[deepcopy(s) for s in combo], view_url=view)
                for s in c.sections:                   # as ContentBuilder keys them
                    s.cache_key = ("test", s.topic_id, s.more, tuple(p.paper_id for p in s.papers))
                c.cache_key = ("test", tuple(s.cache_key for s in c.sections))
                out.append(c)
    return out


_RECIPIENTS = [(1, "one@example.org", ""), (2, "two&<x>@example.org", "?a=1&b=2"),
               (3, "ü@exämple.org", "/" + "u" * 300), (4, "\"quoted\"@example.org", "/" + "v" * 3000)]


def test_content_cache_total_is_the_sum_of_what_it_holds(settings):
    """The content cache's running total is exactly the weight of the contents it holds (a
    total that drifts above it would make the cache evict everything once it passes the cap)."""
    cached = Renderer(Settings(database_url="sqlite://", secret_key="s", max_html_bytes=30_000))
    for content in _mixed_contents():
        for sid, address, link in _RECIPIENTS[:2]:
            content.recipient = Recipient(sid, address)
            cached.render(content)
            cached.render_nothing_new(content)
            held = cached._contents.values()
            assert cached._contents_weight == sum(64 if s is None else s.weight for s in held)
    distinct = len(cached._contents)
    small = Renderer(Settings(database_url="sqlite://", secret_key="s", max_html_bytes=30_000))
    small.CONTENT_CACHE_BYTES = 60_000                      # it evicts: still exact
    for content in _mixed_contents():
        small.render(content)
        assert small._contents_weight == sum(64 if s is None else s.weight for s in small._contents.values())
    assert 1 < len(small._contents) < distinct


@pytest.mark.parametrize("budget", [None, 30_000, 12_000])
def test_section_cache_equals_direct_render(settings, budget):
    """Digests put together from cached sections are byte-identical to direct renders, for
    several recipients (escaped values, links long enough to change the shrink step), hostile
    titles, questions, Trending, weekly, with and without the web page; at budgets that keep
    every abstract, cut them, or cut papers per section."""
    from digest.email.message import qp_lines

    s = settings if budget is None else Settings(database_url="sqlite://", secret_key="s", max_html_bytes=budget)
    cached, direct = Renderer(s), Renderer(s, cache=False)
    rendered_boxes = []
    box = cached._html_box
    cached._html_box = lambda v, sec: rendered_boxes.append(sec.name) or box(v, sec)
    n_sections = 0
    for content in _mixed_contents():
        for sid, address, link in _RECIPIENTS:
            content.recipient = Recipient(sid, address)
            content.unsubscribe_url = f"https://digest.example.org/unsubscribe/t{sid}{link}"
            content.preferences_url = ""
            for method in ("render", "render_nothing_new"):
                a, b = getattr(cached, method)(content), getattr(direct, method)(content)
                assert (a.subject, a.preheader, a.html, a.text) == (b.subject, b.preheader, b.html, b.text)
                assert_qp_of(a.html_qp(qp_lines), b.html)
                assert_qp_of(a.text_qp(qp_lines), b.text)
                assert len(a.html.encode()) < s.max_html_bytes
            n_sections += len(content.sections)
    # each section box is rendered once per abstract level / cap / web page, not once per
    # digest (at the smallest budget most digests need fewer sections: rendered directly; at
    # 30,000 bytes the vote links push more digests through several shrink steps)
    if budget != 12_000:
        assert 0 < len(rendered_boxes) < n_sections / 3


def test_assembled_digest_is_valid_mime(settings):
    from email import policy
    from email.parser import BytesParser

    from digest.email.message import compose

    renderer = Renderer(settings)
    for content in _mixed_contents()[:8]:
        for sid, address, link in (_RECIPIENTS[0], _RECIPIENTS[2]):
            content.recipient = Recipient(sid, address, name="Ada")
            msg = compose(settings, content, renderer.render(content))
            parsed = BytesParser(policy=policy.default).parsebytes(msg.raw)
            parts = list(parsed.walk())
            assert parsed.defects == [] and all(p.defects == [] for p in parts)
            body = msg.raw.split(b"\r\n\r\n", 1)[1]
            assert all(len(line) <= 76 for line in body.split(b"\r\n"))
            html = parsed.get_body(("html",)).get_content().replace("\r\n", "\n")
            assert html.rstrip("\n") == renderer.render(content).html.rstrip("\n")
            check_html(html)
