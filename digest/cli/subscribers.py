"""`digest subscribers …`: add, remove, list, import and export subscribers."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import click
import typer

from rich.table import Table

from digest.cli.common import UserError, current_settings
from digest.cli.output import console, err

subs_app = typer.Typer(help="Manage subscribers.", no_args_is_help=True)

def _known_topics(s) -> set[str]:
    from digest.topics.current import current_topics

    config, _ = current_topics(s)
    return set(config.ids)


@subs_app.command("add")
def subs_add(
    email: str,
    topics: str = typer.Option(..., "--topics", help="Comma-separated topic ids, in the order of the email's sections (Trending comes last)."),
    name: Optional[str] = typer.Option(None, "--name"),
    tz: str = typer.Option("UTC", "--tz", help="IANA timezone, e.g. Europe/Berlin."),
    weekly: Optional[str] = typer.Option(None, "--weekly", help="Weekly on this weekday (e.g. monday) instead of daily."),
    trending: bool = typer.Option(False, "--trending/--no-trending", help="Add a Trending section (top HF papers)."),
) -> None:
    """Add a subscriber (active at once: you vouch for their consent).

    An address that unsubscribed (or bounced, or never confirmed) is not re-added: only its owner
    can come back, through the confirmation email `digest subscribers reconfirm EMAIL` sends.

    Example: digest subscribers add ada@example.org --topics multimodal-llm,pathology --tz Europe/Berlin
    """
    from digest.store.db import session_scope
    from digest.subscribers import add_subscriber, parse_topics, parse_weekday

    s = current_settings()
    topic_ids = parse_topics(topics, _known_topics(s))
    with session_scope(s) as session:
        sub = add_subscriber(session, email, topic_ids, name=name, tz=tz, trending=trending,
                             frequency="weekly" if weekly else "daily",
                             weekly_day=parse_weekday(weekly) if weekly else 0)
        console.print(f"added {sub.email} ({', '.join(sub.topics)})", markup=False, highlight=False)


@subs_app.command("remove")
def subs_remove(email: str, delete: bool = typer.Option(False, "--delete", help="Delete the row and its history instead of marking it unsubscribed.")) -> None:
    """Unsubscribe someone (keeps their history), or delete them with --delete.

    Example: digest subscribers remove ada@example.org
    """
    from digest.store.db import session_scope
    from digest.subscribers import get_by_email, set_status

    s = current_settings()
    with session_scope(s) as session:
        if delete:
            sub = get_by_email(session, email)
            if sub is None:
                raise UserError(f"no subscriber {email!r}")
            session.delete(sub)
            console.print(f"deleted {sub.email}")
        else:
            sub = set_status(session, email, "unsubscribed")
            console.print(f"unsubscribed {sub.email}")


@subs_app.command("set-topics")
def subs_set_topics(email: str, topics: str = typer.Option(..., "--topics", help="Comma-separated topic ids, in the order of the email's sections (Trending comes last).")) -> None:
    """Replace a subscriber's topics (at least one; to stop the digest use `subscribers remove`).

    Example: digest subscribers set-topics ada@example.org --topics pathology,cardiology
    """
    from digest.store.db import session_scope
    from digest.subscribers import parse_topics, set_topics

    s = current_settings()
    topic_ids = parse_topics(topics, _known_topics(s))
    with session_scope(s) as session:
        sub = set_topics(session, email, topic_ids)
        console.print(f"{sub.email}: {', '.join(topic_ids)}", markup=False, highlight=False)


@subs_app.command("reconfirm")
def subs_reconfirm(email: str) -> None:
    """Mail someone who is not active (unsubscribed, bounced, pending) a confirmation link.

    They stay `pending` and get no digest until they press the button in that email (double
    opt-in); the link is valid for three days. Exits 1 when the mail could not be sent.

    Example: digest subscribers reconfirm ada@example.org
    """
    from digest.store.db import session_scope
    from digest.subscribers import start_reconfirm
    from digest.topics.current import current_topics
    from digest.web.mails import confirmation_email, send_mail

    s = current_settings()
    config, _ = current_topics(s)
    with session_scope(s) as session:
        sub = start_reconfirm(session, email)
        msg = confirmation_email(s, sub, {t.id: t.name for t in config.topics})
        address = sub.email
        # sent before the change is committed: a mail that did not go out changes nothing
        problem = send_mail(s, msg, quiet=True)
        if problem:
            session.rollback()
    if problem:
        err.print(f"error: confirmation mail to {address} not sent ({problem}); nothing changed",
                  markup=False, highlight=False)
        raise typer.Exit(1)
    console.print(f"{address} is pending; a confirmation link was mailed to it", markup=False, highlight=False)


@subs_app.command("rotate-secret")
def subs_rotate_secret(email: str) -> None:
    """Give a subscriber a new link secret: every unsubscribe, preferences and confirm link sent
    to them so far stops working (the next digest carries new ones).

    Example: digest subscribers rotate-secret ada@example.org
    """
    from digest.store.db import session_scope
    from digest.subscribers import rotate_secret

    with session_scope(current_settings()) as session:
        sub = rotate_secret(session, email)
        console.print(f"{sub.email}: new link secret; earlier links no longer work", markup=False, highlight=False)


@subs_app.command("list")
def subs_list(status: Optional[str] = typer.Option(
        None, "--status", click_type=click.Choice(["active", "unsubscribed", "bounced", "pending", "paused"]),
        help="Only this status.")) -> None:
    """List subscribers.

    Example: digest subscribers list --status active
    """
    from rich.text import Text
    from sqlalchemy import select

    from digest.store.db import session_scope
    from digest.store.models import Subscriber
    from digest.subscribers import printable

    s = current_settings()
    table = Table()
    for col in ("email", "name", "topics", "timezone", "frequency", "status"):
        table.add_column(col)
    with session_scope(s) as session:
        q = select(Subscriber).order_by(Subscriber.email)
        if status:
            q = q.where(Subscriber.status == status)
        for sub in session.scalars(q):
            freq = sub.frequency if sub.frequency == "daily" else f"weekly ({sub.weekly_day})"
            # Text, not markup; control characters escaped: names are user input
            table.add_row(*(Text(printable(v)) for v in (sub.email, sub.name or "", ", ".join(sub.topics or []),
                                                          sub.timezone, freq, sub.status)))
    console.print(table)


@subs_app.command("import")
def subs_import(file: Path) -> None:
    """Import subscribers from CSV: the columns of `subscribers export` (email and topics required;
    topics separated by ';').

    Bad rows are reported with their line number (an address twice in the file, no topics,
    control characters, ...); every other row is imported and existing addresses are updated.
    Import never makes anyone active who is not: a new address gets the file's status (active
    without a status column), an existing one that is not active stays so. Cells starting with
    an apostrophe before = + - @ are read without it (export adds it against CSV injection).
    Example: digest subscribers import people.csv
    """
    from digest.store.db import session_scope
    from digest.subscribers import import_csv

    s = current_settings()
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"{file}: {exc.strerror or exc}") from None
    known = _known_topics(s)
    with session_scope(s) as session:
        report = import_csv(session, text, known_topics=known, filename=str(file))
    for line in report.errors:
        err.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(f"imported: {report.added} added, {report.updated} updated, {len(report.errors)} bad rows")
    if report.errors:
        raise typer.Exit(1)


@subs_app.command("export")
def subs_export(
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    with_links: bool = typer.Option(False, "--with-links", help="Also each subscriber's id and link secret, so "
                                    "links in emails already sent keep working after importing into an empty "
                                    "database. The file then holds secrets: keep it private."),
) -> None:
    """Export subscribers as CSV (importable again, into any database, without changing anyone's consent).

    Columns: email, name, topics, timezone, status, status_at, frequency, weekday, send_time,
    trending, consented_at, confirmed_at, created_at (times in UTC, ISO 8601); with
    --with-links also id, link_secret, legacy_links. Cells a spreadsheet would run as a
    formula (= + - @ tab CR) start with an apostrophe.
    Example: digest subscribers export --with-links --out people.csv
    """
    from digest.store.db import session_scope
    from digest.subscribers import export_csv

    with session_scope(current_settings()) as session:
        text = export_csv(session, with_links=with_links)
    if out:
        if with_links:  # secrets: readable by the operator only, from the first byte
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
