"""The daily send over a real SMTP server: the ledger, faults, crashes, concurrent senders."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from digest import clock as app_clock
from digest.store.db import session_factory
from digest.store.models import Digest, Subscriber
from digest.pipeline import send_now
from digest.store.settings import Settings, reset_settings_cache
from tests.factories import add_paper, add_subscriber, wait_for
from tests.smtp_server import smtp_sink

D1, D2 = date(2026, 11, 18), date(2026, 11, 19)


@pytest.fixture
def sink():
    yield from smtp_sink()


@pytest.fixture
def smtp_settings(settings, sink, monkeypatch) -> Settings:
    monkeypatch.setenv("DIGEST_DELIVERY", sink.url)
    monkeypatch.setenv("DIGEST_SMTP_RETRIES", "2")
    reset_settings_cache()
    return Settings()


def _seed_papers(settings, prefix: str, n: int, *, hours_ago: float = 1.0, hostile: bool = False):
    seen = app_clock.now() - timedelta(hours=hours_ago)
    with session_factory(settings)() as s:
        for i in range(n):
            title = f"Tumor segmentation with a U-Net, study {prefix}{i}"
            if hostile and i == 0:
                title = "<script>alert('x')</script> Tumor segmentation \u202eevil\u202c 🧠 with U-Net"
            big = hostile and i == 0  # a 1 MB abstract (ingest caps them; storage must not care)
            add_paper(s, f"2611.{prefix}{i:03d}", title=title, seen=seen,
                      abstract="We study medical image segmentation of tumours in CT. " * (20000 if big else 1))
        s.commit()


def _subscribers(settings, emails, topics=("medical-segmentation",)):
    with session_factory(settings)() as s:
        for email in emails:
            add_subscriber(s, email, list(topics), name=f"Reader {email.split('@')[0]}")
        s.commit()


def _statuses(settings):
    with session_factory(settings)() as s:
        return {(d.subscriber_id, d.edition): d.status for d in s.scalars(select(Digest))}


def test_two_day_scenario_over_smtp(smtp_settings, sink, clock):
    _subscribers(smtp_settings, ["a@example.org", "b@example.org", "c@example.org"])
    _seed_papers(smtp_settings, "01", 3, hours_ago=30)
    yesterday = app_clock.now() - timedelta(hours=24)
    report = send_now(smtp_settings, ingest=False, edition=D1, now=yesterday)
    assert (report.plan.planned, report.send.sent, report.send.failed) == (3, 3, 0)
    assert sorted(sink.delivered_to()) == ["a@example.org", "b@example.org", "c@example.org"]
    msg = sink.messages[0].parsed()
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://digest.example.org/unsubscribe/" in msg["List-Unsubscribe"]
    for raw in sink.messages:
        assert all(len(line) <= 998 for line in raw.data.split(b"\r\n"))
    day1_text = msg.get_body(("plain",)).get_content()
    assert "study 010" in day1_text

    # day 2: new listings arrive; the digest holds only them
    _seed_papers(smtp_settings, "02", 2, hours_ago=0.5)
    report = send_now(smtp_settings, ingest=False, edition=D2)
    assert report.send.sent == 3
    day2 = [m.parsed() for m in sink.messages[3:]]
    for m in day2:
        text = m.get_body(("plain",)).get_content()
        assert "study 020" in text and "study 021" in text and "study 01" not in text
        assert m["Message-ID"] != msg["Message-ID"]
    # rerunning day 2 sends nothing
    again = send_now(smtp_settings, ingest=False, edition=D2)
    assert (again.plan.planned, again.send.sent) == (0, 0)
    assert len(sink.messages) == 6
    with session_factory(smtp_settings)() as s:
        assert s.scalar(select(Digest).where(Digest.edition == D2)).status == "sent"


def test_temporary_failure_is_retried_once_delivered(smtp_settings, sink):
    _subscribers(smtp_settings, ["a@example.org"])
    _seed_papers(smtp_settings, "03", 1)
    sink.script_rcpt("a@example.org", "451 4.3.0 try again later")
    report = send_now(smtp_settings, ingest=False, edition=D1)
    assert report.send.sent == 1 and report.send.failed == 0
    assert sink.delivered_to() == ["a@example.org"] and sink.rcpt_attempts["a@example.org"] == 2


def test_refused_recipient_fails_alone_and_exit_code_is_nonzero(smtp_settings, sink):
    _subscribers(smtp_settings, ["a@example.org", "bad@example.org", "c@example.org"])
    _seed_papers(smtp_settings, "04", 2)
    sink.refuse_rcpt("bad@example.org", "550 5.1.1 <bad@example.org>: user unknown")
    out = subprocess.run([sys.executable, "-m", "digest.cli", "send-now", "--no-ingest", "--edition", "2026-11-18"],
                         capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "550 5.1.1" in out.stderr and "Traceback" not in out.stderr
    assert sorted(sink.delivered_to()) == ["a@example.org", "c@example.org"]
    with session_factory(smtp_settings)() as s:
        bad = s.scalar(select(Subscriber).where(Subscriber.email == "bad@example.org"))
        digest = s.scalar(select(Digest).where(Digest.subscriber_id == bad.id))
        assert digest.status == "failed" and "550 5.1.1" in digest.last_error
        assert bad.consecutive_failures == 1 and bad.status == "active"


def test_repeated_permanent_failures_bounce_the_subscriber(smtp_settings, sink, monkeypatch):
    monkeypatch.setenv("DIGEST_BOUNCE_AFTER", "2")
    reset_settings_cache()
    s2 = Settings()
    _subscribers(s2, ["bad@example.org"])
    sink.refuse_rcpt("bad@example.org")
    _seed_papers(s2, "05", 1, hours_ago=30)
    send_now(s2, ingest=False, edition=D1)
    _seed_papers(s2, "06", 1, hours_ago=0.5)
    report = send_now(s2, ingest=False, edition=D2)
    assert report.send.bounced == 1
    with session_factory(s2)() as s:
        assert s.scalar(select(Subscriber.status)) == "bounced"
    _seed_papers(s2, "07", 1, hours_ago=0.1)
    assert send_now(s2, ingest=False, edition=date(2026, 11, 20)).plan.planned == 0


def test_dropped_connection_mid_batch_loses_nothing(smtp_settings, sink):
    emails = [f"u{i}@example.org" for i in range(7)]
    _subscribers(smtp_settings, emails)
    _seed_papers(smtp_settings, "08", 1)
    sink.drop_after = 3
    report = send_now(smtp_settings, ingest=False, edition=D1)
    assert report.send.sent == 7
    assert sorted(sink.delivered_to()) == sorted(emails)
    assert sink.connections >= 3


def test_hostile_content_is_escaped_and_within_budget(smtp_settings, sink):
    with session_factory(smtp_settings)() as s:
        add_subscriber(s, "h@example.org", ["medical-segmentation"], name="Eve\r\nBcc: victim@example.org")
        s.commit()
    _seed_papers(smtp_settings, "09", 30, hostile=True)
    report = send_now(smtp_settings, ingest=False, edition=D1)
    assert report.send.sent == 1
    raw = sink.messages[0]
    assert raw.rcpt_tos == ["h@example.org"]
    msg = raw.parsed()
    assert "victim" not in (msg["Bcc"] or "") and msg["Bcc"] is None
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert len(html.encode("utf-8")) < 100_000


def _sender(env, edition="2026-11-18"):
    return subprocess.Popen([sys.executable, "-m", "digest.cli", "send-now", "--no-ingest", "--edition", edition],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_senders_never_send_twice(smtp_settings, sink):
    emails = [f"c{i}@example.org" for i in range(40)]
    _subscribers(smtp_settings, emails)
    _seed_papers(smtp_settings, "10", 2)
    env = os.environ.copy()
    procs = [_sender(env), _sender(env)]
    for p in procs:
        p.communicate(timeout=180)
        assert p.returncode == 0
    counts = Counter(sink.delivered_to())
    assert sorted(counts) == sorted(emails) and set(counts.values()) == {1}
    assert set(_statuses(smtp_settings).values()) == {"sent"}


def test_sender_killed_mid_run_then_restarted(smtp_settings, sink, monkeypatch):
    emails = [f"k{i}@example.org" for i in range(40)]
    _subscribers(smtp_settings, emails)
    _seed_papers(smtp_settings, "11", 2)
    env = os.environ.copy()
    env["DIGEST_SMTP_RATE"] = "20"  # slow enough to be killed in the middle
    proc = _sender(env)
    deadline = time.monotonic() + 60
    while len(sink.messages) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    received_before = len(sink.messages)
    assert 10 <= received_before < 40
    statuses = Counter(_statuses(smtp_settings).values())
    assert statuses["sent"] >= received_before - 1
    # restart: the rows left 'sending' by the dead process are taken over at once
    env["DIGEST_SMTP_RATE"] = "0"
    rerun = _sender(env)
    out, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err
    counts = Counter(sink.delivered_to())
    assert sorted(counts) == sorted(emails)                       # no loss
    assert sum(n - 1 for n in counts.values()) <= 1               # at most one duplicate per crash
    assert set(_statuses(smtp_settings).values()) == {"sent"}


def test_deferred_digest_waits_for_its_retry_time(smtp_settings, sink, clock):
    _subscribers(smtp_settings, ["grey@example.org"])
    _seed_papers(smtp_settings, "07", 1)
    for _ in range(3):                      # greylisted: 451 to every attempt of this run
        sink.script_rcpt("grey@example.org", "451 4.7.1 greylisted, try later", "451 4.7.1 greylisted",
                         "451 4.7.1 greylisted")
    first = send_now(smtp_settings, ingest=False, edition=D1)
    assert first.send.deferred == 1 and sink.delivered_to() == []
    again = send_now(smtp_settings, ingest=False, edition=D1)   # too early: not even tried
    assert (again.send.sent, again.send.deferred) == (0, 0)
    with session_factory(smtp_settings)() as s:
        d = s.scalars(select(Digest)).one()
        assert d.status == "deferred" and d.attempts == 1
        assert d.lease_until > app_clock.now() + timedelta(minutes=1)
        d.lease_until = app_clock.now() - timedelta(seconds=1)   # the retry time came
        s.commit()
    later = send_now(smtp_settings, ingest=False, edition=D1)
    assert later.send.sent == 1 and sink.delivered_to() == ["grey@example.org"]


def test_a_dead_local_claimer_of_another_edition_does_not_spin_the_sender(smtp_settings, sink):
    from digest.delivery.claim import reclaim_dead_local, worker_id

    _subscribers(smtp_settings, ["a@example.org"])
    _seed_papers(smtp_settings, "08", 1)
    send_now(smtp_settings, ingest=False, edition=D1, dry_run=False)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host, _, nonce, space = worker_id().split(":")
    claimer = f"{host}:{int(dead.stdout)}:{nonce}:{space}"
    now = app_clock.now()
    with session_factory(smtp_settings)() as s:
        d = s.scalars(select(Digest)).one()
        d.status, d.claimed_by, d.lease_until = "sending", claimer, now + timedelta(minutes=5)
        s.commit()
        assert reclaim_dead_local(s, now) == 1      # its lease is expired at once ...
        assert reclaim_dead_local(s, now) == 0      # ... and only once
    # a send restricted to another edition finishes (the D1 row is not its to take)
    report = send_now(smtp_settings, ingest=False, edition=D2)
    assert report.send.failed == 0


def test_claimers_in_another_pid_space_are_never_judged_dead(smtp_settings):
    from digest.delivery.claim import reclaim_dead_local, worker_id

    _subscribers(smtp_settings, ["a@example.org"])
    _seed_papers(smtp_settings, "09", 1)
    send_now(smtp_settings, ingest=False, edition=D1)
    with session_factory(smtp_settings)() as s:
        host, _, nonce, _space = worker_id().split(":")
        d = s.scalars(select(Digest)).one()
        # same hostname, a PID that does not exist here, another container's PID namespace
        d.status, d.claimed_by = "sending", f"{host}:999999:{nonce}:othrspce"
        d.lease_until = app_clock.now() + timedelta(minutes=5)
        s.commit()
        assert reclaim_dead_local(s, app_clock.now()) == 0


def test_a_killed_but_unreaped_local_claimer_counts_as_dead(smtp_settings, sink):
    from digest.delivery.claim import reclaim_dead_local, worker_id

    _subscribers(smtp_settings, ["a@example.org"])
    _seed_papers(smtp_settings, "10", 1)
    send_now(smtp_settings, ingest=False, edition=D1)
    zombie = subprocess.Popen(["sleep", "60"])
    try:
        zombie.kill()
        # killed; not waited for: a zombie, pid still taken (state Z once the kernel has killed it)
        assert wait_for(lambda: open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 30)
        host, _, nonce, space = worker_id().split(":")
        now = app_clock.now()
        with session_factory(smtp_settings)() as s:
            d = s.scalars(select(Digest)).one()
            d.status, d.claimed_by = "sending", f"{host}:{zombie.pid}:{nonce}:{space}"
            d.lease_until = now + timedelta(minutes=5)
            s.commit()
            assert reclaim_dead_local(s, now) == 1
    finally:
        zombie.wait()


def test_each_sent_record_is_committed_before_the_next_message(smtp_settings, sink):
    """The `sent` record of a digest rides with the next message's in-flight mark: when any
    message goes out, every earlier one is already recorded `sent` (seen from another
    connection) and this one is marked in flight; the last is recorded when the run ends."""
    from digest.delivery.backends import open_backend

    emails = [f"r{i}@example.org" for i in range(5)]
    _subscribers(smtp_settings, emails)
    _seed_papers(smtp_settings, "09", 2)
    seen: list[dict] = []

    class Checking:                      # the real SMTP backend, looked at before each send
        def __init__(self, inner):
            self.inner = inner
            self.waits_on_network = inner.waits_on_network

        def send(self, msg):
            with session_factory(smtp_settings)() as s:
                rows = s.execute(select(Subscriber.email, Digest.status, Digest.in_flight)
                                 .join(Subscriber, Subscriber.id == Digest.subscriber_id)).all()
            seen.append({email: (status, in_flight) for email, status, in_flight in rows})
            seen[-1]["to"] = msg.recipients[0]
            return self.inner.send(msg)

    with open_backend(smtp_settings) as inner:
        report = send_now(smtp_settings, ingest=False, edition=D1, backend=Checking(inner))
    assert report.send.sent == 5 and len(seen) == 5
    done: list[str] = []
    for state in seen:
        to = state.pop("to")
        assert state[to] == ("sending", True)
        assert all(state[e] == ("sent", False) for e in done)
        done.append(to)
    assert set(_statuses(smtp_settings).values()) == {"sent"}
    assert sorted(sink.delivered_to()) == emails


def _hold_write_lock(engine):
    """Another connection holding the write lock on the digests table until it rolls back."""
    conn = engine.raw_connection()
    cur = conn.cursor()
    if engine.dialect.name == "sqlite":
        cur.execute("BEGIN IMMEDIATE")
    else:
        cur.execute("LOCK TABLE digests IN EXCLUSIVE MODE")
    return conn


def _wait_briefly_for_locks(ledger) -> None:
    """The ledger's connection gives up on a held lock after 50 ms instead of 30 s."""
    if ledger.engine.dialect.name == "sqlite":
        ledger.cursor.execute("PRAGMA busy_timeout=50")
    else:
        ledger.cursor.execute("SET lock_timeout = '50ms'")
        ledger.conn.commit()


def test_a_sent_record_survives_a_database_error_on_the_next_in_flight_mark(settings):
    """D1 went out; its `sent` record waits to ride with D2's in-flight mark. The database
    refuses that write once (another connection holds the lock past the timeout; then the
    connection drops): the record is not lost; it is written with the next transaction, and at
    the latest when the loop ends. Errors come out as SQLAlchemy's, as from a session."""
    from sqlalchemy.exc import OperationalError

    from digest.delivery.send import _Ledger, _finish, _take_off

    _subscribers(settings, ["a@example.org", "b@example.org", "c@example.org"])
    now = app_clock.now()
    with session_factory(settings)() as s:
        for sub in s.scalars(select(Subscriber)):
            s.add(Digest(subscriber_id=sub.id, edition=now.date(), status="sending", claimed_by="w:1", planned_at=now))
        s.commit()
        d1, d2, d3 = s.scalars(select(Digest.id).order_by(Digest.id)).all()
    engine = session_factory(settings)().get_bind()

    def status(did):
        with session_factory(settings)() as s:
            return s.get(Digest, did).status

    with _Ledger(engine) as ledger:
        _wait_briefly_for_locks(ledger)
        assert _take_off(ledger, d1, "w:1")
        _finish(ledger, d1, "w:1", status="sent", subject="S", unconfirmed=0, with_next=True)
        blocker = _hold_write_lock(engine)                 # D1's record, written with D2's mark, fails
        try:
            with pytest.raises(OperationalError):
                _take_off(ledger, d2, "w:1")
        finally:
            blocker.rollback()
            blocker.close()
        assert status(d1) == "sending"                     # not committed yet ...
        assert _take_off(ledger, d2, "w:1")                # ... but still waiting: written now
        assert status(d1) == "sent"
        _finish(ledger, d2, "w:1", status="sent", subject="S", unconfirmed=0, with_next=True)
        ledger.conn.dbapi_connection.close()               # the connection drops as the loop ends
    assert status(d2) == "sent"                            # written again on a new connection
    with session_factory(settings)() as s:
        row = s.get(Digest, d2)
        assert (row.subject, row.in_flight, row.claimed_by, row.last_error) == ("S", False, None, None)
        assert abs((row.sent_at - app_clock.now()).total_seconds()) < 60   # stored as a UTC time
    with pytest.raises(RuntimeError):
        with _Ledger(engine) as ledger:
            assert _take_off(ledger, d3, "w:1")
            _finish(ledger, d3, "w:1", status="sent", subject="S", unconfirmed=0, with_next=True)
            raise RuntimeError("the loop broke")          # its record is still written on the way out
    assert status(d3) == "sent"


def test_ledger_statements_write_what_sqlalchemy_would(settings):
    """The send loop's compiled statements, run on the driver, store the same values as the
    same statements executed by SQLAlchemy (dates, flags, NULLs), on either database."""
    from datetime import datetime, timezone

    from digest.delivery.send import _Ledger, _statements
    from digest.store.db import DriverStatement

    _subscribers(settings, ["a@example.org", "b@example.org"])
    now = app_clock.now()
    with session_factory(settings)() as s:
        for sub in s.scalars(select(Subscriber)):
            s.add(Digest(subscriber_id=sub.id, edition=now.date(), status="sending", claimed_by="w:1", planned_at=now))
        s.commit()
        a, b = s.scalars(select(Digest.id).order_by(Digest.id)).all()
    engine = session_factory(settings)().get_bind()
    when = datetime(2026, 3, 29, 0, 59, 58, 123456, tzinfo=timezone.utc)
    statement = _statements().finish[(True, True)]
    params = {"status": "sent", "lease_until": None, "unconfirmed": 1, "sent_at": when,
              "subject": "Ünïcode — S", "last_error": "x" * 10}
    with engine.begin() as conn:                       # b: through SQLAlchemy
        conn.execute(statement, {**params, "did": b, "worker": "w:1"})
    with _Ledger(engine) as ledger:                    # a: on the driver
        assert ledger.execute(statement, {**params, "did": a, "worker": "w:1"}).rowcount == 1
        ledger.commit()
        assert ledger.execute(_statements().take_off, {"did": a, "worker": "w:1"}).rowcount == 0  # not ours now
        ledger.commit()
    compiled = DriverStatement(statement, engine.dialect)
    assert {name for name, _, _ in compiled.convert} and compiled.fixed     # parameters and literals
    cols = [Digest.status, Digest.lease_until, Digest.unconfirmed, Digest.sent_at, Digest.subject,
            Digest.last_error, Digest.claimed_by, Digest.in_flight]
    with engine.connect() as conn:
        raw = {r[0]: tuple(r[1:]) for r in conn.exec_driver_sql(
            "SELECT id, status, lease_until, unconfirmed, sent_at, subject, last_error, claimed_by, in_flight "
            "FROM digests")}
        typed = {r[0]: tuple(r[1:]) for r in conn.execute(select(Digest.id, *cols))}
    assert raw[a] == raw[b]                            # byte for byte what SQLAlchemy stores
    from sqlalchemy import Column, DateTime, Integer, MetaData, Table, bindparam, update

    stamped = Table("stamped", MetaData(), Column("id", Integer, primary_key=True), Column("v", Integer),
                    Column("u", DateTime, onupdate=datetime.now))
    for unsupported in (update(Digest.__table__).where(Digest.__table__.c.id.in_(bindparam("ids", expanding=True)))
                        .values(status="sent"),             # an IN list SQLAlchemy expands per call
                        update(stamped).values(v=bindparam("vv"))):   # a value computed per call
        with pytest.raises(ValueError, match="cannot run"):
            DriverStatement(unsupported, engine.dialect)
    assert typed[a] == typed[b] == ("sent", None, 1, when, "Ünïcode — S", "x" * 10, None, False)
