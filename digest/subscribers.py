"""Subscribers: validation, add/remove/set-topics, CSV import/export."""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest import clock
from digest.store.models import Subscriber

log = logging.getLogger("digest.subscribers")
STATUSES = ("active", "unsubscribed", "bounced", "pending", "paused")
FREQUENCIES = ("daily", "weekly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CSV_HEADER = ["email", "name", "topics", "timezone"]


class SubscriberError(ValueError):
    pass


def normalise_email(value: str) -> str:
    try:
        info = validate_email((value or "").strip(), check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise SubscriberError(f"invalid email {value!r}: {exc}") from None
    # Local parts are case-sensitive in theory, never in practice: one person, one row.
    return info.normalized.lower()


def check_timezone(value: str | None) -> str:
    value = (value or "UTC").strip() or "UTC"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SubscriberError(f"unknown timezone {value!r} (use an IANA name such as Europe/Berlin)") from None
    return value


def parse_topics(value: str | list[str] | None, known: set[str] | None = None, sep: str = ",") -> list[str]:
    items = value if isinstance(value, list) else (value or "").split(sep)
    topics = list(dict.fromkeys(t.strip() for t in items if t and t.strip()))
    if known is not None:
        unknown = [t for t in topics if t not in known]
        if unknown:
            raise SubscriberError(f"unknown topic id(s): {', '.join(unknown)} (see `digest topics list`)")
    return topics


def parse_weekday(value: str | int) -> int:
    if isinstance(value, int) or str(value).isdigit():
        day = int(value)
        if 0 <= day <= 6:
            return day
    else:
        name = str(value).strip().lower()
        for i, full in enumerate(WEEKDAYS):
            if name and full.startswith(name[:3]):
                return i
    raise SubscriberError(f"unknown weekday {value!r} (use monday..sunday)")


def get_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == normalise_email(email)))


def add_subscriber(session: Session, email: str, topics: list[str], *, name: str | None = None,
                   tz: str | None = None, frequency: str = "daily", weekly_day: int = 0,
                   trending: bool = False, status: str = "active", update: bool = False) -> Subscriber:
    email = normalise_email(email)
    tz = check_timezone(tz)
    if frequency not in FREQUENCIES:
        raise SubscriberError(f"unknown frequency {frequency!r} (daily or weekly)")
    if status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r}")
    clean_name = " ".join((name or "").split())[:200] or None
    sub = session.scalar(select(Subscriber).where(Subscriber.email == email))
    now = clock.now()
    if sub is not None and not update:
        raise SubscriberError(f"{email} is already subscribed (use set-topics to change topics)")
    if sub is None:
        sub = Subscriber(email=email, created_at=now)
        session.add(sub)
    sub.name, sub.topics, sub.timezone, sub.frequency = clean_name, topics, tz, frequency
    sub.weekly_day, sub.trending, sub.status, sub.updated_at = weekly_day, trending, status, now
    session.flush()
    return sub


def set_status(session: Session, email: str, status: str) -> Subscriber:
    sub = get_by_email(session, email)
    if sub is None:
        raise SubscriberError(f"no subscriber {email!r}")
    sub.status = status
    sub.updated_at = clock.now()
    if status == "active":
        sub.consecutive_failures = 0
    return sub


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


def import_csv(session: Session, text: str, *, known_topics: set[str] | None, filename: str = "<csv>",
               update: bool = True) -> ImportReport:
    """Import rows `email,name,topics,timezone` (topics separated by ';'). Bad rows are reported
    with their line number; every good row is imported."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" not in header:
        report.errors.append(f"{filename}:1: header must include 'email' (expected {','.join(CSV_HEADER)})")
        return report
    reader.fieldnames = header
    for row in reader:
        line = reader.line_num
        try:
            if None in row:
                raise SubscriberError("too many fields")
            email = normalise_email(row.get("email") or "")
            topics = parse_topics(row.get("topics"), known_topics, sep=";")
            existing = session.scalar(select(Subscriber).where(Subscriber.email == email))
            with session.begin_nested():
                add_subscriber(session, email, topics, name=row.get("name"), tz=row.get("timezone"),
                               update=update, status=existing.status if existing else "active")
        except SubscriberError as exc:
            report.errors.append(f"{filename}:{line}: {exc}")
            continue
        if existing:
            report.updated += 1
        else:
            report.added += 1
    return report


def export_csv(session: Session) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER + ["status", "frequency"])
    for sub in session.scalars(select(Subscriber).order_by(Subscriber.id)):
        writer.writerow([sub.email, sub.name or "", ";".join(sub.topics or []), sub.timezone, sub.status, sub.frequency])
    return out.getvalue()
