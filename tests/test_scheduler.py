"""Scheduler behaviour with a controllable clock, the database lock, hot reload, shutdown."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date, datetime, time as dtime, timedelta, timezone
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

from digest.store import locks
from digest.store.db import session_factory
from digest.store.models import Digest, Lock
from digest.pipeline import current_topics
from digest.scheduler import DigestScheduler, due_groups, send_instant
from tests.factories import add_paper, add_subscriber, utc, wait_for
from digest.clock import now as app_clock_now


def test_send_instant_across_dst():
    # Berlin switches to summer time on 2026-03-29: 08:00 local moves from 07:00 to 06:00 UTC
    assert send_instant(date(2026, 3, 28), "08:00", "Europe/Berlin") == utc(2026, 3, 28, 7, 0)
    assert send_instant(date(2026, 3, 29), "08:00", "Europe/Berlin") == utc(2026, 3, 29, 6, 0)
    # New York leaves summer time on 2026-11-01
    assert send_instant(date(2026, 10, 31), "08:00", "America/New_York") == utc(2026, 10, 31, 12, 0)
    assert send_instant(date(2026, 11, 1), "08:00", "America/New_York") == utc(2026, 11, 1, 13, 0)
    # 02:30 does not exist in Berlin on 2026-03-29: it is still a real instant
    assert send_instant(date(2026, 3, 29), "02:30", "Europe/Berlin").tzinfo is not None


def test_cron_next_fire_times_across_timezones_and_dst():
    trigger = CronTrigger(hour=8, minute=0, timezone=ZoneInfo("Europe/Berlin"))
    before = datetime(2026, 3, 28, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    nxt = trigger.get_next_fire_time(None, before)
    assert nxt.astimezone(timezone.utc) == utc(2026, 3, 29, 6, 0)
    ingest = CronTrigger.from_crontab("30 1 * * *", timezone=timezone.utc)
    assert ingest.get_next_fire_time(None, utc(2026, 11, 21, 2, 0)) == utc(2026, 11, 22, 1, 30)


def test_due_groups_catch_up_but_never_stale(settings):
    make = session_factory(settings)
    with make() as s:
        add_subscriber(s, "berlin@example.org", ["medical-segmentation"], timezone="Europe/Berlin")
        add_subscriber(s, "ny@example.org", ["medical-segmentation"], timezone="America/New_York")
        s.commit()
        # 07:30 UTC = 08:30 Berlin (due, half an hour late), 02:30 New York (not yet)
        groups = due_groups(s, settings, utc(2026, 11, 20, 7, 30))
        assert [(g.timezone, g.edition) for g in groups] == [("Europe/Berlin", date(2026, 11, 20))]
        # the scheduler was down for an hour: still due
        assert len(due_groups(s, settings, utc(2026, 11, 20, 8, 5))) == 1
        # down far past the maximum age: that day's edition is no longer due
        late = utc(2026, 11, 20, 7, 0) + timedelta(hours=settings.max_edition_age_hours, minutes=1)
        assert [g.timezone for g in due_groups(s, settings, late)] == ["America/New_York"]


def test_send_tick_sends_today_once_and_expires_stale(settings, clock):
    day = clock.date()
    midnight = datetime.combine(day, dtime(0), tzinfo=timezone.utc)
    make = session_factory(settings)
    with make() as s:
        add_subscriber(s, "a@example.org", ["medical-segmentation"], timezone="UTC")
        add_paper(s, "2611.01000", seen=midnight + timedelta(hours=2), title="Tumor segmentation in CT with a U-Net",
                  abstract="We study medical image segmentation of tumours in CT scans.")
        # a digest planned days ago and never sent (the scheduler was down): must not go out late
        stale_sub = add_subscriber(s, "b@example.org", ["vision-language"], timezone="UTC")
        s.add(Digest(subscriber_id=stale_sub.id, edition=day - timedelta(days=4), status="planned",
                     planned_at=midnight - timedelta(days=4) + timedelta(hours=8)))
        s.commit()
    now = {"now": midnight + timedelta(hours=7)}
    sched = DigestScheduler(settings, clock=lambda: now["now"])
    first = sched.send_tick()                          # 07:00 UTC: not yet 08:00
    assert (first["planned"], first["expired"]) == (0, 1)
    now["now"] = midnight + timedelta(hours=9, minutes=15)    # an hour late: catch up
    totals = sched.send_tick()
    assert (totals["planned"], totals["sent"]) == (1, 1), totals
    assert sched.send_tick()["sent"] == 0              # the next tick sends nothing
    with make() as s:
        statuses = {d.edition: d.status for d in s.scalars(select(Digest))}
    assert statuses == {day: "sent", day - timedelta(days=4): "expired"}


def test_invalid_topics_edit_keeps_last_valid_config(settings, config_dir):
    config, error = current_topics(settings)
    assert error is None and "vision-language" in config.ids
    (config_dir / "topics.yaml").write_text("topics:\n  - id: Bad Id\n    nmae: typo\n", encoding="utf-8")
    config2, error2 = current_topics(settings)
    assert config2.ids == config.ids
    assert "topics.yaml" in error2 and "Bad Id" in error2
    out = subprocess.run([sys.executable, "-m", "digest.cli", "status"], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0
    assert "topics.yaml is invalid" in out.stderr


def test_lock_expires_and_can_be_taken_over(settings):
    make = session_factory(settings)
    now = datetime.now(timezone.utc)
    with make() as s:
        assert locks.acquire(s, "scheduler", "one", 60, now=now)
        assert not locks.acquire(s, "scheduler", "two", 60, now=now)
        assert locks.acquire(s, "scheduler", "one", 60, now=now)  # renew
        assert locks.acquire(s, "scheduler", "two", 60, now=now + timedelta(seconds=61))
        assert s.get(Lock, "scheduler").holder == "two"


def test_second_scheduler_refused_and_sigterm_exits_cleanly(settings):
    env = os.environ.copy()
    first = subprocess.Popen([sys.executable, "-m", "digest.cli", "run"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        make = session_factory(settings)

        def locked():
            with make() as s:
                return s.get(Lock, "scheduler") is not None
        assert wait_for(locked), "first scheduler never took the lock"
        second = subprocess.run([sys.executable, "-m", "digest.cli", "run", "--no-wait"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 2
        assert "another scheduler" in second.stderr and "Traceback" not in second.stderr
        first.send_signal(signal.SIGTERM)
        out, errs = first.communicate(timeout=60)
        assert first.returncode == 0, errs
        assert "scheduler-stopped" in errs
        with make() as s:
            assert s.get(Lock, "scheduler") is None
    finally:
        if first.poll() is None:
            first.kill()


def test_a_drip_fed_source_never_holds_the_send(settings, config_dir, monkeypatch, caplog):
    """An ingest fetching from a server that sends a byte every 0.2 s (the read timeout never
    fires) does not hold the lock the send tick needs: the due digest goes out while the fetch
    is still running, the late source is logged, and the fetch ends at its deadline."""
    import logging
    import threading

    from digest.store.settings import Settings, reset_settings_cache
    from tests.http_server import Reply, ScriptedServer

    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>' + b" " * 400 + b"</channel></rss>"
    with ScriptedServer() as server:
        url = server.script("/slow.xml", Reply(200, body, {"Content-Type": "application/rss+xml"}, drip=0.2,
                                               drip_body_only=True))
        (config_dir / "sources.yaml").write_text(f"sources:\n  - name: slow-feed\n    kind: arxiv\n    url: {url}\n")
        monkeypatch.setenv("DIGEST_HTTP_TIMEOUT", "3")
        monkeypatch.setenv("DIGEST_HTTP_DEADLINE", "12")
        reset_settings_cache()
        s = Settings()
        day = app_clock_now().date()
        midnight = datetime.combine(day, dtime(0), tzinfo=timezone.utc)
        with session_factory(s)() as session:
            add_subscriber(session, "a@example.org", ["medical-segmentation"], timezone="UTC")
            add_paper(session, "2611.01000", seen=midnight + timedelta(hours=2),
                      title="Tumor segmentation in CT with a U-Net",
                      abstract="We study medical image segmentation of tumours in CT scans.")
            session.commit()
        sched = DigestScheduler(s, clock=lambda: midnight + timedelta(hours=8, minutes=1))
        ingest = threading.Thread(target=sched.ingest_job)
        caplog.set_level(logging.WARNING, logger="digest.scheduler")
        ingest.start()
        assert wait_for(lambda: len(server.requests("/slow.xml")) == 1, timeout=10)
        totals = sched.send_tick()                        # due: 08:00 UTC passed
        still_fetching = ingest.is_alive()
        ingest.join(60)
    assert (totals["planned"], totals["sent"]) == (1, 1), totals
    assert still_fetching                                 # sent before the slow fetch ended
    assert "late_source=slow-feed" in caplog.text
    with session_factory(s)() as session:
        from digest.store.models import IngestRun

        run = session.scalars(select(IngestRun)).one()
    assert run.status == "failed" and "not fetched within 12 s (DIGEST_HTTP_DEADLINE)" in run.errors[0]
