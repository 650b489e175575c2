"""Subscribers: validation, add/remove/set-topics, reconfirm, link secrets, CSV import/export."""
from __future__ import annotations

import csv
import io
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, text as sql
from sqlalchemy.orm import Session

from digest import clock
from digest.store.models import Subscriber, new_link_secret

log = logging.getLogger("digest.subscribers")
STATUSES = ("active", "unsubscribed", "bounced", "pending", "paused")
FREQUENCIES = ("daily", "weekly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# The first four columns are the hand-written import format; the rest make an export lossless.
CSV_HEADER = ["email", "name", "topics", "timezone", "status", "status_at", "frequency", "weekday",
              "send_time", "trending", "consented_at", "confirmed_at", "created_at"]
# `export --with-links` adds these, so links in emails already sent keep working after a move
# into an empty database (tokens carry the subscriber id and are bound to the link secret)
LINK_COLUMNS = ["id", "link_secret", "legacy_links"]
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); export
# prefixes such cells with an apostrophe, import takes it off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SEND_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
# Line and paragraph separators and bidi overrides rearrange what a terminal or page shows.
_INVISIBLE = {"\u2028", "\u2029", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


class SubscriberError(ValueError):
    pass


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" or ch in _INVISIBLE


def printable(value: str | None) -> str:
    """``value`` with control characters shown as escapes (\\x1b), safe for a terminal."""
    text = value or ""
    if not any(_is_control(ch) for ch in text):
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if _is_control(ch) else ch for ch in text)


def check_text(value: str | None, what: str) -> str:
    """Refuse control characters (terminal escapes, CR/LF, bidi overrides) in ``value``."""
    for ch in value or "":
        if _is_control(ch):
            raise SubscriberError(f"{what} contains a control character ({printable(ch)}); remove it")
    return value or ""


def clean_name(value: str | None) -> str | None:
    return " ".join(check_text(value, "name").split())[:200] or None


def normalise_email(value: str) -> str:
    check_text(value, "email")
    try:
        info = validate_email((value or "").strip(), check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise SubscriberError(f"invalid email {value!r}: {exc}") from None
    # Local parts are case-sensitive in theory, never in practice: one person, one row.
    return info.normalized.lower()


def mailbox_key(email: str) -> str:
    """The mailbox an address delivers to, for rate limits: ``ada+x@example.org`` and
    ``ada+y@example.org`` are one mailbox (sub-addressing)."""
    local, _, domain = email.lower().rpartition("@")
    return f"{local.split('+', 1)[0] or local}@{domain}"


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
    if not topics:
        raise SubscriberError("no topics given (at least one topic id; see `digest topics list`)")
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


def check_send_time(value: str | None) -> str | None:
    value = (value or "").strip()
    if value and not _SEND_TIME.fullmatch(value):
        raise SubscriberError(f"send time {value!r} must be HH:MM (00:00 to 23:59)")
    return value or None


def get_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == normalise_email(email)))


def _require(session: Session, email: str) -> Subscriber:
    sub = get_by_email(session, email)
    if sub is None:
        raise SubscriberError(f"no subscriber {email!r}")
    return sub


def _since(sub: Subscriber) -> str:
    when = sub.status_at or sub.updated_at
    return f" since {when:%Y-%m-%d}" if when else ""


def add_subscriber(session: Session, email: str, topics: list[str], *, name: str | None = None,
                   tz: str | None = None, frequency: str = "daily", weekly_day: int = 0,
                   trending: bool = False, status: str = "active", update: bool = False) -> Subscriber:
    email = normalise_email(email)
    tz = check_timezone(tz)
    if not topics:
        raise SubscriberError("no topics given (at least one topic id; see `digest topics list`)")
    if frequency not in FREQUENCIES:
        raise SubscriberError(f"unknown frequency {frequency!r} (daily or weekly)")
    if status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r}")
    name = clean_name(name)
    sub = session.scalar(select(Subscriber).where(Subscriber.email == email))
    now = clock.now()
    if sub is not None and not update:
        if sub.status == "active":
            raise SubscriberError(f"{email} is already subscribed (use set-topics to change topics)")
        raise SubscriberError(f"{email} is {sub.status}{_since(sub)}; only they can come back: "
                              f"`digest subscribers reconfirm {email}` mails them a confirmation link")
    if sub is None:
        sub = Subscriber(email=email, created_at=now, consented_at=now, status_at=now)
        session.add(sub)
    elif sub.status != status:
        if status == "active":
            raise SubscriberError(f"{email} is {sub.status}{_since(sub)}; only they can re-activate it")
        sub.status_at = now
    sub.name, sub.topics, sub.timezone, sub.frequency = name, topics, tz, frequency
    sub.weekly_day, sub.trending, sub.status, sub.updated_at = weekly_day, trending, status, now
    session.flush()
    return sub


def set_status(session: Session, email: str, status: str) -> Subscriber:
    sub = _require(session, email)
    if sub.status != status:
        sub.status_at = clock.now()
    sub.status = status
    sub.updated_at = clock.now()
    if status == "active":
        sub.consecutive_failures = 0
    return sub


def set_topics(session: Session, email: str, topics: list[str]) -> Subscriber:
    if not topics:
        raise SubscriberError("no topics given (at least one topic id; to stop the digest use `subscribers remove`)")
    sub = _require(session, email)
    sub.topics = topics
    sub.updated_at = clock.now()
    return sub


def start_reconfirm(session: Session, email: str) -> Subscriber:
    """Put a subscriber who is not active back to ``pending``; the caller mails them a confirm
    link (digest.web.mails). Only their own confirmation makes them active again."""
    sub = _require(session, email)
    if sub.status == "active":
        raise SubscriberError(f"{sub.email} is already active")
    now = clock.now()
    sub.status, sub.status_at, sub.updated_at = "pending", now, now
    # They did not ask this time; clearing the request time also kills any confirm link mailed
    # before (confirm links are bound to it, see digest.web.mails.confirm_bind).
    sub.consented_at = None
    session.flush()
    return sub


def rotate_secret(session: Session, email: str) -> Subscriber:
    """A new link secret: every link sent to this subscriber so far stops working."""
    sub = _require(session, email)
    sub.link_secret, sub.legacy_links, sub.updated_at = new_link_secret(), False, clock.now()
    return sub


# ------------------------------------------------------------------ CSV

@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


def _escape_cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_START + ("'",)) else value


def _unescape_cell(value: str) -> str:
    return value[1:] if value[:1] == "'" and value[1:2] and value[1] in FORMULA_START + ("'",) else value


def _time_out(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).isoformat() if value else ""


def _time_in(value: str, column: str) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise SubscriberError(f"{column} {value!r} is not a date and time like 2026-11-21T08:00:00+00:00") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _bool_in(value: str, column: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0", ""):
        return False
    raise SubscriberError(f"{column} {value!r} must be true or false")


def export_csv(session: Session, *, with_links: bool = False) -> str:
    """Every subscriber, every field that is theirs, one row each; ``with_links`` adds their id
    and link secret (the file then holds secrets)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER + (LINK_COLUMNS if with_links else []))
    for sub in session.scalars(select(Subscriber).order_by(Subscriber.email)):
        row = [sub.email, sub.name or "", ";".join(sub.topics or []), sub.timezone, sub.status,
               _time_out(sub.status_at), sub.frequency, WEEKDAYS[sub.weekly_day or 0], sub.send_time or "",
               "true" if sub.trending else "false", _time_out(sub.consented_at), _time_out(sub.confirmed_at),
               _time_out(sub.created_at)]
        if with_links:
            row += [str(sub.id), sub.link_secret, "true" if sub.legacy_links else "false"]
        writer.writerow([_escape_cell(cell) for cell in row])
    return out.getvalue()


def import_csv(session: Session, text: str, *, known_topics: set[str] | None, filename: str = "<csv>",
               update: bool = True) -> ImportReport:
    """Import rows with the columns of CSV_HEADER (``email`` and ``topics`` required, topics
    separated by ';'). Bad rows are reported with their line number; every good row is imported.
    A row never makes anyone active who is not: a new address is imported with its status
    (``active`` when the file has no status column), an existing one is never re-activated."""
    report = ImportReport()
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in CSV_HEADER + LINK_COLUMNS]
    if "email" not in header or "topics" not in header or unknown:
        what = f"unknown column(s) {', '.join(map(repr, unknown))}" if unknown else "header must include email and topics"
        report.errors.append(f"{filename}:1: {what} (columns: {','.join(CSV_HEADER)})")
        return report
    reader.fieldnames = header
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        try:
            if None in row:
                raise SubscriberError("too many fields")
            cells = {k: _unescape_cell(v or "") for k, v in row.items()}
            email = normalise_email(cells["email"])
            if email in seen:
                raise SubscriberError(f"{email} is already on line {seen[email]} of this file")
            seen[email] = line
            existing = session.scalar(select(Subscriber).where(Subscriber.email == email))
            with session.begin_nested():
                _import_row(session, email, cells, existing, known_topics, update)
        except SubscriberError as exc:
            report.errors.append(f"{filename}:{line}: {exc}")
            continue
        if existing:
            report.updated += 1
        else:
            report.added += 1
    if "id" in header and session.get_bind().dialect.name == "postgresql":
        # rows inserted with their own ids leave the id sequence behind: the next add would collide
        session.execute(sql("SELECT setval(pg_get_serial_sequence('subscribers', 'id'), "
                             "GREATEST((SELECT max(id) FROM subscribers), 1))"))
    return report


def _keep_links(session: Session, sub: Subscriber, cells: dict[str, str]) -> None:
    """A new row from `export --with-links`: the same id and link secret as before the move. (An
    existing subscriber keeps theirs: changing a secret is rotate-secret's job.)"""
    secret = cells.get("link_secret", "").strip()
    if secret:
        if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", secret):
            raise SubscriberError("link_secret must be 16-64 letters, digits, '-' or '_'")
        sub.link_secret = secret
    if "legacy_links" in cells:
        sub.legacy_links = _bool_in(cells["legacy_links"], "legacy_links")
    wanted = cells.get("id", "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise SubscriberError(f"id {wanted!r} must be a positive whole number")
        holder = session.get(Subscriber, int(wanted))
        if holder is not None:
            raise SubscriberError(f"id {wanted} is {holder.email} here: import with ids into an empty database, "
                                  "or leave the id column out (their old links then stop working)")
        sub.id = int(wanted)


def _import_row(session: Session, email: str, cells: dict[str, str], existing: Subscriber | None,
                known_topics: set[str] | None, update: bool) -> None:
    topics = parse_topics(cells.get("topics"), known_topics, sep=";")
    name, tz = clean_name(cells.get("name")), check_timezone(cells.get("timezone"))
    status = cells.get("status", "").strip().lower() or (existing.status if existing else "active")
    if status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r} ({', '.join(STATUSES)})")
    frequency = cells.get("frequency", "").strip().lower() or (existing.frequency if existing else "daily")
    if frequency not in FREQUENCIES:
        raise SubscriberError(f"unknown frequency {frequency!r} (daily or weekly)")
    times = {c: _time_in(cells.get(c, "").strip(), c) for c in ("status_at", "consented_at", "confirmed_at", "created_at")}
    now = clock.now()
    if existing is not None:
        if not update:
            raise SubscriberError(f"{email} already exists")
        if status == "active" and existing.status != "active":
            raise SubscriberError(f"{email} is {existing.status}{_since(existing)} here; import does not re-activate "
                                  f"anyone (`digest subscribers reconfirm {email}` asks them)")
        sub = existing
    else:
        sub = Subscriber(email=email, created_at=times["created_at"] or now)
        _keep_links(session, sub, cells)
        session.add(sub)
    if "status_at" in cells:
        sub.status_at = times["status_at"] or (sub.status_at if sub.status == status else now)
    elif sub.status != status or existing is None:
        sub.status_at = now
    if "consented_at" in cells or existing is None:
        sub.consented_at = times["consented_at"] if "consented_at" in cells else now
    if "confirmed_at" in cells:
        sub.confirmed_at = times["confirmed_at"]
    if "created_at" in cells and times["created_at"]:
        sub.created_at = times["created_at"]
    sub.name, sub.topics, sub.timezone, sub.status, sub.frequency = name, topics, tz, status, frequency
    if "weekday" in cells:
        sub.weekly_day = parse_weekday(cells["weekday"]) if cells["weekday"].strip() else 0
    if "send_time" in cells:
        sub.send_time = check_send_time(cells["send_time"])
    if "trending" in cells:
        sub.trending = _bool_in(cells["trending"], "trending")
    sub.updated_at = now
    session.flush()
