"""fetch() and ingest_source() against a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import socket
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.store.db import session_scope
from digest.sources.fetch import FetchError, fetch
from digest.sources.ingest import adhoc_spec, ingest_source
from digest.store.models import IngestRun, Paper, SourceState
from digest.store.settings import Settings
from digest.sources.config import SourceSpec

from tests.http_server import Reply, ScriptedServer, conditional

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
RSS = (FEEDS / "arxiv-rss-cs.CV-2026-11-18.xml").read_bytes()
HF = (FEEDS / "hf-daily-2026-11-18.json").read_bytes()
RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}
ATOM_TYPE = {"Content-Type": "application/atom+xml"}
JSON_TYPE = {"Content-Type": "application/json; charset=utf-8"}
NOW = datetime(2026, 11, 18, 6, 30, tzinfo=timezone.utc)
LAST_MODIFIED = "Wed, 18 Nov 2026 05:31:12 GMT"


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture
def settings(db_url) -> Settings:
    return Settings(database_url=db_url, http_backoff=0.01, http_timeout=1.0, http_retries=1)


def runs(settings) -> list[IngestRun]:
    with session_scope(settings) as s:
        return list(s.scalars(select(IngestRun).order_by(IngestRun.id)))


def paper_count(settings) -> int:
    with session_scope(settings) as s:
        return len(list(s.scalars(select(Paper.id))))


# ---------------------------------------------------------------- plain fetches


def test_ok_fetch_returns_body_and_validators(server, settings):
    url = server.script("/rss/cs.CV", Reply(200, RSS, {**RSS_TYPE, "ETag": '"abc"', "Last-Modified": LAST_MODIFIED}))
    result = fetch(url, settings, expect="arxiv")
    assert result.body == RSS
    assert (result.status, result.not_modified) == (200, False)
    assert result.etag == '"abc"' and result.last_modified == LAST_MODIFIED
    assert result.content_type.startswith("application/rss+xml")


def test_user_agent_and_no_validators_on_first_request(server, settings):
    url = server.script("/rss/cs.CV", Reply(200, RSS, RSS_TYPE))
    fetch(url, settings)
    (seen,) = server.requests("/rss/cs.CV")
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["user-agent"] == settings.user_agent
    assert headers["user-agent"].startswith("digest/")
    assert "if-none-match" not in headers and "if-modified-since" not in headers
    assert "gzip" in headers.get("accept-encoding", "")


def test_custom_user_agent_is_sent(server, tmp_path, db_url):
    settings = Settings(database_url=db_url, user_agent="lab-digest/2.0 (ops@example.org)")
    url = server.script("/f", Reply(200, RSS, RSS_TYPE))
    fetch(url, settings)
    assert server.requests("/f")[0].headers["User-Agent"] == "lab-digest/2.0 (ops@example.org)"


def test_gzip_body_is_decoded(server, settings):
    url = server.script("/gz", Reply(200, RSS, RSS_TYPE, gzip=True))
    assert fetch(url, settings, expect="arxiv").body == RSS


def test_redirect_is_followed(server, settings):
    server.script("/new-home", Reply(200, HF, JSON_TYPE))
    url = server.script("/old-home", Reply(301, b"", {"Location": server.url("/new-home")}))
    assert fetch(url, settings, expect="hf-daily").body == HF


# ---------------------------------------------------------------- conditional GET


def test_etag_conditional_request_gives_304(server, settings):
    url = server.script("/rss/cs.CV", conditional(RSS, etag='"day1"', last_modified=LAST_MODIFIED))
    first = fetch(url, settings)
    second = fetch(url, settings, etag=first.etag, last_modified=first.last_modified)
    assert first.status == 200 and first.etag == '"day1"'
    assert second.not_modified and second.status == 304 and second.body == b""
    sent = server.requests("/rss/cs.CV")[1].headers
    assert sent["If-None-Match"] == '"day1"'
    assert sent["If-Modified-Since"] == LAST_MODIFIED


def test_ingest_sends_validators_and_reports_not_modified(server, settings):
    url = server.script("/rss/cs.CV", conditional(RSS, etag='"day1"', last_modified=LAST_MODIFIED))
    spec = SourceSpec(name="arxiv-cs.CV", kind="arxiv", url=url)
    first = ingest_source(settings, spec, now=NOW)
    assert first.status == "ok" and first.new == 4
    with session_scope(settings) as s:
        state = s.get(SourceState, "arxiv-cs.CV")
        assert (state.url, state.etag, state.last_modified) == (url, '"day1"', LAST_MODIFIED)
    second = ingest_source(settings, spec, now=NOW.replace(hour=7))
    assert second.status == "not-modified"
    assert (second.new, second.updated, second.unchanged) == (0, 0, 0)
    first_req, second_req = server.requests("/rss/cs.CV")
    assert "If-None-Match" not in first_req.headers
    assert second_req.headers.get("If-None-Match") == '"day1"'   # the conditional request was really sent
    assert second_req.headers.get("If-Modified-Since") == LAST_MODIFIED
    assert [r.status for r in runs(settings)] == ["ok", "not-modified"]
    with session_scope(settings) as s:
        assert s.get(SourceState, "arxiv-cs.CV").last_fetch_at == NOW.replace(hour=7)
    assert paper_count(settings) == 9


def test_last_modified_only_source(server, settings):
    url = server.script("/hf", conditional(HF, last_modified=LAST_MODIFIED, content_type="application/json"))
    spec = SourceSpec(name="hf", kind="hf-daily", url=url)
    assert ingest_source(settings, spec, now=NOW).status == "warning"  # one withdrawn paper skipped
    assert ingest_source(settings, spec, now=NOW).status == "not-modified"
    assert server.requests("/hf")[1].headers.get("If-Modified-Since") == LAST_MODIFIED


def test_same_body_without_validators_is_not_modified_by_hash(server, settings):
    url = server.script("/plain", Reply(200, RSS, RSS_TYPE))
    spec = SourceSpec(name="plain", kind="arxiv", url=url)
    assert ingest_source(settings, spec, now=NOW).new == 4
    again = ingest_source(settings, spec, now=NOW)
    assert again.status == "not-modified"
    assert len(server.requests("/plain")) == 2


def test_date_placeholder_reaches_the_server(server, settings):
    server.script("/api/daily_papers", Reply(200, HF, JSON_TYPE))
    spec = SourceSpec(name="hf-daily", kind="hf-daily", url=server.url("/api/daily_papers?date={date}"))
    report = ingest_source(settings, spec, now=NOW, today=date(2026, 11, 18))
    assert report.new == 3
    assert server.requests("/api/daily_papers")[0].query == "date=2026-11-18"


# ---------------------------------------------------------------- errors and retries


def test_500_then_200_is_retried_once_and_succeeds(server, settings):
    url = server.script("/flaky", Reply(500, b"oops"), Reply(200, RSS, RSS_TYPE))
    result = fetch(url, settings, expect="arxiv")
    assert result.body == RSS
    assert len(server.requests("/flaky")) == 2


def test_ingest_over_a_flaky_server(server, settings):
    url = server.script("/flaky", Reply(503, b""), Reply(200, RSS, RSS_TYPE))
    report = ingest_source(settings, SourceSpec(name="cv", kind="arxiv", url=url), now=NOW)
    assert report.status == "ok" and report.new == 4


def test_429_is_retried(server, settings):
    url = server.script("/busy", Reply(429, b"slow down"), Reply(200, RSS, RSS_TYPE))
    assert fetch(url, settings).body == RSS


def test_always_500_fails_after_retries_with_one_line(server, tmp_path, db_url):
    settings = Settings(database_url=db_url, http_backoff=0.01, http_retries=2)
    url = server.script("/down", Reply(500, b"Internal Server Error"))
    with pytest.raises(FetchError) as err:
        fetch(url, settings)
    message = str(err.value)
    assert "\n" not in message
    assert url in message and "HTTP 500" in message and "gave up after 3 attempts" in message
    assert len(server.requests("/down")) == 3
    report = ingest_source(settings, SourceSpec(name="down", kind="arxiv", url=url), now=NOW)
    assert report.status == "failed"
    assert len(report.errors) == 1 and "HTTP 500" in report.errors[0]
    assert paper_count(settings) == 0
    assert runs(settings)[-1].status == "failed"


def test_backoff_doubles_between_attempts(server, tmp_path, db_url):
    settings = Settings(database_url=db_url, http_backoff=0.1, http_retries=2)
    url = server.script("/down", Reply(502))
    with pytest.raises(FetchError):
        fetch(url, settings)
    times = [r.at for r in server.requests("/down")]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19


def test_404_is_not_retried(server, settings):
    url = server.script("/gone", Reply(404, b"no"))
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(url, settings)
    assert len(server.requests("/gone")) == 1


def test_slow_response_hits_the_timeout(server, tmp_path, db_url):
    settings = Settings(database_url=db_url, http_timeout=0.5, http_retries=1,
                        http_backoff=0.01)
    url = server.script("/slow", Reply(200, RSS, RSS_TYPE, delay=3.0))
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        fetch(url, settings)
    elapsed = time.monotonic() - started
    assert "timed out after 0.5 s" in str(err.value) and "gave up after 2 attempts" in str(err.value)
    assert elapsed < 2.5
    assert len(server.requests("/slow")) == 2


def test_trickling_body_hits_the_timeout(server, tmp_path, db_url):
    settings = Settings(database_url=db_url, http_timeout=0.5, http_retries=0)
    url = server.script("/trickle", Reply(200, RSS, RSS_TYPE, chunk_delay=1.0))
    with pytest.raises(FetchError, match="timed out"):
        fetch(url, settings)


def test_connection_dropped_mid_body_is_retried(server, settings):
    url = server.script("/cut", Reply(200, RSS[:500], RSS_TYPE, declared_length=len(RSS)), Reply(200, RSS, RSS_TYPE))
    assert fetch(url, settings).body == RSS
    assert len(server.requests("/cut")) == 2


def test_connection_refused_is_one_clear_line(settings):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError) as err:
        fetch(f"http://127.0.0.1:{port}/feed", settings)
    assert "connection failed" in str(err.value) and "\n" not in str(err.value)


def test_oversize_declared_body_is_rejected(server, tmp_path, db_url):
    settings = Settings(database_url=db_url, max_feed_bytes=1000)
    url = server.script("/big", Reply(200, RSS, RSS_TYPE))
    with pytest.raises(FetchError) as err:
        fetch(url, settings)
    assert f"{len(RSS)} bytes is over the 1000-byte limit" in str(err.value)
    assert len(server.requests("/big")) == 1  # not retried


def test_oversize_streamed_body_is_rejected(server, tmp_path, db_url):
    settings = Settings(database_url=db_url, max_feed_bytes=1000)
    url = server.script("/stream", Reply(200, RSS, RSS_TYPE, send_length=False))
    with pytest.raises(FetchError, match="over the 1000-byte limit"):
        fetch(url, settings)


def test_gzip_bomb_is_rejected_by_decoded_size(server, tmp_path, db_url):
    settings = Settings(database_url=db_url, max_feed_bytes=1_000_000)
    bomb = b"<rss>" + b" " * 20_000_000
    url = server.script("/bomb", Reply(200, bomb, RSS_TYPE, gzip=True))
    with pytest.raises(FetchError, match="over the 1000000-byte limit"):
        fetch(url, settings)


def test_oversize_through_ingest(server, tmp_path, db_url):
    settings = Settings(database_url=db_url, max_feed_bytes=1000)
    url = server.script("/big", Reply(200, RSS, RSS_TYPE))
    report = ingest_source(settings, SourceSpec(name="big", kind="arxiv", url=url))
    assert report.status == "failed" and "1000-byte limit" in report.errors[0]


@pytest.mark.parametrize("content_type, kind", [
    ("text/html; charset=utf-8", "arxiv"),
    ("application/json", "arxiv"),
    ("text/html", "hf-daily"),
    ("application/rss+xml", "hf-daily"),
    ("image/png", "arxiv"),
])
def test_wrong_content_type_is_rejected_clearly(server, settings, content_type, kind):
    url = server.script("/typed", Reply(200, b"<html><body>Please enable JavaScript</body></html>",
                                        {"Content-Type": content_type}))
    with pytest.raises(FetchError) as err:
        fetch(url, settings, expect=kind)
    message = str(err.value)
    base = content_type.split(";")[0]
    assert f"wrong content type '{base}' for a {kind} source" in message
    assert ("expected XML" if kind == "arxiv" else "expected JSON") in message
    assert len(server.requests("/typed")) == 1


@pytest.mark.parametrize("content_type, kind", [
    ("application/rss+xml", "arxiv"),
    ("application/atom+xml; charset=utf-8", "arxiv"),
    ("text/xml", "arxiv"),
    ("application/xml", "arxiv"),
    ("text/plain", "arxiv"),
    ("application/json", "hf-daily"),
    ("text/html", "auto"),
    ("text/html", None),
])
def test_acceptable_content_types(server, settings, content_type, kind):
    url = server.script("/typed", Reply(200, RSS, {"Content-Type": content_type}))
    assert fetch(url, settings, expect=kind).body == RSS


def test_html_for_an_arxiv_source_fails_the_ingest(server, settings):
    url = server.script("/login", Reply(200, b"<html>sign in</html>", {"Content-Type": "text/html"}))
    report = ingest_source(settings, SourceSpec(name="cv", kind="arxiv", url=url))
    assert report.status == "failed"
    assert report.errors == [f"{url}: wrong content type 'text/html' for a arxiv source (expected XML)"]


def test_adhoc_http_source_with_auto_kind_uses_content_type(server, settings):
    url = server.script("/papers", Reply(200, HF, JSON_TYPE))
    report = ingest_source(settings, adhoc_spec(url), now=NOW)
    assert report.status == "warning" and report.new == 3 and report.skipped == {"withdrawn": 1}


def test_unsupported_scheme(settings):
    with pytest.raises(FetchError, match="unsupported URL scheme"):
        fetch("ftp://example.org/feed.xml", settings)


@pytest.mark.parametrize("where", ["body", "headers"])
def test_drip_feed_is_given_up_at_the_deadline(server, db_url, where):
    """A server sending one byte at a time never trips the read timeout (3 s); the fetch still
    ends at its total deadline (4 s), not after the whole trickle (80+ s)."""
    import time

    body = b"<rss>" + b"x" * 400 + b"</rss>"
    url = server.script("/drip.xml", Reply(200, body, {"Content-Type": "application/rss+xml"}, drip=0.2,
                                           drip_body_only=where == "body"))
    settings = Settings(database_url=db_url, http_timeout=3.0, http_deadline=4.0, http_retries=2, http_backoff=0.01)
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch(url, settings)
    took = time.monotonic() - started
    assert "not fetched within 4 s (DIGEST_HTTP_DEADLINE)" in str(info.value)
    assert took < 4.0 + 3.0               # the whole trickle would take 80+ s
    assert len(server.requests("/drip.xml")) == 1   # no retry after the deadline
