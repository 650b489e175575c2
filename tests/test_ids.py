"""arXiv id normalisation: examples plus property tests over every form an id appears in."""
from __future__ import annotations

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from digest.sources.ids import ArxivId, abs_url, canonical_id, fallback_id, parse_arxiv_id, pdf_url

# ---------------------------------------------------------------- examples


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2611.04101", ArxivId("2611.04101", None)),
        ("2611.04101v1", ArxivId("2611.04101", 1)),
        ("1411.4038v4", ArxivId("1411.4038", 4)),
        ("https://arxiv.org/abs/2611.04101", ArxivId("2611.04101", None)),
        ("http://arxiv.org/abs/2611.04101v12", ArxivId("2611.04101", 12)),
        ("https://export.arxiv.org/abs/2611.04101v2", ArxivId("2611.04101", 2)),
        ("https://arxiv.org/pdf/2611.04101v3.pdf", ArxivId("2611.04101", 3)),
        ("https://arxiv.org/pdf/2611.04101", ArxivId("2611.04101", None)),
        ("https://arxiv.org/html/2611.04101v1", ArxivId("2611.04101", 1)),
        ("https://arxiv.org/abs/2611.04101?context=cs.CV", ArxivId("2611.04101", None)),
        ("https://arxiv.org/abs/2611.04101v2#S3", ArxivId("2611.04101", 2)),
        ("https://arxiv.org/abs/2611.04101/", ArxivId("2611.04101", None)),
        ("oai:arXiv.org:2611.04101v1", ArxivId("2611.04101", 1)),
        ("arXiv:2611.04101v2", ArxivId("2611.04101", 2)),
        ("ARXIV:2611.04101", ArxivId("2611.04101", None)),
        ("arXiv: 2611.04101", ArxivId("2611.04101", None)),
        ("  2611.04101v1\n", ArxivId("2611.04101", 1)),
        # old style
        ("hep-th/9901001v2", ArxivId("hep-th/9901001", 2)),
        ("hep-th/9901001", ArxivId("hep-th/9901001", None)),
        ("oai:arXiv.org:hep-th/9901001v2", ArxivId("hep-th/9901001", 2)),
        ("https://arxiv.org/abs/hep-th/9901001", ArxivId("hep-th/9901001", None)),
        ("https://arxiv.org/pdf/hep-th/9901001v2.pdf", ArxivId("hep-th/9901001", 2)),
        ("arXiv:cond-mat/0211034v1", ArxivId("cond-mat/0211034", 1)),
        ("q-bio/0401001", ArxivId("q-bio/0401001", None)),
        # the subject class is not part of the canonical id
        ("math.GT/0309136", ArxivId("math/0309136", None)),
        ("oai:arXiv.org:math/0309136v3", ArxivId("math/0309136", 3)),
        ("https://arxiv.org/abs/cs.AI/9901002v1", ArxivId("cs/9901002", 1)),
    ],
)
def test_parse_examples(text, expected):
    assert parse_arxiv_id(text) == expected
    assert canonical_id(text) == expected.id


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "hello world",
        "2613.04101",                      # month 13
        "2600.04101",                      # month 00
        "arXiv:2613.04101v1",
        "2611.041",                        # three digits
        "2611.041011",                     # six digits
        "2611.04101v1v2",
        "https://example.org/papers/2611.04101",
        "https://example.org/abs/2611.04101",
        "https://github.com/lab/repo/releases/tag/2611.04101",
        "https://arxiv.org/list/cs.CV/2611.04101",  # not an abs/pdf/html link
        "doi:10.1109/TPAMI.2026.3312456",
        "hep-th/990100",                   # six digits in an old-style id
        "hep-th/99010011",                 # eight digits
        "javascript:alert(2611.04101)",
        "mailto:2611.04101@example.org",
        "12345",
        "3.14159",
    ],
)
def test_not_an_id(text):
    assert parse_arxiv_id(text) is None
    assert canonical_id(text) is None


@pytest.mark.parametrize("text", ["https://notarxiv.org/abs/2611.04101",
                                  "https://evil.example/mirror/arxiv.org/abs/2611.04101"])
def test_lookalike_hosts_are_not_arxiv(text):
    assert parse_arxiv_id(text) is None


def test_urls_helpers():
    assert abs_url("2611.04101") == "https://arxiv.org/abs/2611.04101"
    assert pdf_url("hep-th/9901001") == "https://arxiv.org/pdf/hep-th/9901001"
    assert canonical_id(abs_url("hep-th/9901001")) == "hep-th/9901001"


def test_fallback_id_is_stable_and_normalised():
    a = fallback_id("x", "https://example.org/report/1")
    assert a.startswith("x:") and len(a) == 2 + 16
    assert fallback_id("x", "  HTTPS://example.org/report/1 ") == a
    assert fallback_id("x", "https://example.org/report/2") != a
    assert fallback_id("hf", "https://example.org/report/1") != a
    # parts are separated, so ("ab", "c") and ("a", "bc") differ
    assert fallback_id("x", "ab", "c") != fallback_id("x", "a", "bc")


# ---------------------------------------------------------------- properties

yymm = st.tuples(st.integers(0, 99), st.integers(1, 12)).map(lambda t: f"{t[0]:02d}{t[1]:02d}")
number = st.one_of(st.integers(0, 9999).map(lambda n: f"{n:04d}"), st.integers(0, 99999).map(lambda n: f"{n:05d}"))
new_ids = st.builds(lambda ym, n: f"{ym}.{n}", yymm, number)

ARCHIVES = ["hep-th", "hep-ph", "hep-ex", "hep-lat", "astro-ph", "cond-mat", "gr-qc", "quant-ph", "nucl-th",
            "math-ph", "q-bio", "physics", "math", "cs", "nlin"]
old_nums = st.tuples(st.integers(91, 107), st.integers(1, 12), st.integers(1, 999)).map(
    lambda t: f"{t[0] % 100:02d}{t[1]:02d}{t[2]:03d}")
old_ids = st.builds(lambda a, n: f"{a}/{n}", st.sampled_from(ARCHIVES), old_nums)
any_ids = st.one_of(new_ids, old_ids)
versions = st.one_of(st.none(), st.integers(1, 9999))


def _forms(ident: str, version: int | None) -> list[str]:
    v = f"v{version}" if version else ""
    return [
        f"{ident}{v}",
        f"arXiv:{ident}{v}",
        f"arxiv:{ident}{v}",
        f"oai:arXiv.org:{ident}{v}",
        f"https://arxiv.org/abs/{ident}{v}",
        f"http://arxiv.org/abs/{ident}{v}",
        f"https://export.arxiv.org/abs/{ident}{v}",
        f"https://arxiv.org/pdf/{ident}{v}",
        f"https://arxiv.org/pdf/{ident}{v}.pdf",
        f"https://arxiv.org/abs/{ident}{v}?context=cs",
        f" {ident}{v} ",
    ]


@given(any_ids, versions)
@example("0704.0001", None)
@example("1412.9999", 1)
@example("2611.04101", 2)
@example("hep-th/9901001", 2)
def test_every_form_gives_canonical_id_and_version(ident, version):
    for form in _forms(ident, version):
        assert parse_arxiv_id(form) == ArxivId(ident, version), form


@given(st.sampled_from(["math", "cs"]), st.sampled_from(["GT", "AG", "AI", "LG", "CO"]), old_nums, versions)
def test_old_style_subject_class_is_dropped(archive, subject, num, version):
    v = f"v{version}" if version else ""
    for prefix in ("", "arXiv:", "oai:arXiv.org:", "https://arxiv.org/abs/"):
        assert parse_arxiv_id(f"{prefix}{archive}.{subject}/{num}{v}") == ArxivId(f"{archive}/{num}", version)


@given(any_ids, versions)
def test_normalisation_is_idempotent(ident, version):
    for form in _forms(ident, version):
        once = canonical_id(form)
        assert canonical_id(once) == once
        assert canonical_id(abs_url(once)) == once
        assert canonical_id(pdf_url(once)) == once
        again = parse_arxiv_id(f"{once}v{version}" if version else once)
        assert again == parse_arxiv_id(form)


@given(st.integers(0, 99), st.sampled_from([0, *range(13, 100)]), number, versions)
def test_invalid_month_is_never_an_id(yy, month, num, version):
    ident = f"{yy:02d}{month:02d}.{num}"
    for form in _forms(ident, version):
        assert parse_arxiv_id(form) is None, form


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


@given(
    host=st.lists(_word, min_size=1, max_size=3).map(lambda parts: ".".join(parts) + ".org"),
    before=st.lists(_word, max_size=3),
    ident=any_ids,
    version=versions,
    place=st.sampled_from(["path", "query", "fragment"]),
)
def test_random_urls_do_not_yield_ids(host, before, ident, version, place):
    assume("arxiv" not in host and not any("arxiv" in b for b in before))
    v = f"v{version}" if version else ""
    path = "/".join(before)
    if place == "path":
        url = f"https://{host}/{path}/{ident}{v}"
    elif place == "query":
        url = f"https://{host}/{path}?id={ident}{v}"
    else:
        url = f"https://{host}/{path}#{ident}{v}"
    assert parse_arxiv_id(url) is None, url


@given(st.text(alphabet="0123456789. /:-abcxyz", max_size=30))
@settings(max_examples=300)
def test_random_short_strings_never_crash_and_round_trip(text):
    found = parse_arxiv_id(text)
    if found is not None:
        assert canonical_id(found.id) == found.id
        assert found.version is None or found.version >= 0


@given(st.integers(min_value=0, max_value=10**12))
def test_plain_integers_are_not_ids(n):
    assert parse_arxiv_id(str(n)) is None
    assert parse_arxiv_id(f"https://example.org/item/{n}") is None
