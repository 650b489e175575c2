"""The preferences form: everything the CLI can change (topics and their order, daily or weekly
and the weekday, send time, Trending, time zone, receive/pause/unsubscribe), read and checked,
and the sentence that says what the reader gets next and when.

Errors are ``FieldError``s: plain strings (shown in the list on top of the form) that also name
their field, so the template marks that field aria-invalid and points it at the list.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time as dtime, timedelta, timezone
from zoneinfo import ZoneInfo

from digest.subscribers import WEEKDAYS, SubscriberError, check_timezone

DELIVERY = ("active", "paused", "unsubscribed")
_HHMM = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(:00)?")


class FieldError(str):
    """An error message that knows its form field."""

    field: str

    def __new__(cls, text: str, field: str):
        obj = str.__new__(cls, text)
        obj.field = field
        return obj


def read_form(form, known: list, current: list[str] | None = None) -> tuple[dict, list[FieldError]]:
    """The submitted preferences, cleaned, and the errors. Topic order: each chosen topic's
    "order-{id}" number, ties kept in the order the reader had (then the list order)."""
    errors: list[FieldError] = []
    ids = [t.id for t in known]
    chosen = list(dict.fromkeys(str(v) for v in form.getlist("topics")))
    if not chosen:
        errors.append(FieldError("Choose at least one topic.", "topics"))
    elif any(t not in ids for t in chosen):
        errors.append(FieldError("Choose topics from the list.", "topics"))
        chosen = [t for t in chosen if t in ids]
    before = {t: i for i, t in enumerate(list(current or []) + ids)}

    def position(tid: str) -> tuple[float, int]:
        raw = str(form.get(f"order-{tid}") or "").strip()
        try:
            return (float(raw), before.get(tid, 0))
        except ValueError:
            return (float(before.get(tid, 0) + 1), before.get(tid, 0))
    chosen.sort(key=position)

    tz = str(form.get("timezone") or "UTC")
    try:
        tz = check_timezone(tz)
    except SubscriberError:
        errors.append(FieldError("Choose a time zone from the list (an IANA name such as Europe/Berlin).", "timezone"))
        tz = "UTC"
    frequency = str(form.get("frequency") or "daily")
    if frequency not in ("daily", "weekly"):
        errors.append(FieldError("Choose daily or weekly.", "frequency"))
        frequency = "daily"
    day = str(form.get("weekly_day") or "0")
    weekly_day = int(day) if day.isdigit() and int(day) < 7 else None
    if weekly_day is None:
        errors.append(FieldError("Choose the weekday of the weekly digest.", "weekly_day"))
        weekly_day = 0
    send_time = str(form.get("send_time") or "").strip()
    m = _HHMM.fullmatch(send_time) if send_time else None
    if send_time and m is None:
        errors.append(FieldError("Enter the send time as hours and minutes, like 07:30.", "send_time"))
        send_time = ""
    elif m is not None:
        send_time = f"{int(m.group(1)):02d}:{m.group(2)}"
    delivery = str(form.get("delivery") or "active")
    if delivery not in DELIVERY:
        errors.append(FieldError("Choose whether to receive, pause or stop the digest.", "delivery"))
        delivery = "active"
    return {"topics": chosen, "timezone": tz, "frequency": frequency, "weekly_day": weekly_day,
            "send_time": send_time, "trending": form.get("trending") == "1", "delivery": delivery}, errors


def apply(sub, values: dict, now: datetime) -> bool:
    """Write the form's values to a Subscriber row. True when the reader asked to come back
    after unsubscribing (or before confirming): they are `pending` until they confirm again
    (double opt-in), and the caller mails the confirmation."""
    sub.topics, sub.timezone = values["topics"], values["timezone"]
    sub.frequency, sub.weekly_day = values["frequency"], values["weekly_day"]
    sub.send_time = values["send_time"] or None
    sub.trending = values["trending"]
    delivery, confirm = values["delivery"], False
    if delivery != sub.status:
        if delivery == "unsubscribed" or sub.status in ("active", "paused", "bounced"):
            sub.status, sub.status_at = delivery, now
            if delivery == "active":
                sub.consecutive_failures = 0
        elif delivery == "active":      # unsubscribed or pending: consent is asked again
            sub.status, sub.status_at, sub.consented_at = "pending", now, now
            confirm = True
        # paused from unsubscribed/pending would be a live subscription without consent: ignored
    sub.updated_at = now
    return confirm


def state(sub, default_send_time: str) -> dict:
    """What the form shows for a subscriber."""
    return {"email": sub.email, "topics": list(sub.topics or []), "timezone": sub.timezone, "status": sub.status,
            "delivery": sub.status if sub.status in DELIVERY else "active",
            "frequency": sub.frequency if sub.frequency in ("daily", "weekly") else "daily",
            "weekly_day": sub.weekly_day if isinstance(sub.weekly_day, int) and 0 <= sub.weekly_day < 7 else 0,
            "send_time": sub.send_time or "", "default_send_time": default_send_time,
            "trending": bool(sub.trending)}


def next_delivery(st: dict, names: dict[str, str], now: datetime, sent_today: bool = False) -> str:
    """One sentence: what the reader gets next, and when (in their time zone)."""
    if st["delivery"] != "active":
        return ("Nothing: the digest is paused. Choose Receive to start again." if st["delivery"] == "paused"
                else "Nothing: you are unsubscribed. Choose Subscribe again to come back.")
    try:
        zone = ZoneInfo(st["timezone"])
    except Exception:  # noqa: BLE001 - a stored zone that no longer exists
        zone = ZoneInfo("UTC")
    hh, mm = (st["send_time"] or st["default_send_time"] or "08:00").split(":")[:2]
    local_now = now.astimezone(zone)
    day: date = local_now.date()
    for _ in range(15):
        at = datetime.combine(day, dtime(int(hh), int(mm))).replace(tzinfo=zone).astimezone(timezone.utc)
        due = st["frequency"] == "daily" or day.weekday() == st["weekly_day"]
        if due and at > now and not (sent_today and day == local_now.date()):
            break
        day += timedelta(days=1)
    topics = [names.get(t, t) for t in st["topics"]]
    what = ("The weekly digest" if st["frequency"] == "weekly" else "The daily digest") + " of " + (
        ", ".join(topics[:-1]) + " and " + topics[-1] if len(topics) > 1 else (topics[0] if topics else "your topics"))
    if st["trending"]:
        what += ", then Trending on Hugging Face"
    when = f"{WEEKDAYS[day.weekday()].capitalize()} {day.day} {day.strftime('%b %Y')} at {int(hh):02d}:{mm} ({st['timezone']})"
    return f"{what}, on {when}, when there are new papers."
