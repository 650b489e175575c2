"""Delivering planned digests: claim, render, send, record — exactly one per (subscriber, edition).

A digest row is claimed atomically (digest/delivery/claim.py: planned → sending, with a lease), marked `sent`
only after the server accepted the message, and a crash leaves it `sending` until its lease
expires (or at once, when its claimer is a dead process on this host), when the next run
sends it.

Sends whose outcome is unknown are counted on the digest (``unconfirmed``): the server got
the whole message and never answered, or the sender died (or stalled past its lease) while
the message was in flight — a row is marked ``in_flight`` before each send, and a claim of a
row still so marked counts one. Such a digest is sent again at most once
(DIGEST_AMBIGUOUS_RETRY=once; ``never``: not again), then ends ``unconfirmed``; so whatever
mix of retries, deferrals, restarts and workers, a reader gets at most two copies. A digest
that used up its attempts ends ``exhausted``; its papers go to the next digest.
"""
from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from digest import clock
# claiming and leases live in digest/delivery/claim.py; these names are imported from here too
from digest.delivery.claim import (CLAIM_BATCH, MAX_ATTEMPTS, RETRY_AFTER, _release, claim_batch,  # noqa: F401
                                   close_exhausted, reclaim_dead_local, renew_lease, worker_id)
from digest.email.builder import ContentBuilder
from digest.email.content import Recipient
from digest.store.models import Digest, Subscriber
from digest.store.db import DriverStatement, WriterQueue
from digest.store.ledger import digest_sections, section_rows
from digest.store.settings import Settings

log = logging.getLogger("digest.send")


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    bounced: int = 0
    exhausted: int = 0            # attempts used up: given up, final
    unconfirmed: int = 0          # sent without a reply, not sent again: final
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False


def send_pending(settings: Settings, session_factory, backend, renderer, topic_names: dict[str, str], *,
                 editions: set[date] | None = None, subscriber_ids: list[int] | None = None,
                 stop: threading.Event | None = None, on_sent: Callable[[int], None] | None = None,
                 worker: str | None = None) -> SendReport:
    """Send every claimable digest (optionally of some editions/subscribers) through `backend`."""
    from digest.email.message import compose

    worker = worker or worker_id()
    lease = timedelta(seconds=settings.send_lease_seconds)
    report = SendReport()
    builder = ContentBuilder(settings, topic_names)
    deferred_now: set[int] = set()
    stmts = _statements()

    def make_message(content):
        rendered = renderer.render(content) if not content.is_empty else renderer.render_nothing_new(content)
        return compose(settings, content, rendered)

    # one thread renders (the renderer is not thread-safe) while this one waits on the server
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") \
        if getattr(backend, "waits_on_network", False) else None
    switch = sys.getswitchinterval()
    if ahead is not None:
        # when the server's reply arrives, the sending thread should get the GIL back from the
        # rendering one at once, not after the default 5 ms
        sys.setswitchinterval(min(switch, 0.0002))
    keeper = _LeaseKeeper(session_factory, worker, lease)
    keeper.start()
    try:
        return _send_loop(settings, session_factory, backend, builder, make_message, ahead, report, worker,
                          lease, deferred_now, stmts, editions, subscriber_ids, stop, on_sent, keeper)
    finally:
        keeper.close()
        if ahead is not None:
            ahead.shutdown(wait=True, cancel_futures=True)
            sys.setswitchinterval(switch)


def _cancel(jobs: dict) -> None:
    for job in jobs.values():
        if hasattr(job, "cancel"):
            job.cancel()


def _send_loop(settings, session_factory, backend, builder, make_message, ahead, report, worker, lease,
               deferred_now, stmts, editions, subscriber_ids, stop, on_sent, keeper) -> SendReport:
    with session_factory() as session, _Ledger(session.get_bind()) as ledger:
        # `ledger` records each outcome in short transactions of its own: cheaper than the session
        reclaim_dead_local(session, clock.now())
        close_exhausted(session)
        allowed = 1 if settings.ambiguous_retry == "once" else 0
        while True:
            if stop is not None and stop.is_set():
                report.interrupted = True
                break
            ledger.commit()     # before the session writes (SQLite: one writer at a time)
            ids = claim_batch(session, worker, lease=lease, editions=editions,
                              subscriber_ids=subscriber_ids, exclude=deferred_now)
            if not ids:
                # a sender of this host that died since we started leaves claimed rows behind
                if reclaim_dead_local(session, clock.now()):
                    continue
                break
            keeper.hold(ids)
            lost = keeper.lost
            conn = session.connection()
            digests = {r.id: r for r in conn.execute(stmts.digests, {"ids": ids})}
            subs = {r.id: _Sub(*r) for r in conn.execute(
                stmts.subscribers, {"ids": list({d.subscriber_id for d in digests.values()})})}
            # two queries: the digests' section lists, then each distinct section once
            refs = digest_sections(conn, ids)
            rows = section_rows(conn, {sid for lst in refs.values() for sid in lst})
            builder.load(session, {pid for row in rows.values() for pid in row[2]})
            session.commit()
            # what each active subscriber gets; rendered in order, ahead of sending when that helps
            jobs: dict[int, object] = {}
            for did in ids:
                digest, sub = digests[did], subs.get(digests[did].subscriber_id)
                if sub is not None and sub.status == "active":
                    content = builder.build_rows(
                        Recipient(sub.id, sub.email, sub.name, sub.timezone, sub.link_secret), digest.edition,
                        [(sid, *rows[sid]) for sid in refs.get(did, ()) if sid in rows],
                        weekly=sub.frequency == "weekly", order=sub.topics, digest_id=did)
                    jobs[did] = ahead.submit(make_message, content) if ahead else content
            for pos, did in enumerate(ids):
                if stop is not None and stop.is_set():
                    _cancel(jobs)
                    ledger.commit()
                    _release(session, worker, ids[pos:])
                    report.interrupted = True
                    return report
                if did in lost:  # our lease ran out and another sender took it: theirs now
                    continue
                sub = subs.get(digests[did].subscriber_id)
                if did not in jobs or sub.status != "active":  # (or bounced earlier in this batch)
                    _cancel({did: jobs.pop(did, None)})
                    _finish(ledger, did, worker, status="skipped", error="subscriber not active",
                            unconfirmed=digests[did].unconfirmed)
                    continue
                job = jobs.pop(did)
                if ahead and ledger.pending and not job.done():
                    ledger.commit()   # the last `sent` record does not wait for a slow render
                try:
                    msg = job.result() if ahead else make_message(job)
                except Exception as exc:  # one broken digest must not stop the edition
                    log.exception("rendering digest %s failed", did)
                    _finish(ledger, did, worker, status="failed", error=f"render: {type(exc).__name__}: {exc}",
                            unconfirmed=digests[did].unconfirmed)
                    report.failed += 1
                    report.errors.append(f"{sub.email}: render failed: {exc}")
                    continue
                unconfirmed = digests[did].unconfirmed
                if unconfirmed > allowed:  # sent, maybe delivered, as often as allowed
                    _finish(ledger, did, worker, status="unconfirmed", unconfirmed=unconfirmed,
                            subject=msg.subject,
                            error=f"not sent again: {unconfirmed} sends without a reply from the server")
                    report.unconfirmed += 1
                    continue
                if not _take_off(ledger, did, worker):  # no longer ours (a stalled batch)
                    continue
                result = backend.send(msg)
                if result.ambiguous:
                    unconfirmed += 1
                    if unconfirmed > allowed:
                        _finish(ledger, did, worker, status="unconfirmed", unconfirmed=unconfirmed,
                                subject=msg.subject,
                                error=f"not sent again after {unconfirmed} unanswered sends: {result.error}")
                        report.unconfirmed += 1
                        report.errors.append(f"{sub.email}: unconfirmed, not sent again: {result.error}")
                        continue
                if result.ok:
                    # committed with the next message's in-flight mark, before that message
                    _finish(ledger, did, worker, status="sent", subject=msg.subject,
                            unconfirmed=unconfirmed, with_next=True)
                    if sub.consecutive_failures:
                        ledger.commit()
                        session.connection().execute(stmts.reset_failures, {"sid": sub.id})
                        session.commit()
                        sub.consecutive_failures = 0
                    report.sent += 1
                    if on_sent:
                        on_sent(1)
                elif result.permanent:
                    _finish(ledger, did, worker, status="failed", error=result.error, unconfirmed=unconfirmed)
                    report.failed += 1
                    report.errors.append(f"{sub.email}: {result.error}")
                    if _count_failure(session, sub.id, settings.bounce_after, sub):
                        report.bounced += 1
                elif digests[did].attempts >= MAX_ATTEMPTS:
                    _finish(ledger, did, worker, status="exhausted", unconfirmed=unconfirmed,
                            error=f"gave up after {digests[did].attempts} attempts: {result.error}")
                    report.exhausted += 1
                    report.errors.append(f"{sub.email}: gave up after {digests[did].attempts} attempts: {result.error}")
                else:
                    _finish(ledger, did, worker, status="deferred", error=result.error, unconfirmed=unconfirmed,
                            retry_at=clock.now() + RETRY_AFTER[
                                min(len(RETRY_AFTER), max(1, digests[did].attempts)) - 1])
                    deferred_now.add(did)
                    report.deferred += 1
                    report.errors.append(f"{sub.email}: deferred: {result.error}")
    return report


class _LeaseKeeper(threading.Thread):
    """Renews the lease on the batch being sent every third of the lease, from its own thread
    and connection: also while one message takes longer than the lease (a slow relay), so no
    other sender takes the digest that is in flight."""

    def __init__(self, session_factory, worker: str, lease: timedelta):
        super().__init__(name="lease-keeper", daemon=True)
        self.session_factory, self.worker, self.lease = session_factory, worker, lease
        self.ids: list[int] = []
        self.lost: set[int] = set()      # rows of the batch another sender took
        self._closed = threading.Event()

    def hold(self, ids: list[int]) -> None:
        self.ids, self.lost = ids, set()   # finished rows are no longer `sending`: left alone

    def run(self) -> None:
        while not self._closed.wait(self.lease.total_seconds() / 3):
            ids, lost = self.ids, self.lost
            if not ids:
                continue
            try:
                with self.session_factory() as session:
                    lost |= renew_lease(session, self.worker, ids, self.lease)
            except Exception as exc:  # the database away for a moment: try again next time
                log.warning("lease renewal failed: %s", str(exc).splitlines()[0][:200] if str(exc) else exc)

    def close(self) -> None:
        self._closed.set()
        self.join(timeout=30)


class _Sub:
    """The subscriber columns the send loop needs (plain values, updated as the loop changes them)."""

    __slots__ = ("id", "email", "name", "timezone", "status", "frequency", "consecutive_failures", "topics",
                 "link_secret")

    def __init__(self, id, email, name, timezone, status, frequency, consecutive_failures, topics, link_secret):
        self.id, self.email, self.name, self.timezone = id, email, name, timezone
        self.status, self.frequency, self.consecutive_failures = status, frequency, consecutive_failures
        self.topics = topics if isinstance(topics, list) else []     # section order
        self.link_secret = link_secret


class _Statements:
    """Statements of the send loop, built once: executing them re-uses SQLAlchemy's compiled form."""

    def __init__(self) -> None:
        t = Digest.__table__
        ids = bindparam("ids", expanding=True)
        self.digests = select(t.c.id, t.c.subscriber_id, t.c.edition, t.c.attempts,
                              t.c.unconfirmed).where(t.c.id.in_(ids))
        self.take_off = update(t).where(t.c.id == bindparam("did"), t.c.claimed_by == bindparam("worker"),
                                        t.c.status == "sending").values(in_flight=True)
        s = Subscriber.__table__
        self.subscribers = select(s.c.id, s.c.email, s.c.name, s.c.timezone, s.c.status, s.c.frequency,
                                  s.c.consecutive_failures, s.c.topics, s.c.link_secret
                                  ).where(s.c.id.in_(bindparam("ids", expanding=True)))
        self.reset_failures = update(s).where(s.c.id == bindparam("sid")).values(consecutive_failures=0)
        self.finish: dict[tuple[bool, bool], object] = {}
        for sent in (True, False):
            for with_error in (True, False):
                values = {"status": bindparam("status", type_=t.c.status.type),
                          "lease_until": bindparam("lease_until", type_=t.c.lease_until.type),
                          "in_flight": False, "unconfirmed": bindparam("unconfirmed", type_=t.c.unconfirmed.type)}
                if sent:  # done for good: the lease holder's name is no longer needed (bytes per row)
                    values.update(sent_at=bindparam("sent_at", type_=t.c.sent_at.type),
                                  subject=bindparam("subject", type_=t.c.subject.type), last_error=None,
                                  claimed_by=None)
                if with_error:
                    values["last_error"] = bindparam("last_error", type_=t.c.last_error.type)
                self.finish[(sent, with_error)] = update(t).where(
                    t.c.id == bindparam("did"), t.c.claimed_by == bindparam("worker")).values(**values)


_STATEMENTS: _Statements | None = None


def _statements() -> _Statements:
    global _STATEMENTS
    if _STATEMENTS is None:
        _STATEMENTS = _Statements()
    return _STATEMENTS


class _Ledger:
    """The send loop's own connection for outcomes. A record made ``later`` is written in the
    next transaction, just before its statements: a `sent` record rides with the next
    message's in-flight mark (one commit per message, still before that message goes out).
    Its statements run on the DBAPI connection, each compiled once (DriverStatement): they are
    written once a message; errors are raised as SQLAlchemy's, as from a session."""

    def __init__(self, engine):
        self.engine = engine
        self.pending: list = []      # records not yet committed; kept until a commit succeeds
        self._written = False        # ... and already executed in the open transaction
        self.queue = WriterQueue(engine)   # held from a transaction's first statement to its end
        self._compiled: dict[int, tuple] = {}   # id(statement) -> (statement, DriverStatement)
        self._dbapi_error = engine.dialect.loaded_dbapi.Error

    def __enter__(self) -> "_Ledger":
        self._open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            try:
                self.commit()           # a `sent` record still waiting for a next message
            except Exception:
                # the transaction or the connection broke (perhaps what stopped the loop):
                # the waiting record is still here; write it once more on a new connection
                self._reopen()
                self.commit()
        except Exception as err:
            if exc is None:
                raise
            log.error("event=outcome-not-recorded pending=%d error=%s", len(self.pending),
                      str(err).splitlines()[0][:200] if str(err) else type(err).__name__)
        finally:
            self.queue.close()
            self.conn.close()

    def later(self, statement, params: dict) -> None:
        self.pending.append((statement, params))

    def execute(self, statement, params: dict):
        """Run one statement in the open transaction; the cursor (its ``rowcount``)."""
        try:
            self.queue.take()
            self._write_pending()
            return self._run(statement, params)
        except Exception:
            self._rollback()
            raise

    def commit(self) -> None:
        try:
            if self.pending and not self._written:
                self.queue.take()
            self._write_pending()
            try:
                self.conn.commit()
            except self._dbapi_error as err:
                raise DBAPIError.instance("COMMIT", None, err, self._dbapi_error) from err
        except Exception:
            self._rollback()
            raise
        finally:
            self.queue.give_back()
        self.pending, self._written = [], False

    def _run(self, statement, params: dict):
        entry = self._compiled.get(id(statement))
        if entry is None:
            entry = self._compiled[id(statement)] = (statement, DriverStatement(statement, self.engine.dialect))
        compiled = entry[1]
        values = compiled.params(params)
        try:
            self.cursor.execute(compiled.sql, values)
        except self._dbapi_error as err:
            raise DBAPIError.instance(compiled.sql, values, err, self._dbapi_error) from err
        return self.cursor

    def _write_pending(self) -> None:
        if self.pending and not self._written:
            for statement, params in self.pending:
                self._run(statement, params)
            self._written = True

    def _rollback(self) -> None:
        """After a failed statement: the pending records were not committed, so they are
        written again in the next transaction."""
        self._written = False
        try:
            self.conn.rollback()
        except Exception:
            self._reopen()
        finally:
            self.queue.give_back()

    def _open(self) -> None:
        self.conn = self.engine.raw_connection()
        self.cursor = self.conn.cursor()

    def _reopen(self) -> None:
        self._written = False
        try:
            self.conn.invalidate()      # broken or not: not back into the pool
        except Exception:
            pass
        self._open()


def _finish(ledger, did: int, worker: str, *, status: str, error: str | None = None,
            subject: str | None = None, retry_at: datetime | None = None,
            unconfirmed: int, with_next: bool = False) -> None:
    """Record one digest's outcome and commit (`ledger`: a _Ledger, not the loop's session);
    ``with_next``: in the ledger's next transaction instead. A deferred digest keeps `retry_at`
    in lease_until: no sender claims it before then."""
    sent = status in ("sent", "unconfirmed")
    params: dict = {"did": did, "worker": worker, "status": status, "lease_until": retry_at,
                    "unconfirmed": unconfirmed}
    if sent:
        # no Message-ID column: it is message_id_for(subscriber, edition), the same for every resend
        params.update(sent_at=clock.now(), subject=subject)
    if error is not None:
        params["last_error"] = error[:2000]
    statement = _statements().finish[(sent, error is not None)]
    if with_next:
        ledger.later(statement, params)
        return
    ledger.execute(statement, params)
    ledger.commit()


def _take_off(ledger, did: int, worker: str) -> bool:
    """Mark the digest in flight just before its message goes out (committed first, so a
    sender that dies mid-send leaves the mark); False when the row is no longer ours."""
    taken = ledger.execute(_statements().take_off, {"did": did, "worker": worker}).rowcount
    ledger.commit()
    return bool(taken)


def _count_failure(session: Session, subscriber_id: int, bounce_after: int, local: _Sub | None = None) -> bool:
    sub = session.get(Subscriber, subscriber_id, populate_existing=True)
    sub.consecutive_failures = (sub.consecutive_failures or 0) + 1
    bounced = sub.consecutive_failures >= bounce_after and sub.status == "active"
    if bounced:
        sub.status = "bounced"
        log.warning("subscriber %s marked bounced after %d permanent failures", sub.email, sub.consecutive_failures)
    session.commit()
    if local is not None:  # the send loop's copy follows the row
        local.consecutive_failures, local.status = sub.consecutive_failures, sub.status
    return bounced
