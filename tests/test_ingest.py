"""Ingest end to end: fixtures → ingest_source → a real SQLite database per test."""
from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest.store.db import session_scope
from digest.sources.ingest import adhoc_spec, ingest_all, ingest_source
from digest.store.models import IngestRun, Paper, PaperListing, SourceState
from digest.store.settings import Settings
from digest.sources.config import SourcesConfigError, SourceSpec, load_sources

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
DAY1 = date(2026, 11, 18)
DAY2 = date(2026, 11, 19)
NOW1 = datetime(2026, 11, 18, 6, 30, tzinfo=timezone.utc)
NOW2 = NOW1 + timedelta(days=1)


@pytest.fixture
def settings(db_url) -> Settings:
    return Settings(database_url=db_url, http_backoff=0.01, http_timeout=1.0)


@pytest.fixture
def feeds(tmp_path) -> Path:
    """A private copy of the fixtures, so tests may edit files."""
    dest = tmp_path / "feeds"
    shutil.copytree(FEEDS, dest)
    return dest


def write_sources(tmp_path: Path, text: str) -> list[SourceSpec]:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return load_sources(path)


def papers(settings) -> dict[str, Paper]:
    with session_scope(settings) as s:
        return {p.id: p for p in s.scalars(select(Paper))}


def listings(settings, paper_id: str | None = None) -> list[PaperListing]:
    with session_scope(settings) as s:
        q = select(PaperListing).order_by(PaperListing.listed_on, PaperListing.source)
        if paper_id:
            q = q.where(PaperListing.paper_id == paper_id)
        return list(s.scalars(q))


def runs(settings) -> list[IngestRun]:
    with session_scope(settings) as s:
        return list(s.scalars(select(IngestRun).order_by(IngestRun.id)))


def assert_consistent(settings) -> None:
    from digest.store.db import get_engine

    with get_engine(settings.database_url).connect() as con:
        one = lambda sql: con.exec_driver_sql(sql).scalar()  # noqa: E731
        if con.dialect.name == "sqlite":   # PostgreSQL checks pages and foreign keys itself
            assert one("PRAGMA integrity_check") == "ok"
            assert con.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        assert one("SELECT count(*) FROM paper_listings l LEFT JOIN papers p ON p.id = l.paper_id "
                   "WHERE p.id IS NULL") == 0
        assert one("SELECT count(*) FROM papers WHERE title IS NULL OR trim(title) = ''") == 0
        assert one("SELECT count(*) FROM papers p WHERE NOT EXISTS "
                   "(SELECT 1 FROM paper_listings l WHERE l.paper_id = p.id)") == 0


CV_DAY1 = "arxiv-rss-cs.CV-2026-11-18.xml"


# ---------------------------------------------------------------- basics


def test_first_ingest_counts_and_rows(settings):
    report = ingest_source(settings, adhoc_spec(str(FEEDS / CV_DAY1)), now=NOW1)
    assert report.status == "ok", report
    assert report.errors == [] and report.warnings == []
    # new + cross are new; replace, replace-cross and absonly of unknown papers are stored but not new
    assert report.new == 4 and sorted(report.new_ids) == ["2611.04101", "2611.04102", "2611.04117", "2611.04130"]
    assert report.updated == 5 and report.unchanged == 0
    rows = papers(settings)
    assert len(rows) == 9
    p = rows["2611.04101"]
    assert p.title == "Lesion-Aware Prompting for Few-Shot Medical Image Segmentation & Beyond"
    assert p.authors == ["Ines Varga", "Tomasz Olejnik", "Priya Raghunathan"]
    assert p.categories == ["cs.CV", "eess.IV", "cs.LG"] and p.primary_category == "cs.CV"
    assert p.version == 1 and p.announce_type == "new" and p.is_new is True
    assert p.first_seen_at == NOW1 and p.updated_at == NOW1
    assert p.published_at == datetime(2026, 11, 18, 5, 0, tzinfo=timezone.utc)
    assert rows["2508.11234"].doi == "10.1109/TPAMI.2026.3312456"
    assert rows["2508.11234"].journal_ref.startswith("IEEE Trans. Pattern Anal.")
    assert rows["hep-th/9901001"].is_new is False and rows["hep-th/9901001"].version == 2
    assert rows["2603.01555"].is_new is False  # absonly of a paper never seen
    assert {r.id for r in rows.values() if r.is_new} == set(report.new_ids)
    assert len(listings(settings)) == 9
    assert_consistent(settings)


def test_ingest_twice_second_run_is_not_modified(settings):
    spec = adhoc_spec(str(FEEDS / CV_DAY1))
    first = ingest_source(settings, spec, now=NOW1)
    second = ingest_source(settings, spec, now=NOW1 + timedelta(hours=1))
    assert first.new == 4
    assert second.status == "not-modified"
    assert (second.new, second.updated, second.unchanged) == (0, 0, 0)
    assert len(papers(settings)) == 9 and len(listings(settings)) == 9
    assert [r.status for r in runs(settings)] == ["ok", "not-modified"]
    with session_scope(settings) as s:
        state = s.get(SourceState, spec.name)
        assert state.last_fetch_at == NOW1 + timedelta(hours=1)


def test_feed_rebuilt_with_only_a_new_build_date_is_not_parsed_again(settings, feeds):
    path = feeds / "arxiv-rss-cs.CV-2026-11-19.xml"   # every item has its own pubDate
    spec = adhoc_spec(str(path))
    ingest_source(settings, spec, now=NOW1)
    text = path.read_text(encoding="utf-8").replace("05:30:58", "05:45:00")  # only lastBuildDate moves
    path.write_text(text, encoding="utf-8")
    second = ingest_source(settings, spec, now=NOW1 + timedelta(hours=1))
    assert second.status == "not-modified"
    assert all(p.updated_at == NOW1 for p in papers(settings).values())


def test_fingerprint_keeps_channel_dates_when_an_entry_has_none():
    from digest.sources.ingest import listing_fingerprint

    head = b"<rss><channel><lastBuildDate>Wed, 18 Nov 2026 05:31:12 +0000</lastBuildDate>"
    dated = b"<item><title>A</title><pubDate>Wed, 18 Nov 2026 00:00:00 -0500</pubDate></item></channel></rss>"
    undated = b"<item><title>A</title></item></channel></rss>"
    later = head.replace(b"05:31:12", b"06:00:00")
    assert listing_fingerprint(head + dated) == listing_fingerprint(later + dated)
    # entries without a date are dated by the channel: a new channel date is a change
    assert listing_fingerprint(head + undated) != listing_fingerprint(later + undated)
    assert listing_fingerprint(head + dated) != listing_fingerprint(head + dated.replace(b">A<", b">B<"))
    # one entry with two dates does not make up for one with none
    two_dates = b"<entry><title>A</title><published>2026-11-18</published><updated>2026-11-18</updated></entry>"
    no_date = b"<entry><title>B</title></entry></feed>"
    atom = b"<feed><updated>2026-11-18T05:00:00Z</updated>"
    assert listing_fingerprint(atom + two_dates + no_date) != listing_fingerprint(
        atom.replace(b"05:00", b"06:00") + two_dates + no_date)
    # the XML declaration (encoding) always counts
    decl = b"<?xml version='1.0' encoding='UTF-8'?>"
    assert listing_fingerprint(decl + head + dated) != listing_fingerprint(decl.replace(b"UTF-8", b"latin-1") + head + dated)


def test_reingest_changed_bytes_same_papers_is_all_unchanged(settings, feeds):
    path = feeds / CV_DAY1
    spec = adhoc_spec(str(path))
    ingest_source(settings, spec, now=NOW1)
    # a changed entry byte that changes no stored field: parsed again, every paper unchanged
    text = path.read_text(encoding="utf-8").replace("<item>", "<item >", 1)
    path.write_text(text, encoding="utf-8")
    second = ingest_source(settings, spec, now=NOW1 + timedelta(hours=1))
    assert second.status == "ok"
    assert (second.new, second.updated, second.unchanged) == (0, 0, 9)
    assert all(p.updated_at == NOW1 for p in papers(settings).values())
    assert len(listings(settings)) == 9  # same source, same day: no duplicate listing


def test_weekend_feed_is_a_warning_with_no_rows(settings):
    report = ingest_source(settings, adhoc_spec(str(FEEDS / "arxiv-rss-cs.CV-2026-11-21-weekend.xml")))
    assert report.status == "warning"
    assert any("empty" in w and "weekend" in w for w in report.warnings)
    assert report.new == 0 and papers(settings) == {}
    assert runs(settings)[-1].status == "warning"


# ---------------------------------------------------------------- sources.yaml and two category feeds


def test_same_paper_in_two_category_feeds_is_one_row_two_listings(settings, feeds, tmp_path):
    specs = write_sources(tmp_path, """\
sources:
  - name: arxiv-cs.CV
    kind: arxiv
    url: feeds/arxiv-rss-cs.CV-2026-11-18.xml
  - name: arxiv-eess.IV
    kind: arxiv
    url: feeds/arxiv-rss-eess.IV-2026-11-18.xml
""")
    assert [s.name for s in specs] == ["arxiv-cs.CV", "arxiv-eess.IV"]
    assert all(s.base == tmp_path for s in specs)
    cv, iv = ingest_all(settings, specs, now=NOW1)
    assert cv.status == iv.status == "ok"
    assert cv.new == 4
    assert iv.new == 1 and iv.new_ids == ["2611.04160"]  # 04117 and 04101 were already stored
    assert iv.new + iv.updated + iv.unchanged == 3
    rows = papers(settings)
    assert len(rows) == 10
    for pid in ("2611.04117", "2611.04101"):
        assert sorted(l.source for l in listings(settings, pid)) == ["arxiv-cs.CV", "arxiv-eess.IV"]
        assert all(l.listed_on == DAY1 for l in listings(settings, pid))
    # categories keep arXiv's order whichever feed listed the paper
    assert rows["2611.04117"].categories == ["eess.IV", "cs.CV", "physics.med-ph"]
    assert rows["2611.04117"].primary_category == "eess.IV"
    assert rows["2611.04117"].is_new is True
    with session_scope(settings) as s:
        assert s.scalar(select(func.count()).select_from(PaperListing)) == 12  # 9 + 3
    assert_consistent(settings)


def test_date_template_in_source_url(settings, feeds, tmp_path):
    (spec,) = write_sources(tmp_path, """\
sources:
  - name: cv
    kind: arxiv
    url: feeds/arxiv-rss-cs.CV-{date}.xml
""")
    assert spec.location(DAY2) == "feeds/arxiv-rss-cs.CV-2026-11-19.xml"
    r1 = ingest_source(settings, spec, now=NOW1, today=DAY1)
    r2 = ingest_source(settings, spec, now=NOW2, today=DAY2)
    assert r1.status == r2.status == "ok"
    assert r1.location.endswith("2026-11-18.xml") and r2.location.endswith("2026-11-19.xml")
    assert [r.location for r in runs(settings)] == [r1.location, r2.location]


# ---------------------------------------------------------------- replace / absonly on day 2


@pytest.fixture
def two_days(settings, feeds, tmp_path):
    (spec,) = write_sources(tmp_path, """\
sources:
  - name: arxiv-cs.CV
    kind: arxiv
    url: feeds/arxiv-rss-cs.CV-{date}.xml
""")
    day1 = ingest_source(settings, spec, now=NOW1, today=DAY1)
    before = papers(settings)
    day2 = ingest_source(settings, spec, now=NOW2, today=DAY2)
    return day1, day2, before, papers(settings)


def test_replace_of_stored_paper_updates_version_not_new(two_days, settings):
    day1, day2, before, after = two_days
    assert day2.status == "ok"
    assert day2.new_ids == ["2611.05020"]  # the only genuinely new paper on day 2
    assert day2.new == 1
    assert day2.updated == 3 and day2.unchanged == 0
    p = after["2611.04101"]
    assert p.version == 2 and p.announce_type == "replace"
    assert p.title == "Lesion-Aware Prompting for Few-Shot and Zero-Shot Medical Image Segmentation"
    assert p.authors[-1] == "Felix Baumann"
    assert "zero-shot setting" in p.abstract
    assert p.is_new is True                      # still the paper announced on day 1
    assert p.first_seen_at == NOW1 and p.updated_at == NOW2
    assert [(l.listed_on, l.announce_type) for l in listings(settings, "2611.04101")] == [
        (DAY1, "new"), (DAY2, "replace")]
    assert_consistent(settings)


def test_replace_of_unknown_paper_is_stored_not_new(two_days):
    _, day2, before, after = two_days
    assert "2405.07777" not in before
    p = after["2405.07777"]
    assert p.is_new is False
    assert p.version == 3 and p.announce_type == "replace"
    assert p.doi == "10.1007/s11263-026-02291-x"
    assert "2405.07777" not in day2.new_ids


def test_absonly_updates_metadata_keeps_version(two_days):
    _, _, before, after = two_days
    old, new = before["2611.04102"], after["2611.04102"]
    assert "70%" in old.abstract and "75%" in new.abstract and "six VQA benchmarks" in new.abstract
    assert new.version == 1
    assert new.announce_type == "absonly"
    assert new.is_new is True and new.first_seen_at == NOW1


def test_untouched_papers_stay_as_they_were(two_days):
    _, _, before, after = two_days
    for pid in ("2611.04117", "2508.11234", "hep-th/9901001"):
        assert after[pid].updated_at == NOW1
        assert after[pid].version == before[pid].version


def test_older_version_never_overwrites_newer(two_days, settings):
    # the day-1 file read again under another name carries 2611.04101v1 after v2 was stored
    report = ingest_source(settings, adhoc_spec(str(FEEDS / CV_DAY1)), now=NOW2 + timedelta(hours=1))
    assert report.status == "ok" and report.new == 0
    p = papers(settings)["2611.04101"]
    assert p.version == 2
    assert p.title == "Lesion-Aware Prompting for Few-Shot and Zero-Shot Medical Image Segmentation"


# ---------------------------------------------------------------- arXiv + HF merge


def test_arxiv_then_hf_is_one_enriched_row(settings):
    ingest_source(settings, adhoc_spec(str(FEEDS / CV_DAY1)), now=NOW1)
    hf = ingest_source(settings, adhoc_spec(str(FEEDS / "hf-daily-2026-11-18.json")), now=NOW1 + timedelta(hours=1))
    assert hf.status == "warning"                    # the withdrawn paper is skipped and counted
    assert hf.skipped == {"withdrawn": 1}
    assert hf.new == 2 and sorted(hf.new_ids) == ["2611.04388", "2611.04392"]
    assert hf.updated == 1
    rows = papers(settings)
    assert len(rows) == 11
    assert "2611.04399" not in rows                  # withdrawn
    p = rows["2611.04101"]
    assert p.hf_upvotes == 42
    assert p.ai_keywords[:2] == ["few-shot segmentation", "medical imaging"]
    assert p.code_url == "https://github.com/example-lab/lesion-prompts"
    assert p.project_url == "https://example-lab.github.io/lesion-prompts/"
    assert p.hf_url == "https://huggingface.co/papers/2611.04101"
    assert p.hf_listed_on == DAY1
    # arXiv stays the authority for text and classification
    assert p.categories == ["cs.CV", "eess.IV", "cs.LG"] and p.version == 1 and p.announce_type == "new"
    assert p.published_at == datetime(2026, 11, 18, 5, 0, tzinfo=timezone.utc)
    assert sorted(l.source for l in listings(settings, "2611.04101")) == sorted(
        [str(FEEDS / CV_DAY1), str(FEEDS / "hf-daily-2026-11-18.json")])
    hf_only = rows["2611.04388"]
    assert hf_only.title == "Self-Verifying Agents: Tool-Use Traces as Reward for LLM Reasoning"  # unwrapped
    assert "\n" not in hf_only.abstract
    assert hf_only.categories == [] and hf_only.is_new is True
    assert rows["2611.04392"].hf_upvotes is None and rows["2611.04392"].code_url is None
    run = runs(settings)[-1]
    assert (run.status, run.new, run.updated, run.skipped, run.skipped_reasons) == ("warning", 2, 1, 1,
                                                                                    {"withdrawn": 1})
    assert_consistent(settings)


def test_hf_then_arxiv_arxiv_text_wins_and_enrichment_stays(settings, feeds):
    # an HF title that differs from arXiv's must give way to arXiv's
    path = feeds / "hf-daily-2026-11-18.json"
    data = json.loads(path.read_text())
    data[0]["paper"]["title"] = "Lesion Aware Prompting (HF\n  spelling)"
    path.write_text(json.dumps(data))
    ingest_source(settings, adhoc_spec(str(path)), now=NOW1)
    p = papers(settings)["2611.04101"]
    assert p.title == "Lesion Aware Prompting (HF spelling)" and p.categories == []
    report = ingest_source(settings, adhoc_spec(str(FEEDS / CV_DAY1)), now=NOW1 + timedelta(hours=1))
    assert "2611.04101" not in report.new_ids
    p = papers(settings)["2611.04101"]
    assert p.title == "Lesion-Aware Prompting for Few-Shot Medical Image Segmentation & Beyond"
    assert p.categories == ["cs.CV", "eess.IV", "cs.LG"] and p.version == 1
    assert p.hf_upvotes == 42 and p.code_url and p.hf_listed_on == DAY1
    assert p.published_at == datetime(2026, 11, 17, 18, 59, 2, tzinfo=timezone.utc)  # first known date kept


def test_upvote_changes_update_the_row_not_duplicate_it(settings, feeds):
    path = feeds / "hf-daily-2026-11-18.json"
    spec = adhoc_spec(str(path))
    ingest_source(settings, spec, now=NOW1)
    data = json.loads(path.read_text())
    data[0]["paper"]["upvotes"] = 97
    path.write_text(json.dumps(data, indent=1))
    again = ingest_source(settings, spec, now=NOW1 + timedelta(hours=5))
    assert (again.new, again.updated, again.unchanged) == (0, 1, 2)
    rows = papers(settings)
    assert len(rows) == 3 and rows["2611.04101"].hf_upvotes == 97


# ---------------------------------------------------------------- runs, failures, consistency


def test_ingest_run_row_per_run_with_counts(settings, feeds):
    spec = adhoc_spec(str(feeds / "hostile-missing-fields.xml"))
    report = ingest_source(settings, spec, now=NOW1)
    assert report.status == "warning"
    assert report.skipped == {"missing title": 3, "missing id": 1}
    ingest_source(settings, adhoc_spec(str(feeds / "nope.xml")), now=NOW1)
    (ok_run, failed_run) = runs(settings)
    assert ok_run.source == spec.name and ok_run.location == spec.url
    assert (ok_run.status, ok_run.new, ok_run.updated, ok_run.unchanged, ok_run.skipped) == ("warning", 2, 0, 0, 4)
    assert ok_run.skipped_reasons == {"missing title": 3, "missing id": 1}
    assert ok_run.finished_at >= ok_run.started_at
    assert failed_run.status == "failed" and failed_run.new == 0
    assert len(failed_run.errors) == 1 and "nope.xml: no such file" in failed_run.errors[0]
    assert_consistent(settings)


def test_failing_sources_do_not_stop_the_next(settings, feeds, tmp_path):
    specs = write_sources(tmp_path, """\
sources:
  - name: missing
    kind: arxiv
    url: feeds/does-not-exist.xml
  - name: garbage
    kind: arxiv
    url: feeds/garbage.bin
  - name: html
    kind: auto
    url: feeds/not-a-feed.html
  - name: directory
    url: feeds
  - name: bad-scheme
    url: ftp://example.org/feed.xml
  - name: switched-off
    kind: arxiv
    url: feeds/arxiv-rss-eess.IV-2026-11-18.xml
    enabled: false
  - name: good
    kind: arxiv
    url: feeds/arxiv-atom-cs.LG-2026-11-18.xml
""")
    reports = ingest_all(settings, specs, now=NOW1)
    assert [r.source for r in reports] == ["missing", "garbage", "html", "directory", "bad-scheme", "good"]
    assert [r.status for r in reports] == ["failed"] * 5 + ["ok"]
    for r in reports[:5]:
        assert len(r.errors) == 1 and "\n" not in r.errors[0]
    assert "no such file" in reports[0].errors[0]
    assert "no feed could be read" in reports[1].errors[0]
    assert "not an RSS or Atom feed" in reports[2].errors[0]
    assert "is a directory" in reports[3].errors[0]
    assert "unsupported URL scheme" in reports[4].errors[0]
    assert sorted(papers(settings)) == ["2502.07711", "2611.04205", "2611.04211", "math/0309136"]
    assert [r.source for r in runs(settings)] == [r.source for r in reports]
    with session_scope(settings) as s:  # failed sources leave no cache state behind
        assert [st.name for st in s.scalars(select(SourceState))] == ["good"]
    assert_consistent(settings)


@pytest.mark.parametrize("text, line, fragment", [
    ("sources:\n  - name: a\n    url: x.xml\n  - name: b\n    kind: rss\n    url: y.xml\n", 4, "field 'kind'"),
    ("sources:\n  - name: a\n    url: x.xml\n\n  - name: a\n    url: y.xml\n", 5, "duplicate"),
    ("sources:\n  - name: ok\n    url: x.xml\n  - name: has space\n    url: y.xml\n", 4, "field 'name'"),
    ("sources:\n  - name: a\n    kind: arxiv\n", 2, "field 'url'"),
    ("sources:\n  - name: a\n    url: x.xml\n    colour: red\n", 2, "unknown field(s) colour"),
    ("sources:\n  - name: a\n    url: x.xml\n    enabled: maybe\n", 2, "field 'enabled'"),
    ("sources:\n  - just a string\n", 2, "must be a mapping"),
])
def test_bad_sources_yaml_names_file_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    with pytest.raises(SourcesConfigError) as err:
        load_sources(path)
    assert f"{path}:{line}: " in str(err.value)
    assert fragment in str(err.value)


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - name: a\n    url: [unclosed\n  - name: b\n")
    with pytest.raises(SourcesConfigError) as err:
        load_sources(path)
    assert str(path) in str(err.value) and "line" in str(err.value)


def test_sources_yaml_shape_errors_and_empty(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text("feeds: []\n")
    with pytest.raises(SourcesConfigError, match="top-level 'sources:' list"):
        load_sources(path)
    path.write_text("")
    assert load_sources(path) == []
    assert load_sources(tmp_path / "absent.yaml") == []


def test_malformed_feed_leaves_database_as_it_was(settings, feeds):
    good = ingest_source(settings, adhoc_spec(str(FEEDS / CV_DAY1)), now=NOW1)
    assert good.status == "ok"
    before = {pid: (p.version, p.updated_at, p.title) for pid, p in papers(settings).items()}
    n_listings = len(listings(settings))
    for name in ("garbage.bin", "not-a-feed.html"):
        report = ingest_source(settings, adhoc_spec(str(feeds / name)), now=NOW2)
        assert report.status == "failed" and report.new == 0
    after = {pid: (p.version, p.updated_at, p.title) for pid, p in papers(settings).items()}
    assert after == before and len(listings(settings)) == n_listings
    assert_consistent(settings)


def test_a_record_the_database_rejects_rolls_back_the_whole_source(settings, feeds):
    """A failure in the middle of an upsert leaves no half-written rows and no cache state."""
    from digest.store.db import get_engine

    path = feeds / "hf-daily-2026-11-18.json"
    victim = json.loads(path.read_text())[1]["paper"]["id"]
    with get_engine(settings.database_url).begin() as conn:  # the database itself refuses one row
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER reject_one BEFORE INSERT ON papers WHEN NEW.id = '{victim}' "
                "BEGIN SELECT RAISE(ABORT, 'rejected by test trigger'); END")
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION reject_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.id = '{victim}' THEN RAISE EXCEPTION 'rejected by test trigger'; END IF; "
                "RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER reject_one BEFORE INSERT ON papers "
                                 "FOR EACH ROW EXECUTE FUNCTION reject_one()")
    spec = adhoc_spec(str(path))
    report = ingest_source(settings, spec, now=NOW1)
    assert report.status == "failed"
    assert len(report.errors) == 1 and "\n" not in report.errors[0]
    assert papers(settings) == {} and listings(settings) == []
    with session_scope(settings) as s:
        assert s.get(SourceState, spec.name) is None
    assert runs(settings)[-1].status == "failed"
    assert_consistent(settings)


def test_out_of_range_upvotes_do_not_sink_the_source(settings, feeds):
    path = feeds / "hf-daily-2026-11-18.json"
    data = json.loads(path.read_text())
    data[1]["paper"]["upvotes"] = 1e30
    path.write_text(json.dumps(data))
    report = ingest_source(settings, adhoc_spec(str(path)), now=NOW1)
    assert report.status != "failed"
    assert "2611.04101" in papers(settings)


def test_hostile_feeds_store_plain_text_only(settings):
    for name in ("hostile-script.xml", "hf-hostile.json", "hostile-cp1252-declared-utf8.xml",
                 "hostile-missing-fields.xml", "hostile-truncated.xml"):
        report = ingest_source(settings, adhoc_spec(str(FEEDS / name)), now=NOW1)
        assert report.status == "warning", (name, report)
    for p in papers(settings).values():
        for value in (p.title, p.abstract, *p.authors):
            assert "<" not in value and "javascript" not in value.lower(), value
        for url in (p.abs_url, p.pdf_url, p.hf_url, p.code_url, p.project_url):
            assert url is None or url.startswith(("https://", "http://")), url
    assert papers(settings)["2611.04701"].authors[0] == "Jürgen Müller"
    assert_consistent(settings)


def test_truncated_feed_through_ingest_keeps_entries_and_records_warning(settings):
    report = ingest_source(settings, adhoc_spec(str(FEEDS / "hostile-truncated.xml")), now=NOW1)
    assert report.status == "warning"
    assert any("not well-formed" in w for w in report.warnings)
    rows = papers(settings)
    assert {"2611.04101", "2611.04102", "2611.04117"} <= set(rows)
    assert any("not well-formed" in e for e in runs(settings)[-1].errors)
    assert_consistent(settings)


def test_gigantic_entry_is_stored_capped(settings, tmp_path):
    huge = "word " * 450_000  # about 2.2 MB
    body = (FEEDS / "arxiv-rss-eess.IV-2026-11-18.xml").read_text(encoding="utf-8").replace(
        "Hyperspectral cubes are large", huge + "Hyperspectral cubes are large")
    path = tmp_path / "giant.xml"
    path.write_text(body, encoding="utf-8")
    assert path.stat().st_size > 2_000_000
    report = ingest_source(settings, adhoc_spec(str(path)), now=NOW1)
    assert report.status == "ok" and report.new == 3
    p = papers(settings)["2611.04160"]
    assert len(p.abstract) <= 20_001 and p.abstract.endswith("…")


def test_file_over_the_size_limit_is_refused(tmp_path, db_url):
    settings = Settings(database_url=db_url, max_feed_bytes=1000)
    report = ingest_source(settings, adhoc_spec(str(FEEDS / CV_DAY1)))
    assert report.status == "failed"
    assert "1000-byte limit" in report.errors[0]
    assert papers(settings) == {}


def test_file_url_and_relative_path(settings, feeds, monkeypatch):
    r1 = ingest_source(settings, adhoc_spec((feeds / "arxiv-atom-cs.LG-2026-11-18.xml").as_uri()), now=NOW1)
    assert r1.status == "ok" and r1.new == 2
    monkeypatch.chdir(feeds)
    r2 = ingest_source(settings, adhoc_spec("arxiv-rss-eess.IV-2026-11-18.xml"), now=NOW1)
    assert r2.status == "ok" and r2.new == 3


def test_progress_callback_and_kind_override(settings):
    seen: list[str] = []
    spec = adhoc_spec(str(FEEDS / "hf-daily-2026-11-18.json"), kind="arxiv")  # wrong kind on purpose
    report = ingest_source(settings, spec, on_progress=seen.append)
    assert report.status == "failed" and papers(settings) == {}
    assert seen[0].startswith("fetching") and seen[-1].startswith("parsing")


# ---------------------------------------------------------------- the bundled quick-start samples

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_bundled_samples_ingest_and_merge(settings):
    order = ["arxiv-cs.CV+eess.IV-rss-day1.xml", "arxiv-cs.LG+cs.CL-atom-day1.xml", "hf-daily-day1.json",
             "arxiv-cs.CV+eess.IV-rss-day2.xml", "hf-daily-day2.json"]
    got = {}
    for name in order:
        report = ingest_source(settings, adhoc_spec(str(SAMPLES / name)))
        assert report.status == "ok", (name, report)
        got[name] = (report.new, report.updated)
    assert got == {
        "arxiv-cs.CV+eess.IV-rss-day1.xml": (21, 4),   # 25 items: 4 are replace/replace-cross/absonly
        "arxiv-cs.LG+cs.CL-atom-day1.xml": (15, 5),    # 3 papers also in the cs.CV feed, 2 replacements
        "hf-daily-day1.json": (3, 7),                  # 7 of 10 are arXiv papers already stored
        "arxiv-cs.CV+eess.IV-rss-day2.xml": (12, 4),   # 4 replace(-cross) entries of day-1 papers
        "hf-daily-day2.json": (3, 5),
    }
    rows = papers(settings)
    assert len(rows) == 60
    assert rows["2611.07012"].version == 2 and rows["2611.07012"].hf_upvotes == 12
    assert rows["2611.07012"].code_url == "https://github.com/lindgren-lab/boundarymix"
    assert rows["2611.06903"].title == "Process Rewards without Human Labels for Mathematical Reasoning"
    assert all("\n" not in p.title for p in rows.values())
    assert_consistent(settings)
