"""Claiming planned digests under a lease, and who claims them.

A sender claims a batch atomically (status planned → sending, with a lease); `FOR UPDATE SKIP
LOCKED` on PostgreSQL, a conditional UPDATE on SQLite. A sender's id names its host, PID and
PID namespace, so a lease left by a dead process of this host is taken over at once.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session

from digest import clock
from digest.store.models import Digest, open_digest

log = logging.getLogger("digest.send")

CLAIM_BATCH = 200
MAX_ATTEMPTS = 5
# wait before the 2nd, 3rd, ... attempt of a deferred digest (greylisting lasts minutes)
RETRY_AFTER = (timedelta(minutes=2), timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=30))


def _process_space() -> str:
    """Which PIDs this process can see: its boot and PID namespace. Two containers sharing a
    hostname (host networking) differ here, so one never judges the other's PIDs."""
    parts = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(os.readlink(path) if path.endswith("/pid") else open(path).read().strip())
        except OSError:
            parts.append("?")
    return uuid.uuid5(uuid.NAMESPACE_OID, "|".join(parts)).hex[:8]


_SPACE = _process_space()


def worker_id() -> str:
    """host:pid:nonce:space; reclaim_dead_local trusts the pid only within the same space."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}:{_SPACE}"


def _retry_due(now: datetime):
    return and_(Digest.status == "deferred", Digest.attempts < MAX_ATTEMPTS,
                or_(Digest.lease_until.is_(None), Digest.lease_until < now), open_digest())


def _claimable(now: datetime, exclude: set[int]):
    cond = or_(Digest.status == "planned", _retry_due(now),
               and_(Digest.status == "sending", Digest.lease_until < now))
    return and_(cond, Digest.id.notin_(exclude)) if exclude else cond


def _claimable_by_status(now: datetime):
    """The claimable test split per status: each part can walk the (status, id) index."""
    return (and_(Digest.status == "planned", open_digest()), _retry_due(now),
            and_(Digest.status == "sending", Digest.lease_until < now, open_digest()))


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def reclaim_dead_local(session: Session, now: datetime) -> int:
    """Expire the (still running) leases of digests claimed by processes of this host and PID
    space that no longer exist. Returns how many leases it expired."""
    host = socket.gethostname()
    rows = session.execute(select(Digest.id, Digest.claimed_by).where(
        Digest.status == "sending", Digest.lease_until >= now, open_digest())).all()
    session.rollback()
    dead = []
    for did, claimer in rows:
        parts = (claimer or "").split(":")
        if len(parts) != 4 or parts[0] != host or parts[3] != _SPACE:
            continue
        try:
            pid = int(parts[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.append(did)
            continue
        except (ValueError, PermissionError):
            continue
        if _zombie(pid):  # killed, not yet reaped by its parent: as dead as it gets
            dead.append(did)
    if not dead:
        return 0
    result = session.execute(update(Digest).where(Digest.id.in_(dead), Digest.status == "sending",
                                                  Digest.lease_until >= now)
                             .values(lease_until=now - timedelta(seconds=1)))
    session.commit()
    return result.rowcount or 0


CLAIM_TRIES = 20


def claim_batch(session: Session, worker: str, *, lease: timedelta, limit: int = CLAIM_BATCH,
                editions: set[date] | None = None, subscriber_ids: list[int] | None = None,
                exclude: set[int] | None = None) -> list[int]:
    """Claim up to ``limit`` of the lowest claimable ids; [] when none is left (or, logged, when
    other senders won CLAIM_TRIES races in a row).

    On SQLite another sender can take every row found between the SELECT and the UPDATE
    (PostgreSQL's SKIP LOCKED rules that out): a lost race, not the end of the work, so look
    again (an empty answer ends a ``--once`` worker's run).
    """
    for _ in range(CLAIM_TRIES):
        found, mine = _claim_once(session, worker, lease=lease, limit=limit, editions=editions,
                                  subscriber_ids=subscriber_ids, exclude=exclude)
        if mine or not found:
            return mine
    log.warning("event=claim-lost worker=%s tries=%d: other senders took every row found; this round ends",
                worker, CLAIM_TRIES)
    return []


def _claim_once(session: Session, worker: str, *, lease: timedelta, limit: int, editions, subscriber_ids,
                exclude) -> tuple[bool, list[int]]:
    now = clock.now()
    postgres = session.get_bind().dialect.name == "postgresql"
    # One index-friendly query per claimable status (an OR across statuses scans the table);
    # merging their first `limit` ids gives exactly the lowest `limit` claimable ids overall.
    found: list[int] = []
    for cond in _claimable_by_status(now):
        query = select(Digest.id).where(cond)
        if exclude:
            query = query.where(Digest.id.notin_(exclude))
        if editions:
            query = query.where(Digest.edition.in_(editions))
        if subscriber_ids is not None:
            query = query.where(Digest.subscriber_id.in_(subscriber_ids))
        query = query.order_by(Digest.id).limit(limit)
        if postgres:
            query = query.with_for_update(skip_locked=True)
        found.extend(session.scalars(query))
    ids = sorted(found)[:limit]
    if not ids:
        session.rollback()
        return False, []
    # the WHERE repeats the claimable test: a row another sender took meanwhile is not ours;
    # a row still in flight was left mid-send by a sender that died or stalled: maybe delivered
    session.execute(update(Digest).where(Digest.id.in_(ids), _claimable(now, set()))
                    .values(status="sending", claimed_by=worker, lease_until=now + lease,
                            attempts=Digest.attempts + 1,
                            unconfirmed=Digest.unconfirmed + case((Digest.in_flight, 1), else_=0),
                            in_flight=False))
    session.commit()
    return True, list(session.scalars(select(Digest.id).where(
        Digest.id.in_(ids), Digest.claimed_by == worker, Digest.status == "sending").order_by(Digest.id)))


def close_exhausted(session: Session) -> int:
    """Deferred digests whose attempts are used up end `exhausted` (never retried again)."""
    result = session.execute(update(Digest).where(Digest.status == "deferred", Digest.attempts >= MAX_ATTEMPTS,
                                                  open_digest())
                             .values(status="exhausted", lease_until=None))
    session.commit()
    return result.rowcount or 0


def renew_lease(session: Session, worker: str, ids: list[int], lease: timedelta) -> set[int]:
    """Extend our lease on `ids`; returns those that are no longer ours."""
    now = clock.now()
    session.execute(update(Digest).where(Digest.id.in_(ids), Digest.claimed_by == worker, Digest.status == "sending")
                    .values(lease_until=now + lease))
    session.commit()
    ours = set(session.scalars(select(Digest.id).where(
        Digest.id.in_(ids), Digest.claimed_by == worker, Digest.status == "sending")))
    session.commit()
    return set(ids) - ours


def _release(session: Session, worker: str, ids: list[int]) -> None:
    session.execute(update(Digest).where(Digest.id.in_(ids), Digest.claimed_by == worker, Digest.status == "sending")
                    .values(status="planned", lease_until=None, attempts=Digest.attempts - 1))
    session.commit()
