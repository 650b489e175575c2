"""Several senders share one edition: `digest worker` processes, kill -9, concurrent planning,
lease renewal, and scheduler leader failover. Real processes, a real SMTP server, and the
database under test (SQLite or PostgreSQL)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from digest.store.db import session_factory, session_scope
from digest.store.ledger import items_of
from digest.store.models import Digest, LedgerSection, Lock
from digest.plan import PlanOptions, plan_edition
from digest.delivery.claim import claim_batch, renew_lease
from tests.factories import add_paper, add_subscriber, utc, wait_for
from tests.smtp_server import smtp_sink

EDITION = date(2026, 11, 20)
NOW = utc(2026, 11, 20, 7, 0)
TOPICS = ["medical-segmentation", "vision-language", "efficient-attention"]
TITLES = {"medical-segmentation": "A U-Net for tumor segmentation in CT, part {}",
          "vision-language": "A vision-language model for visual question answering, part {}",
          "efficient-attention": "Sparse attention for long context transformers, part {}"}


@pytest.fixture
def sink():
    yield from smtp_sink()


def _populate(settings, n: int, now=NOW) -> None:
    with session_scope(settings) as s:
        for i, tid in enumerate(TOPICS * 2):
            # titles the matcher agrees with: `send-now` re-matches under the current config
            add_paper(s, f"2611.{i:05d}", title=TITLES[tid].format(i), seen=now - timedelta(hours=3),
                      matches={tid: 0.9 - i / 100})
        for i in range(n):
            add_subscriber(s, f"reader{i:05d}@example.org", [TOPICS[i % 3], TOPICS[(i + 1) % 3]])


def _plan(settings) -> int:
    with session_factory(settings)() as s:
        return plan_edition(s, TOPICS, PlanOptions(), edition=EDITION, now=NOW).planned


def _env(settings, sink, **extra) -> dict:
    env = os.environ.copy()
    env.update({"DIGEST_DELIVERY": sink.url, "DIGEST_SMTP_TIMEOUT": "10", **extra})
    return env


def _statuses(settings) -> Counter:
    with session_scope(settings) as s:
        return Counter(dict(s.execute(select(Digest.status, func.count()).group_by(Digest.status)).all()))


def test_four_workers_send_an_edition_once_even_when_one_is_killed(settings, sink):
    n = 2000
    _populate(settings, n)
    assert _plan(settings) == n
    # 25 messages/s each: the edition takes ~20 s, so every worker is mid-edition when one dies
    env = _env(settings, sink, DIGEST_SEND_LEASE_SECONDS="30", DIGEST_SMTP_RATE="25")
    cmd = [sys.executable, "-m", "digest.cli", "worker", "--once"]
    workers = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for _ in range(4)]
    victim = None
    try:
        # kill -9 the first worker seen holding a leased batch once 20 digests are out
        # (a sent digest no longer names its sender)
        def sending_worker():
            with session_scope(settings) as s:
                if s.scalar(select(func.count()).where(Digest.status == "sent")) < 20:
                    return None
                for w in workers:
                    if w.poll() is None and s.scalar(select(func.count()).where(
                            Digest.claimed_by.like(f"%:{w.pid}:%"), Digest.status == "sending")) >= 1:
                        return w
            return None
        found: list = []
        assert wait_for(lambda: found.append(sending_worker()) or found[-1] is not None, 120), \
            "no worker was seen sending"
        victim = found[-1]
        victim.send_signal(signal.SIGKILL)
        for w in workers:
            w.wait(timeout=300)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert victim.returncode == -signal.SIGKILL
    for w in workers:
        if w is not victim:
            assert w.returncode == 0, w.stderr.read()

    received = Counter(r for m in sink.messages for r in m.rcpt_tos)
    expected = {f"reader{i:05d}@example.org" for i in range(n)}
    assert set(received) == expected                      # nobody missed
    twice = [r for r, c in received.items() if c > 1]
    assert len(twice) <= 1, twice                         # at most the killed worker's in-flight one
    assert max(received.values()) <= 2
    assert _statuses(settings) == Counter({"sent": n})
    # each Message-ID belongs to one digest: a resend repeats its digest's id, never another's
    ids = {}
    for m in sink.messages:
        ids.setdefault(m.parsed()["Message-ID"], set()).update(m.rcpt_tos)
    assert len(ids) == n and all(len(r) == 1 for r in ids.values())


def test_two_send_now_runs_at_once_plan_and_send_each_digest_once(settings, sink, clock):
    n = 300
    _populate(settings, n, now=clock)       # papers of the last hours, whatever the date
    env = _env(settings, sink)
    cmd = [sys.executable, "-m", "digest.cli", "send-now", "--no-ingest", "--edition", clock.date().isoformat()]
    runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [r.communicate(timeout=300) for r in runs]
    for r, (out, errs) in zip(runs, outs):
        assert r.returncode == 0, out + errs
    received = Counter(r for m in sink.messages for r in m.rcpt_tos)
    assert len(received) == n and set(received.values()) == {1}
    with session_scope(settings) as s:
        assert s.scalar(select(func.count()).select_from(Digest)) == n
        # what each digest carried was written once, not once per planner; the two planners
        # shared each distinct section (insert-if-absent by content hash)
        per_digest = items_of(s, s.scalars(select(Digest.id)))
        assert len(per_digest) == n and {len(lst) for lst in per_digest.values()} == {4}
        stored = s.execute(select(LedgerSection.section, LedgerSection.papers)).all()
        assert len(stored) == len(set(stored))


def test_a_slow_sender_renews_its_lease_and_loses_rows_taken_after_expiry(settings):
    _populate(settings, 3)
    _plan(settings)
    make = session_factory(settings)
    lease = timedelta(seconds=30)
    with make() as s:
        mine = claim_batch(s, "host:1:slow", lease=lease)
        assert len(mine) == 3
        # one row's lease lapses and another sender takes it over
        s.execute(update(Digest).where(Digest.id == mine[0]).values(lease_until=NOW - timedelta(days=1)))
        s.commit()
        theirs = claim_batch(s, "host:2:fast", lease=lease)
        assert theirs == [mine[0]]
        before = {d.id: d.lease_until for d in s.scalars(select(Digest).where(Digest.id.in_(mine[1:])))}
        time.sleep(0.05)
        lost = renew_lease(s, "host:1:slow", mine, lease)
        assert lost == {mine[0]}
        s.expire_all()
        after = {d.id: d.lease_until for d in s.scalars(select(Digest).where(Digest.id.in_(mine[1:])))}
        assert all(after[i] > before[i] for i in mine[1:])
        assert s.get(Digest, mine[0]).claimed_by == "host:2:fast"


def test_worker_sigterm_finishes_cleanly_and_releases_its_batch(settings, sink):
    _populate(settings, 200)
    _plan(settings)
    env = _env(settings, sink, DIGEST_SMTP_RATE="20")      # slow enough to be stopped mid-edition
    w = subprocess.Popen([sys.executable, "-m", "digest.cli", "worker"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(sink.messages) >= 5, 120)
        w.send_signal(signal.SIGTERM)
        _, errs = w.communicate(timeout=120)
    finally:
        if w.poll() is None:
            w.kill()
    assert w.returncode == 0, errs
    statuses = _statuses(settings)
    assert statuses["sending"] == 0                       # nothing left leased
    assert statuses["sent"] == len(sink.messages) and statuses["planned"] == 200 - statuses["sent"]


def _holder(settings) -> str | None:
    with session_scope(settings) as s:
        lock = s.get(Lock, "scheduler")
        return lock.holder if lock else None


def test_standby_scheduler_takes_over_when_the_leader_is_killed(settings):
    env = os.environ.copy()
    env.update({"DIGEST_LEADER_LEASE_SECONDS": "3", "DIGEST_SCHEDULER_SENDS": "false",
                "DIGEST_INGEST_CRON": "0 0 1 1 *"})
    cmd = [sys.executable, "-m", "digest.cli", "run"]
    leader = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    standby = None
    try:
        if not wait_for(lambda: (_holder(settings) or "").count(f":{leader.pid}:") == 1, 60):
            leader.kill()
            pytest.fail(f"the first scheduler never led; it said: {leader.communicate()[1][-2000:]}")
        standby = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(4)                                    # longer than the lease: renewals keep it
        assert f":{leader.pid}:" in _holder(settings)
        assert standby.poll() is None                    # standing by, not exited
        leader.send_signal(signal.SIGKILL)
        leader.wait(timeout=30)
        assert wait_for(lambda: f":{standby.pid}:" in (_holder(settings) or ""), 30), "no takeover"
        standby.send_signal(signal.SIGTERM)
        _, errs = standby.communicate(timeout=60)
        assert standby.returncode == 0, errs
        assert "event=standby" in errs and "event=scheduler-start" in errs
        assert _holder(settings) is None                 # released on a clean stop
    finally:
        for p in (leader, standby):
            if p is not None and p.poll() is None:
                p.kill()


@pytest.mark.postgresql_only
def test_postgres_claims_skip_rows_another_sender_has_locked(settings):
    _populate(settings, 30)
    _plan(settings)
    make = session_factory(settings)
    assert make().get_bind().dialect.name == "postgresql"
    with make() as holder, make() as other:
        locked = holder.scalars(select(Digest.id).order_by(Digest.id).limit(10).with_for_update()).all()
        # `holder` keeps its row locks open; a claim must neither wait for nor take them
        got = claim_batch(other, "host:9:other", lease=timedelta(seconds=60))
        assert len(got) == 20 and not set(got) & set(locked)
        holder.rollback()
        rest = claim_batch(other, "host:9:other", lease=timedelta(seconds=60))
        assert sorted(rest) == sorted(locked)


def test_a_claim_that_loses_its_rows_to_another_sender_claims_the_next_ones(settings):
    """Between a claim's SELECT and its UPDATE another sender takes every row it found: that is
    a lost race, not the end of the edition (a `--once` worker used to stop there). SQLite only
    can lose it; on PostgreSQL the same interleaving must leave each sender its own rows."""
    from sqlalchemy import event

    _populate(settings, 30)
    assert _plan(settings) == 30
    make = session_factory(settings)
    taken: list[int] = []
    with make() as mine, make() as other:
        conn = mine.connection()

        def race(_conn, _cursor, statement, *_args):
            if not taken and statement.lstrip().upper().startswith("UPDATE DIGESTS"):
                taken.extend(claim_batch(other, "host:2:fast", lease=timedelta(seconds=60), limit=10))

        event.listen(conn, "before_cursor_execute", race)
        got = claim_batch(mine, "host:1:slow", lease=timedelta(seconds=60), limit=10)
        event.remove(conn, "before_cursor_execute", race)
    assert len(taken) == 10
    assert len(got) == 10 and not set(got) & set(taken)
    first20 = sorted(got + taken)
    if settings.database_url.startswith("sqlite"):
        assert taken == first20[:10] and got == first20[10:]     # lost its first ten, took the next
    else:   # SKIP LOCKED: the other sender never sees the rows this claim holds
        assert got == first20[:10] and taken == first20[10:]
    with session_scope(settings) as s:
        holders = dict(s.execute(select(Digest.id, Digest.claimed_by).where(Digest.status == "sending")).all())
    assert {i for i, h in holders.items() if h == "host:1:slow"} == set(got)
    assert {i for i, h in holders.items() if h == "host:2:fast"} == set(taken)
