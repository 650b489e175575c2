"""`digest run`: the long-running scheduler (APScheduler 3.x).

Jobs (explicit ids, replace_existing, coalescing, deliberate misfire grace):
  ingest     cron (UTC, settings.ingest_cron): fetch sources, match new papers
  send-tick  every minute: plan and send the editions that are due in each subscriber's
             local time (default 08:00); catches up after downtime, never sends stale editions
  learn      every settings.learn_every_hours: retrain topic relevance from readers' votes
  status     every minute: record each job's last success and failures for `digest status`
  heartbeat  every lease/3 s: renews the leader lease that keeps other schedulers standing by

The send decision is computed from the clock and the ledger, not from APScheduler's memory,
so a scheduler that was down for an hour still sends today's edition when it comes back,
and one down for days does not send old ones (settings.max_edition_age_hours).
"""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from digest import clock
from digest.store import locks
from digest.store.db import session_factory, session_scope
from digest.store.models import Digest, Subscriber, open_digest
from digest.pipeline import plan_options, run_ingest, run_learn, run_match
from digest.store.state import put_state
from digest.topics.current import current_topics
from digest.plan import plan_edition
from digest.topics.personal import PersonalOrder
from digest.delivery.send import send_pending, worker_id
from digest.store.delivery_url import parse_delivery
from digest.store.settings import Settings

log = logging.getLogger("digest.scheduler")
LOCK_NAME = "scheduler"


def _now() -> datetime:
    return clock.now()


class SchedulerBusy(Exception):
    pass


def parse_hhmm(value: str) -> dtime:
    hours, _, minutes = value.partition(":")
    return dtime(int(hours), int(minutes or 0))


def send_instant(edition: date, send_time: str, tz: str) -> datetime:
    """The UTC instant of a local send time on a local date (DST-aware; a skipped hour moves on)."""
    zone = ZoneInfo(tz)
    local = datetime.combine(edition, parse_hhmm(send_time)).replace(tzinfo=zone)
    # round-trip through UTC normalises times that do not exist (spring-forward gap)
    return local.astimezone(timezone.utc)


@dataclass
class DueGroup:
    timezone: str
    send_time: str
    edition: date
    subscriber_ids: list[int]


def due_groups(session, settings: Settings, now: datetime) -> list[DueGroup]:
    """Subscriber groups (timezone, send time) whose edition for their local today is due now."""
    max_age = timedelta(hours=settings.max_edition_age_hours)
    groups: dict[tuple[str, str], list[int]] = {}
    for sid, tz, send_time in session.execute(
        select(Subscriber.id, Subscriber.timezone, Subscriber.send_time).where(Subscriber.status == "active")
    ):
        groups.setdefault((tz or "UTC", send_time or settings.send_time), []).append(sid)
    due = []
    for (tz, send_time), ids in groups.items():
        try:
            local_today = now.astimezone(ZoneInfo(tz)).date()
        except Exception:
            tz, local_today = "UTC", now.date()
        at = send_instant(local_today, send_time, tz)
        if at <= now <= at + max_age:
            due.append(DueGroup(tz, send_time, local_today, ids))
    return due


def expire_stale(session, settings: Settings, now: datetime) -> int:
    """Planned digests older than the maximum age are never sent late; mark them expired."""
    cutoff = now - timedelta(hours=settings.max_edition_age_hours) - timedelta(days=1)
    result = session.execute(
        update(Digest).where(Digest.status.in_(("planned", "deferred")), Digest.planned_at < cutoff, open_digest())
        .values(status="expired", last_error="not sent before the maximum edition age"))
    session.commit()
    return result.rowcount or 0


class DigestScheduler:
    def __init__(self, settings: Settings, *, clock=None, backend=None):
        self.settings = settings
        self.clock = clock or _now   # (the parameter hides the clock module here)
        self.holder = worker_id()
        self.stop = threading.Event()
        self.backend = backend
        self.scheduler = BackgroundScheduler(timezone=timezone.utc, job_defaults={"max_instances": 1})
        # storing + matching papers and planning never overlap (a plan must see every paper
        # stored before it); fetching is outside it, so a slow feed never holds up a send
        self._work = threading.Lock()
        self._fetching: str | None = None   # the source an ingest is fetching now
        self.lost_leadership = False
        self.jobs: dict[str, dict] = {}  # per job: last success, failures in a row and why (for status)
        self._dry_seen: set[tuple[str, str, date]] = set()

    # ---- lock
    @property
    def lease(self) -> float:
        return float(self.settings.leader_lease_seconds)

    def acquire_lock(self, wait: bool = False, poll: float | None = None) -> None:
        """Become the leader; with `wait`, stand by until the leader's lease lapses."""
        make = session_factory(self.settings)
        poll = poll or min(5.0, self.lease / 4)
        announced = False
        while True:
            try:
                with make() as session:
                    if locks.acquire(session, LOCK_NAME, self.holder, self.lease):
                        return
                    held = locks.holder_of(session, LOCK_NAME)
            except SQLAlchemyError as exc:  # the database restarting is when a standby matters most
                if not wait:
                    raise
                log.error("event=standby-db-error error=%s", str(exc).splitlines()[0][:300])
                if self.stop.wait(poll):
                    raise SchedulerBusy("stopped while standing by") from None
                continue
            until = held.expires_at.isoformat(timespec="seconds") if held else "?"
            if not wait:
                raise SchedulerBusy(
                    f"another scheduler ({held.holder if held else '?'}) is the leader on this database "
                    f"(its lease expires at {until} unless renewed); without --no-wait this one stands by")
            if not announced:
                log.info("event=standby leader=%s lease_until=%s", held.holder if held else "?", until)
                announced = True
            if self.stop.wait(poll):
                raise SchedulerBusy("stopped while standing by")

    def heartbeat(self) -> None:
        with session_factory(self.settings)() as session:
            if not locks.acquire(session, LOCK_NAME, self.holder, self.lease):
                log.error("event=leadership-lost holder=%s; stopping (exit 1, so a supervisor restarts "
                          "this instance as a standby)", self.holder)
                self.lost_leadership = True
                self.stop.set()

    # ---- jobs
    def ingest_job(self) -> None:
        def note(step: str) -> None:
            self._fetching = step.removeprefix("fetching ") if step.startswith("fetching ") else self._fetching

        try:
            reports = run_ingest(self.settings, store_lock=self._work, on_progress=note)
        finally:
            self._fetching = None
        with self._work:
            config, error = current_topics(self.settings)
            matched = run_match(self.settings, config)
            for r in reports:
                log.info("event=ingest source=%s status=%s new=%d updated=%d unchanged=%d skipped=%d",
                         r.source, r.status, r.new, r.updated, r.unchanged, sum(r.skipped.values()))
            log.info("event=match papers=%d", matched)
            from digest.delivery.ledger import compact_ledger

            with session_factory(self.settings)() as session:
                removed = compact_ledger(session, keep_days=self.settings.ledger_keep_days,
                                         lookback_days=self.settings.lookback_days)
            log.info("event=compact removed=%d", removed)

    def learn_job(self) -> None:
        """Retrain the relevance model from readers' votes (no-op when no vote changed)."""
        with self._work:
            config, _ = current_topics(self.settings)
            result = run_learn(self.settings, config)
            if result.trained:
                log.info("event=learn version=%d labels=%d topics=%d", result.version, result.labels, len(result.topics))

    def send_tick(self) -> dict:
        """Plan and send whatever is due now. Returns counts (for status and tests)."""
        from digest.delivery.backends import open_backend
        from digest.email.render import Renderer

        now = self.clock()
        totals = {"planned": 0, "sent": 0, "failed": 0, "deferred": 0, "expired": 0, "groups": 0}
        late = self._fetching
        if late:  # the ingest goes on; what it brings goes in the next edition
            log.warning("event=send-before-ingest-done late_source=%s (sending what is matched now)", late)
        with self._work:
            config, error = current_topics(self.settings)
            if error:
                log.error("event=topics-invalid using=last-valid error=%s", error.replace("\n", " | "))
            run_match(self.settings, config)
            make = session_factory(self.settings)
            with make() as session:
                totals["expired"] = expire_stale(session, self.settings, now)
                groups = due_groups(session, self.settings, now)
            if parse_delivery(self.settings.delivery)[0] == "dry-run":
                return self._dry_tick(make, config, groups, now, totals)
            editions = set()
            for group in groups:
                with make() as session:
                    plan = plan_edition(session, config.ids, plan_options(self.settings), edition=group.edition,
                                        now=now, subscriber_ids=group.subscriber_ids, personal=PersonalOrder())
                totals["planned"] += plan.planned
                totals["groups"] += 1
                editions.add(group.edition)
            if not self.settings.scheduler_sends:  # `digest worker` processes send
                if totals["planned"]:
                    log.info("event=planned %s", " ".join(f"{k}={v}" for k, v in totals.items()))
                return totals
            if not editions and not self._pending(make):
                return totals
            names = {t.id: t.name for t in config.topics}
            renderer = Renderer(self.settings)
            backend = self.backend
            if backend is None:
                with open_backend(self.settings) as backend:
                    report = send_pending(self.settings, make, backend, renderer, names, stop=self.stop)
            else:
                report = send_pending(self.settings, make, backend, renderer, names, stop=self.stop)
            totals.update(sent=report.sent, failed=report.failed, deferred=report.deferred,
                          exhausted=report.exhausted, unconfirmed=report.unconfirmed)
            if any(totals.get(k) for k in ("planned", "sent", "failed", "deferred", "expired", "exhausted",
                                           "unconfirmed")):
                log.info("event=send %s", " ".join(f"{k}={v}" for k, v in totals.items()))
                with session_scope(self.settings) as session:
                    put_state(session, "last_send", {**totals, "at": now.isoformat(),
                                                      "errors": report.errors[:20]})
        return totals

    def _dry_tick(self, make, config, groups: list[DueGroup], now: datetime, totals: dict) -> dict:
        """DIGEST_DELIVERY=dry-run: plan in memory and log what would be sent, once per edition
        and group; nothing is recorded, so the papers stay for a real run."""
        for group in groups:
            key = (group.timezone, group.send_time, group.edition)
            if key in self._dry_seen:
                continue
            self._dry_seen.add(key)
            with make() as session:
                plan = plan_edition(session, config.ids, plan_options(self.settings), edition=group.edition,
                                    now=now, subscriber_ids=group.subscriber_ids, dry_run=True,
                                    personal=PersonalOrder())
            log.info("event=dry-run edition=%s timezone=%s would_send=%d nothing_new=%d (nothing recorded)",
                     group.edition, group.timezone, len(plan.dry), plan.empty)
            totals["groups"] += 1
        return totals

    def _pending(self, make) -> bool:
        with make() as session:
            return session.scalar(select(Digest.id).where(Digest.status.in_(("planned", "deferred")), open_digest())
                                  .limit(1)) is not None

    def _safe(self, fn):
        def run():
            if self.stop.is_set():
                return
            info = self.jobs.setdefault(fn.__name__, {})
            try:
                fn()
            except Exception as exc:  # a failing job is logged and shown by `digest status`; the scheduler keeps running
                log.exception("event=job-failed job=%s", fn.__name__)
                first = not info.get("failures")
                info.update(failures=info.get("failures", 0) + 1, error=(str(exc).splitlines() or [""])[0][:300],
                            failing_since=info.get("failing_since") if not first else clock.now().isoformat())
                if first and fn.__name__ != "record_status":
                    self._try_record_status()
            else:
                info.update(ok_at=clock.now().isoformat(), failures=0, error=None, failing_since=None)
        run.__name__ = fn.__name__
        return run

    def _try_record_status(self) -> None:
        try:
            self.record_status()
        except Exception:  # the database may be what is failing; the status job tries again
            log.warning("event=status-not-recorded", exc_info=True)

    def add_jobs(self) -> None:
        s = self.settings
        self.scheduler.add_job(self._safe(self.ingest_job), CronTrigger.from_crontab(s.ingest_cron, timezone=timezone.utc),
                               id="ingest", name="ingest sources", replace_existing=True,
                               misfire_grace_time=3 * 3600, coalesce=True)
        self.scheduler.add_job(self._safe(self.send_tick), IntervalTrigger(minutes=1), id="send-tick",
                               name="send due editions", replace_existing=True, misfire_grace_time=50,
                               coalesce=True, next_run_time=clock.now())
        self.scheduler.add_job(self._safe(self.learn_job), IntervalTrigger(hours=s.learn_every_hours), id="learn",
                               name="retrain topic relevance from votes", replace_existing=True,
                               misfire_grace_time=3600, coalesce=True)
        self.scheduler.add_job(self._safe(self.heartbeat), IntervalTrigger(seconds=max(0.5, self.lease / 3)),
                               id="heartbeat", name="renew the leader lease", replace_existing=True, misfire_grace_time=10, coalesce=True)
        self.scheduler.add_job(self._safe(self.record_status), IntervalTrigger(minutes=1), id="status",
                               name="record status", replace_existing=True, misfire_grace_time=50, coalesce=True,
                               next_run_time=clock.now())

    def record_status(self) -> None:
        jobs = {job.id: job.next_run_time.isoformat() if job.next_run_time else None for job in self.scheduler.get_jobs()}
        with session_scope(self.settings) as session:
            put_state(session, "scheduler", {"holder": self.holder, "next_runs": jobs,
                                              "at": clock.now().isoformat(),
                                              "jobs": {k: dict(v) for k, v in list(self.jobs.items())}})

    def log_checks(self) -> list:
        """The checks of `digest check`, one log line each (FAIL as errors); the scheduler
        still starts: a mail server or database that is down now may be back by send time."""
        from digest.check import FAIL, WARN, run_checks

        results = run_checks(self.settings)
        for r in results:
            level = logging.ERROR if r.status == FAIL else logging.WARNING if r.status == WARN else logging.INFO
            log.log(level, "event=check name=%s result=%s detail=%s", r.name.replace(" ", "-"), r.status, r.detail)
        return results

    def run_forever(self, wait_for_lock: bool = False) -> None:
        self.log_checks()
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: self.stop.set())
        try:
            try:
                self.acquire_lock(wait=wait_for_lock)
            except SchedulerBusy:
                if self.stop.is_set():  # stopped while standing by: a clean exit
                    return
                raise
            log.info("event=scheduler-start holder=%s lease=%ss sends=%s", self.holder, self.lease,
                     self.settings.scheduler_sends)
            try:
                self.add_jobs()
                self.scheduler.start()
                while not self.stop.wait(1.0):
                    pass
            finally:
                log.info("event=scheduler-stopping")
                # the send loop checks `stop` between messages: the one in flight finishes
                if self.scheduler.running:
                    self.scheduler.shutdown(wait=True)
                with session_factory(self.settings)() as session:
                    locks.release(session, LOCK_NAME, self.holder)
                log.info("event=scheduler-stopped")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
