"""Parsing arXiv RSS/Atom and HF Daily Papers JSON from the fixtures in tests/fixtures/feeds/."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.sources.parse import (
    MAX_ABSTRACT,
    MAX_AUTHORS,
    MAX_TITLE,
    ParseError,
    detect_kind,
    parse_arxiv,
    parse_hf_daily,
    parse_listing,
)
from digest.sources.textclean import clean_text, split_authors

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
DAY1 = date(2026, 11, 18)


def load(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def by_id(result):
    return {r.id: r for r in result.records}


def text_fields(rec) -> list[str]:
    return [rec.title, rec.abstract, *rec.authors, *(rec.ai_keywords or []), rec.doi or "", rec.journal_ref or ""]


# ---------------------------------------------------------------- arXiv RSS


@pytest.fixture(scope="module")
def rss():
    return parse_listing(load("arxiv-rss-cs.CV-2026-11-18.xml"), "arxiv", "cs.CV")


def test_rss_parses_every_item_cleanly(rss):
    assert rss.kind == "arxiv"
    assert rss.fatal is None
    assert rss.warnings == []
    assert not rss.skipped
    assert [r.id for r in rss.records] == [
        "2611.04101", "2611.04102", "2611.04117", "2508.11234", "2407.09876", "2603.01555",
        "hep-th/9901001", "1411.4038", "2611.04130",
    ]


def test_rss_new_item_fields(rss):
    rec = by_id(rss)["2611.04101"]
    assert rec.kind == "arxiv"
    assert rec.arxiv_id == "2611.04101"
    assert rec.version == 1
    assert rec.announce_type == "new"
    # "&amp;amp;" in the XML is "&amp;" in the HTML is "&" in plain text
    assert rec.title == "Lesion-Aware Prompting for Few-Shot Medical Image Segmentation & Beyond"
    assert rec.abstract.startswith("Segmenting small lesions in CT volumes")
    assert "We propose lesion-aware prompts, a set" in rec.abstract  # <i> removed, text kept
    assert "baseline & halves" in rec.abstract
    assert "Announce Type" not in rec.abstract and "arXiv:" not in rec.abstract
    assert "<" not in rec.abstract and "&amp;" not in rec.abstract and "\n" not in rec.abstract
    assert rec.authors == ["Ines Varga", "Tomasz Olejnik", "Priya Raghunathan"]
    assert rec.categories == ["cs.CV", "eess.IV", "cs.LG"]
    assert rec.published_at == datetime(2026, 11, 18, 5, 0, tzinfo=timezone.utc)
    assert rec.listed_on == DAY1
    assert rec.abs_url == "https://arxiv.org/abs/2611.04101"
    assert rec.pdf_url == "https://arxiv.org/pdf/2611.04101"
    assert rec.doi is None and rec.journal_ref is None
    assert rec.hf_upvotes is None and rec.ai_keywords is None and rec.code_url is None


def test_rss_announce_types_and_versions(rss):
    got = {r.id: (r.announce_type, r.version) for r in rss.records}
    assert got == {
        "2611.04101": ("new", 1),
        "2611.04102": ("new", 1),
        "2611.04117": ("cross", 1),
        "2508.11234": ("replace", 3),
        "2407.09876": ("replace-cross", 2),
        "2603.01555": ("absonly", 2),
        "hep-th/9901001": ("replace-cross", 2),
        "1411.4038": ("replace", 4),
        "2611.04130": ("new", 1),
    }


def test_rss_categories_primary_first(rss):
    recs = by_id(rss)
    assert recs["2611.04117"].categories == ["eess.IV", "cs.CV", "physics.med-ph"]  # cross-list: primary elsewhere
    assert recs["2407.09876"].categories == ["cs.RO", "cs.CV"]
    assert recs["hep-th/9901001"].categories == ["hep-th", "cs.CV"]
    assert recs["2611.04102"].categories[0] == "cs.CV"


def test_rss_authors_split(rss):
    recs = by_id(rss)
    assert recs["2611.04102"].authors == ["Hamid Sadeghi", "Lucia Ferreira"]  # "A and B"
    assert recs["2611.04117"].authors == ["Kwame Mensah-Bonsu", "Elodie Marchand", "Jun-seo Park",
                                          "Farida Nurlanovna"]
    assert recs["hep-th/9901001"].authors == ["Dmitri Volkonsky"]


def test_rss_doi_and_journal_ref(rss):
    rec = by_id(rss)["2508.11234"]
    assert rec.doi == "10.1109/TPAMI.2026.3312456"
    assert rec.journal_ref == "IEEE Trans. Pattern Anal. Mach. Intell. 48(3):1021-1035, 2026"
    assert sum(1 for r in rss.records if r.doi) == 1


def test_rss_old_style_id(rss):
    rec = by_id(rss)["hep-th/9901001"]
    assert rec.arxiv_id == "hep-th/9901001"
    assert rec.abs_url == "https://arxiv.org/abs/hep-th/9901001"
    assert rec.pdf_url == "https://arxiv.org/pdf/hep-th/9901001"


def test_rss_missing_optional_fields(rss):
    rec = by_id(rss)["2611.04130"]  # no dc:creator, no category, no pubDate, no rights
    assert rec.title == "Sparse Correspondences Are Enough for Wide-Baseline Stereo"
    assert rec.authors == []
    assert rec.categories == []
    assert rec.doi is None and rec.journal_ref is None
    # the channel's pubDate stands in for the item's
    assert rec.published_at == datetime(2026, 11, 18, 5, 0, tzinfo=timezone.utc)
    assert rec.listed_on == DAY1


def test_weekend_feed_is_empty_not_fatal():
    result = parse_listing(load("arxiv-rss-cs.CV-2026-11-21-weekend.xml"), "arxiv", "cs.CV")
    assert result.records == []
    assert result.fatal is None
    assert not result.skipped
    assert result.warnings == []


# ---------------------------------------------------------------- arXiv Atom


@pytest.fixture(scope="module")
def atom():
    return parse_listing(load("arxiv-atom-cs.LG-2026-11-18.xml"), "arxiv", "cs.LG")


def test_atom_fields(atom):
    assert atom.fatal is None and atom.warnings == [] and not atom.skipped
    recs = by_id(atom)
    assert list(recs) == ["2611.04205", "2611.04211", "2502.07711", "math/0309136"]
    rec = recs["2611.04205"]
    assert rec.title == "Sliding Sinks: Linear-Time Attention for Million-Token Contexts"
    assert rec.abstract.startswith("Long-context language models pay quadratic cost")
    assert rec.authors == ["Marta Kowalczyk", "Aditya Venkatesan", "Leon Brandt"]
    assert rec.categories == ["cs.LG", "cs.CL"]
    assert (rec.announce_type, rec.version) == ("new", 1)
    assert rec.published_at == datetime(2026, 11, 18, 5, 0, tzinfo=timezone.utc)
    assert rec.listed_on == DAY1


def test_atom_cross_replace_and_old_style(atom):
    recs = by_id(atom)
    assert (recs["2611.04211"].announce_type, recs["2611.04211"].categories) == ("cross", ["cs.CL", "cs.LG"])
    rep = recs["2502.07711"]
    assert (rep.announce_type, rep.version) == ("replace", 4)
    assert rep.doi == "10.5555/jmlr.2026.0412"
    assert rep.journal_ref == "J. Mach. Learn. Res. 27 (2026) 1-44"
    old = recs["math/0309136"]
    assert (old.announce_type, old.version) == ("replace-cross", 3)
    assert old.categories == ["math.CO", "cs.LG"]
    assert old.authors == ["Pavel Sokolov", "Jiri Hanzl"]


def test_real_sample_feeds_parse():
    real = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real-feeds"
    files = sorted(real.glob("*.xml")) if real.is_dir() else []
    if not files:
        pytest.skip("real sample feeds not available")
    for path in files:
        result = parse_arxiv(path.read_bytes(), path.name)
        assert result.fatal is None and not result.skipped, path.name
        assert result.records and all(r.arxiv_id and r.version and r.announce_type for r in result.records)


# ---------------------------------------------------------------- HF Daily Papers


@pytest.fixture(scope="module")
def hf():
    return parse_listing(load("hf-daily-2026-11-18.json"), "hf-daily", "hf")


def test_hf_records_and_withdrawn_skip(hf):
    assert hf.kind == "hf-daily"
    assert hf.fatal is None and hf.warnings == []
    assert [r.id for r in hf.records] == ["2611.04101", "2611.04388", "2611.04392"]
    assert hf.skipped == {"withdrawn": 1}


def test_hf_title_and_summary_unwrapped(hf):
    rec = by_id(hf)["2611.04101"]
    assert rec.title == "Lesion-Aware Prompting for Few-Shot Medical Image Segmentation & Beyond"
    assert "\n" not in rec.abstract and "  " not in rec.abstract
    assert "handful of labelled scans remains hard" in rec.abstract
    assert by_id(hf)["2611.04388"].title == "Self-Verifying Agents: Tool-Use Traces as Reward for LLM Reasoning"
    assert by_id(hf)["2611.04392"].title == "A Note on Diffusion Sampler Step Counts"


def test_hf_enrichment_fields(hf):
    rec = by_id(hf)["2611.04101"]
    assert rec.kind == "hf-daily"
    assert rec.arxiv_id == "2611.04101" and rec.version is None
    assert rec.hf_upvotes == 42
    assert rec.ai_keywords == ["few-shot segmentation", "medical imaging", "prompt learning", "foundation encoder",
                               "Dice"]
    assert rec.code_url == "https://github.com/example-lab/lesion-prompts"
    assert rec.project_url == "https://example-lab.github.io/lesion-prompts/"
    assert rec.hf_url == "https://huggingface.co/papers/2611.04101"
    assert rec.abs_url == "https://arxiv.org/abs/2611.04101"
    assert rec.authors == ["Ines Varga", "Tomasz Olejnik", "Priya Raghunathan"]
    assert rec.categories == [] and rec.announce_type is None
    # publishedAt of the paper is its arXiv date; the item's publishedAt is the day it was listed
    assert rec.published_at == datetime(2026, 11, 17, 18, 59, 2, tzinfo=timezone.utc)
    assert rec.listed_on == DAY1


def test_hf_record_without_optional_fields(hf):
    rec = by_id(hf)["2611.04392"]
    assert rec.hf_upvotes is None
    assert rec.ai_keywords is None
    assert rec.code_url is None and rec.project_url is None
    assert rec.authors == ["Rosa Imbert"]
    assert rec.abstract == "We count."
    assert rec.listed_on == DAY1


def test_hf_hidden_author_keeps_name(hf):
    # "hidden" hides the author's profile link on HF, not the name on the paper
    assert by_id(hf)["2611.04388"].authors == ["Zhao Lin", "Amara Diallo", "Olu Adebayo"]


# ---------------------------------------------------------------- hostile content

MARKUP = re.compile(r"<|>|script|alert|onerror|onload|onmouseover|javascript|display:none|iframe|evil\.example",
                    re.IGNORECASE)


def test_hostile_rss_gives_plain_text_only():
    result = parse_arxiv(load("hostile-script.xml"), "cs.CR")
    assert result.fatal is None
    recs = by_id(result)
    assert set(recs) == {"2611.04501", "2611.04502"}
    assert result.skipped == {"missing id": 1}  # the item whose only link is javascript:
    for rec in result.records:
        for value in text_fields(rec):
            assert not MARKUP.search(value), value
        for url in (rec.abs_url, rec.pdf_url):
            assert url.startswith("https://arxiv.org/")
    first = recs["2611.04501"]
    assert first.title == "Robust Attention Heads Against Prompt Injection"
    assert first.abstract == ("Prompt injection hides instructions in retrieved text. We train attention heads to "
                              "down-weight untrusted spans and cut attack success from 38% to 4%.")
    assert first.authors == ["Eve Mallory", "Trent Ashby"]
    # a javascript: <link> never becomes a URL: the links come from the id
    assert recs["2611.04502"].abs_url == "https://arxiv.org/abs/2611.04502"


def test_hostile_hf_items():
    result = parse_hf_daily(load("hf-hostile.json"), "hf")
    assert result.fatal is None
    assert result.skipped == {"not an object": 3, "missing id": 1, "missing title": 1}
    recs = by_id(result)
    assert len(recs) == 3
    spec = recs["2611.04801"]
    assert spec.title == "Speculative Decoding with Draft Trees"
    assert spec.abstract.startswith("Speculative decoding drafts several tokens")
    assert spec.authors == ["Kiri Wairua", "Benedikt Sauer"]
    assert spec.code_url is None          # javascript:
    assert spec.project_url is None       # data:
    assert spec.hf_upvotes is None        # "many"
    assert spec.ai_keywords is None       # a string, not a list
    assert spec.listed_on == DAY1         # paper.publishedAt is garbage: the item's date is used
    for rec in result.records:
        for value in text_fields(rec):
            assert not MARKUP.search(value), value
    script_id = next(r for r in result.records if r.arxiv_id is None)
    assert script_id.title == "A Paper Whose Id Is Not an arXiv Id"
    assert script_id.id.startswith("hf:")
    assert script_id.hf_url is None and script_id.abs_url is None
    assert script_id.hf_upvotes is None   # true is not a count
    flat = recs["2611.04803"]
    assert flat.title == "A Flat Record Without a paper Wrapper" and flat.hf_upvotes == 5


def test_entries_missing_id_or_title_are_skipped_with_reasons():
    result = parse_arxiv(load("hostile-missing-fields.xml"), "cs.DS")
    assert result.fatal is None
    assert result.skipped == {"missing title": 3, "missing id": 1}
    ids = [r.id for r in result.records]
    assert ids[0] == "2611.04604"
    # an item with only an http(s) link gets a stable fallback id and keeps its link
    other = result.records[1]
    assert other.id.startswith("x:") and other.arxiv_id is None
    assert other.abs_url == "https://example.org/tech-report/417"
    assert other.pdf_url is None
    again = parse_arxiv(load("hostile-missing-fields.xml"), "cs.DS")
    assert [r.id for r in again.records] == ids


def test_truncated_feed_keeps_parsed_entries_and_warns():
    result = parse_arxiv(load("hostile-truncated.xml"), "cs.CV")
    assert result.fatal is None
    assert any("not well-formed" in w for w in result.warnings)
    recs = by_id(result)
    for pid in ("2611.04101", "2611.04102", "2611.04117"):
        assert pid in recs
        assert recs[pid].abstract and recs[pid].version == 1 and recs[pid].announce_type in ("new", "cross")
    assert recs["2611.04117"].authors[-1] == "Farida Nurlanovna"


def test_truncated_entry_is_not_kept_half_parsed():
    result = parse_arxiv(load("hostile-truncated.xml"), "cs.CV")
    cut = by_id(result).get("2508.11234")
    assert cut is None or (cut.announce_type == "replace" and cut.abstract)


def test_entry_without_description_in_a_well_formed_feed_is_kept():
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>lab reading list</title>
<item><title>Notes on Sparse Mixture Routing</title><link>https://arxiv.org/abs/2611.04950</link>
<guid isPermaLink="false">oai:arXiv.org:2611.04950v1</guid></item>
</channel></rss>"""
    result = parse_arxiv(body, "reading-list")
    assert result.warnings == [] and result.fatal is None
    assert [r.id for r in result.records] == ["2611.04950"]
    assert result.records[0].title == "Notes on Sparse Mixture Routing"


@pytest.mark.parametrize("name", ["hostile-cp1252-declared-utf8.xml", "hostile-cp1252-declared-cp1252.xml",
                                  "hostile-cp1252-no-declaration.xml"])
def test_windows_1252_bytes_decode_to_the_right_characters(name):
    result = parse_arxiv(load(name), name)
    assert result.fatal is None
    recs = by_id(result)
    assert list(recs) == ["2611.04701", "2611.04702"]
    rec = recs["2611.04701"]
    assert rec.title == "\u201cMatrix-Free\u201d Preconditioners for Schr\u00f6dinger Eigenproblems \u2013 A Survey"
    assert "M\u00fcller\u2019s early multigrid schemes" in rec.abstract
    assert rec.authors == ["J\u00fcrgen M\u00fcller", "Fran\u00e7oise L\u00e9v\u00eaque", "Se\u00e1n \u00d3 Briain"]
    assert "\ufffd" not in rec.title + rec.abstract
    if "declared-utf8" in name:
        assert any("windows-1252" in w for w in result.warnings)


def _gigantic_feed(abstract_bytes: int = 2_000_000, authors: int = 3000) -> bytes:
    words = ("segmentation attention quantization diffusion agents graph speech robot " * 40_000)
    huge = words[:abstract_bytes]
    creators = ", ".join(f"Author{i} Surname{i}" for i in range(authors))
    long_title = "Very Long Title " * 200
    return f"""<?xml version='1.0' encoding='UTF-8'?>
<rss xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0">
  <channel><title>cs.LG updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link>
    <description>x</description><pubDate>Wed, 18 Nov 2026 00:00:00 -0500</pubDate>
    <item>
      <title>{long_title}</title>
      <link>https://arxiv.org/abs/2611.04901</link>
      <description>arXiv:2611.04901v1 Announce Type: new 
Abstract: {huge}</description>
      <guid isPermaLink="false">oai:arXiv.org:2611.04901v1</guid>
      <category>cs.LG</category>
      <arxiv:announce_type>new</arxiv:announce_type>
      <dc:creator>{creators}</dc:creator>
    </item>
    <item>
      <title>A Normal Paper After the Giant</title>
      <link>https://arxiv.org/abs/2611.04902</link>
      <description>arXiv:2611.04902v1 Announce Type: new 
Abstract: Short and ordinary.</description>
      <guid isPermaLink="false">oai:arXiv.org:2611.04902v1</guid>
      <category>cs.LG</category>
      <arxiv:announce_type>new</arxiv:announce_type>
      <dc:creator>Ola Nordmann</dc:creator>
    </item>
  </channel>
</rss>
""".encode()


def test_gigantic_entry_is_capped_and_the_next_one_kept():
    body = _gigantic_feed()
    assert len(body) > 2_000_000
    result = parse_arxiv(body, "cs.LG")
    assert result.fatal is None
    recs = by_id(result)
    giant = recs["2611.04901"]
    assert len(giant.abstract) <= MAX_ABSTRACT + 1 and giant.abstract.endswith("…")
    assert len(giant.title) <= MAX_TITLE + 1
    assert len(giant.authors) == MAX_AUTHORS
    assert recs["2611.04902"].abstract == "Short and ordinary."


@pytest.mark.parametrize("body, kind", [
    (load("not-a-feed.html"), "arxiv"),
    (load("garbage.bin"), "arxiv"),
    (b"   ", "arxiv"),
    (b"<?xml version='1.0'?><inventory><shelf>3</shelf></inventory>", "arxiv"),
    (b"not json at all", "hf-daily"),
    (b'{"error": "Invalid date"}', "hf-daily"),
    (b"null", "hf-daily"),
    (b"[1, 2", "hf-daily"),
    (b"\xff\xfe[\x00]\x00", "hf-daily"),
    (load("arxiv-rss-cs.CV-2026-11-18.xml"), "hf-daily"),
])
def test_garbage_is_fatal(body, kind):
    result = parse_listing(body, kind, "src")
    assert result.fatal and result.fatal.startswith("src: ")
    assert result.records == []


def test_empty_body_is_fatal():
    assert parse_listing(b"", "arxiv", "src").fatal


def test_unknown_kind_raises():
    with pytest.raises(ParseError, match="unknown source kind"):
        parse_listing(b"[]", "rss", "src")


@pytest.mark.parametrize("body, content_type, kind", [
    (b"[]", None, "hf-daily"),
    (b"  {\"papers\": []}", None, "hf-daily"),
    (b"<?xml version='1.0'?><rss/>", None, "arxiv"),
    (b"<feed/>", None, "arxiv"),
    (b"[]", "application/rss+xml", "arxiv"),
    (b"<rss/>", "application/json; charset=utf-8", "hf-daily"),
])
def test_detect_kind(body, content_type, kind):
    assert detect_kind(body, content_type) == kind


def test_detect_kind_skips_utf8_bom():
    body = b"\xef\xbb\xbf" + load("hf-daily-2026-11-18.json")
    assert detect_kind(body) == "hf-daily"
    assert len(parse_listing(body, "auto", "hf").records) == 3


def test_auto_kind_routes_both_formats():
    assert parse_listing(load("hf-daily-2026-11-18.json"), "auto", "x").kind == "hf-daily"
    assert parse_listing(load("arxiv-atom-cs.LG-2026-11-18.xml"), "auto", "x").kind == "arxiv"


def test_hf_wrapper_object_is_tolerated():
    body = json.dumps({"papers": json.loads(load("hf-daily-2026-11-18.json"))}).encode()
    assert len(parse_hf_daily(body).records) == 3


# ---------------------------------------------------------------- math and comparisons survive


def test_comparisons_in_rss_text_survive():
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss xmlns:arxiv="http://arxiv.org/schemas/atom" version="2.0"><channel><title>math.CO</title>
<item><title>Bounds when $k&lt;n$ and $m&gt;p$</title><link>https://arxiv.org/abs/2611.04990</link>
<description>arXiv:2611.04990v1 Announce Type: new 
Abstract: We prove the bound for all $k&lt;n$ and $m&gt;p$ in the sparse regime.</description>
<guid isPermaLink="false">oai:arXiv.org:2611.04990v1</guid><arxiv:announce_type>new</arxiv:announce_type></item>
</channel></rss>"""
    rec = parse_arxiv(body).records[0]
    assert "k<n" in rec.title and "m>p" in rec.title
    assert "k<n" in rec.abstract and "m>p" in rec.abstract


def test_comparisons_in_hf_text_survive():
    body = json.dumps([{"paper": {"id": "2611.04991", "title": "When k<n and m>p",
                                  "summary": "We show it for all k<n and m>p."}}]).encode()
    rec = parse_hf_daily(body).records[0]
    assert rec.title == "When k<n and m>p"
    assert rec.abstract == "We show it for all k<n and m>p."


# ---------------------------------------------------------------- textclean


@pytest.mark.parametrize("raw, clean", [
    ("  Hard\n  wrapped\ttitle  ", "Hard wrapped title"),
    ("<p>One</p><p>Two</p>", "One Two"),
    ("a<br/>b", "a b"),
    ("Fish &amp; Chips &eacute;t&eacute;", "Fish & Chips été"),
    ("<script>bad()</script>good", "good"),
    ("<style>p{}</style>text", "text"),
    ("\\textbf{Bold} and \\emph{\\textit{nested}}", "Bold and nested"),
    ("Schr\\\"odinger and Caf\\'e", "Schrödinger and Café"),
    ("50\\% of \\$x\\$", "50% of x"),
    ("zero\u200bwidth\x00and\x07control", "zero width and control"),
    ("e\u0301", "é"),
    (None, ""),
    ("", ""),
])
def test_clean_text_examples(raw, clean):
    assert clean_text(raw) == clean


def test_clean_text_max_len_cuts_at_a_word():
    text = clean_text("alpha beta gamma delta", max_len=12)
    assert text == "alpha beta…"


@given(st.text(max_size=300))
def test_clean_text_is_single_spaced_plain_text(raw):
    out = clean_text(raw)
    assert out == out.strip()
    assert "  " not in out
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u200b]", out)
    assert "\n" not in out and "\t" not in out


@pytest.mark.parametrize("raw, names", [
    ("Ines Varga, Tomasz Olejnik, Priya Raghunathan", ["Ines Varga", "Tomasz Olejnik", "Priya Raghunathan"]),
    ("Hamid Sadeghi and Lucia Ferreira", ["Hamid Sadeghi", "Lucia Ferreira"]),
    ("A. One, B. Two and C. Three", ["A. One", "B. Two", "C. Three"]),
    ("Alexander Anderson, Sandra Andrews", ["Alexander Anderson", "Sandra Andrews"]),  # "and" inside names
    ("Ana; Bo", ["Ana", "Bo"]),
    ("J\\\"urgen M\\\"uller", ["Jürgen Müller"]),
    ("", []),
    (None, []),
])
def test_split_authors(raw, names):
    assert split_authors(raw) == names
