"""Named locks held in the database with an expiry: one scheduler per database, not a PID file."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest import clock
from digest.store.models import Lock


def acquire(session: Session, name: str, holder: str, ttl: float, now: datetime | None = None) -> bool:
    """Take or renew `name` for `holder`; True when held. Atomic on SQLite and PostgreSQL."""
    now = now or clock.now()
    expires = now + timedelta(seconds=ttl)
    # renew our own lock, or take over an expired one
    result = session.execute(
        update(Lock).where(Lock.name == name, (Lock.holder == holder) | (Lock.expires_at < now))
        .values(holder=holder, expires_at=expires))
    if result.rowcount:
        session.commit()
        return True
    try:
        session.execute(insert(Lock).values(name=name, holder=holder, expires_at=expires))
        session.commit()
        return True
    except IntegrityError:
        session.rollback()
        return False


def release(session: Session, name: str, holder: str) -> None:
    session.execute(delete(Lock).where(Lock.name == name, Lock.holder == holder))
    session.commit()


def holder_of(session: Session, name: str) -> Lock | None:
    return session.get(Lock, name)
