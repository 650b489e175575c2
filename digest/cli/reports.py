"""`digest status`, `digest history` and `digest stats`: what happened, for operators and scripts."""
from __future__ import annotations

from datetime import timedelta

import typer
from rich.table import Table

from digest import clock
from digest.cli.common import UserError, check_format, current_settings, format_option
from digest.cli.output import console, emit, err

def status() -> None:
    """Show the last ingest per source, whether a scheduler is running (its last successful
    tick, jobs failing and why), the last edition and its failures.

    Example: digest status
    """
    from sqlalchemy import func, select

    from digest.sources.config import load_sources
    from digest.store.db import session_scope
    from digest.store.locks import holder_of
    from digest.store.models import AppState, Digest, IngestRun, Subscriber

    s = current_settings()
    try:
        configured = {spec.name for spec in load_sources(s.sources_file)}
    except Exception:  # an invalid sources.yaml is reported by `digest check`; show every run
        configured = None
    now = clock.now()
    recent = now - timedelta(days=1)
    with session_scope(s) as session:
        last_ids = select(func.max(IngestRun.id)).group_by(IngestRun.source)
        runs = session.scalars(select(IngestRun).where(IngestRun.id.in_(last_ids)).order_by(IngestRun.source)).all()
        # an ad-hoc `ingest --from` is shown for a day, not forever as if it were a source
        runs = [r for r in runs if configured is None or r.source in configured
                or (r.finished_at or r.started_at or now) >= recent]
        table = Table(title="last ingest per source")
        for col in ("source", "finished", "status", "new", "updated", "unchanged", "skipped", "errors"):
            table.add_column(col)
        for r in runs:
            name = r.source if configured is None or r.source in configured else f"{r.source} (ad hoc)"
            table.add_row(name, r.finished_at.strftime("%Y-%m-%d %H:%M") if r.finished_at else "-", r.status,
                          str(r.new), str(r.updated), str(r.unchanged), str(r.skipped), "; ".join(r.errors or []))
        console.print(table)
        state = {row.key: row.value for row in session.scalars(select(AppState))}
        _scheduler_status(state.get("scheduler"), holder_of(session, "scheduler"), now)
        last_edition = session.scalar(select(func.max(Digest.edition)))
        if last_edition:
            counts = dict(session.execute(select(Digest.status, func.count()).where(Digest.edition == last_edition)
                                          .group_by(Digest.status)).all())
            console.print(f"last edition {last_edition}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
            for d, address in session.execute(
                    select(Digest, Subscriber.email).join(Subscriber, Subscriber.id == Digest.subscriber_id)
                    .where(Digest.edition == last_edition, Digest.status.in_(("failed", "exhausted", "unconfirmed")))
                    .order_by(Digest.id).limit(10)):
                console.print(f"  {d.status} digest {d.id} to {address}: {d.last_error}", markup=False, highlight=False)
        if "topics_error" in state:
            err.print(f"topics.yaml is invalid (the last valid config is in use):\n{state['topics_error'].get('error')}",
                      markup=False, highlight=False)
        # --- topic health (issue 14): one line per topic readers mostly dislike
        from digest.topics.config import TopicConfigError, load_topics
        from digest.topics.report import unhealthy_lines

        try:
            topics_config = load_topics(s.topics_file)
        except TopicConfigError:
            topics_config = None
        for line in unhealthy_lines(session, topics_config) if topics_config else []:
            console.print(line, markup=False, highlight=False)
        # --- end topic health


def _scheduler_status(sched: dict | None, lease, now) -> None:
    """Only a live leader lease means a scheduler is running; the rest is its last report."""
    def out(line: str) -> None:
        console.print(line, markup=False, highlight=False)

    live = lease is not None and lease.expires_at >= now
    if not live:
        if sched:
            out(f"no scheduler is running (the last one, {sched.get('holder')}, reported at {sched.get('at')})")
        else:
            out("no scheduler is running (none ever ran against this database)")
    else:
        out(f"scheduler {lease.holder} is running (lease until {lease.expires_at.isoformat(timespec='seconds')})")
        if sched and sched.get("holder") == lease.holder:
            for job, when in (sched.get("next_runs") or {}).items():
                out(f"  next {job}: {when}")
    if not sched:
        return
    jobs = sched.get("jobs") or {}
    tick = (jobs.get("send_tick") or {}).get("ok_at")
    out(f"last successful send tick: {tick or 'never'}")
    for job, info in sorted(jobs.items()):
        if info.get("failures"):
            out(f"  job {job} failing since {info.get('failing_since')} ({info['failures']} runs in a row): "
                f"{info.get('error')}")


def history(subscriber: str = typer.Option(..., "--subscriber", help="Email of the subscriber."),
            limit: int = typer.Option(30, "--limit", help="Editions to show."),
            fmt: str = format_option()) -> None:
    """What a subscriber was sent, and when; for a digest not sent, its state and why
    (tsv/json: one row per paper).

    States: sent, planned, sending, deferred (will retry; attempt and time shown), exhausted (gave up after 5 attempts; its papers go to the next digest), unconfirmed (the server got it but never answered; not sent again), failed, skipped, expired. [N unconfirmed sends] counts sends the server never answered.

    Example: digest history --subscriber ada@example.org
    """
    from sqlalchemy import select

    from digest.store.db import session_scope
    from digest.store.models import Digest
    from digest.subscribers import get_by_email

    if check_format(fmt) != "table":
        return _history_rows(subscriber, limit, fmt)
    with session_scope(current_settings()) as session:
        sub = get_by_email(session, subscriber)
        if sub is None:
            raise UserError(f"no subscriber {subscriber!r}")
        console.print(f"{sub.email} ({sub.status}), topics: {', '.join(sub.topics or [])}")
        for d in session.scalars(select(Digest).where(Digest.subscriber_id == sub.id)
                                 .order_by(Digest.edition.desc()).limit(limit)):
            console.print(_history_line(d), markup=False, highlight=False)
            for section, shown, pid, title in _carried(session, d.id):
                console.print(f"   {section:<24} {pid:<16} {'' if shown else '(counted) '}{title}",
                              markup=False, highlight=False)


def _carried(session, digest_id: int) -> list[tuple]:
    """(section, shown, paper id, title) of what a digest carried, by section and position."""
    from sqlalchemy import select

    from digest.store.ledger import items_of
    from digest.store.models import Paper

    items = sorted(items_of(session, [digest_id]).get(digest_id, []), key=lambda it: (it.section, it.position))
    ids = sorted({it.paper_id for it in items})
    titles = {}
    for start in range(0, len(ids), 500):
        titles.update(session.execute(select(Paper.id, Paper.title).where(Paper.id.in_(ids[start:start + 500]))).all())
    return [(it.section, it.shown, it.paper_id, titles[it.paper_id]) for it in items if it.paper_id in titles]


def _history_line(d) -> str:
    """One digest in `digest history`: what happened and, unless it was sent, why."""
    from digest.delivery.send import MAX_ATTEMPTS

    head = f"{d.edition} {d.status}"
    if d.status in ("sent", "unconfirmed") and d.sent_at:
        head += f" at {d.sent_at:%Y-%m-%d %H:%M} UTC: {d.subject or '(no subject)'}"
    elif d.status == "deferred":
        retry = f", retry after {d.lease_until:%Y-%m-%d %H:%M} UTC" if d.lease_until else ""
        head += f" (attempt {d.attempts} of {MAX_ATTEMPTS}{retry})"
    elif d.status == "planned":
        head += " (not sent yet)"
    if d.unconfirmed:
        head += f" [{d.unconfirmed} unconfirmed send{'s' if d.unconfirmed != 1 else ''}]"
    if d.last_error and d.status != "sent":
        head += f" — {' '.join(d.last_error.split())}"
    return head


def _history_rows(subscriber: str, limit: int, fmt: str) -> None:
    """`history` for scripts: one row per paper of each digest."""
    from sqlalchemy import select

    from digest.store.db import session_scope
    from digest.store.models import Digest
    from digest.subscribers import get_by_email

    out = []
    with session_scope(current_settings()) as session:
        sub = get_by_email(session, subscriber)
        if sub is None:
            raise UserError(f"no subscriber {subscriber!r}")
        for d in session.scalars(select(Digest).where(Digest.subscriber_id == sub.id)
                                 .order_by(Digest.edition.desc()).limit(limit)):
            for section, shown, pid, title in _carried(session, d.id):
                out.append({"edition": str(d.edition), "status": d.status,
                            "sent_at": d.sent_at.strftime("%Y-%m-%d %H:%M UTC") if d.sent_at else "",
                            "subject": d.subject or "", "section": section, "paper": pid, "shown": bool(shown),
                            "title": title})
    emit(out, fmt=fmt)


def stats(editions: int = typer.Option(7, "--editions", min=1, help="How many recent editions.")) -> None:
    """Per edition: planned/sent/failed, papers per topic; and subscribers per topic.

    Example: digest stats --editions 14
    """
    from collections import Counter

    from sqlalchemy import func, select

    from digest.store.db import session_scope
    from digest.store.ledger import sections_of
    from digest.store.models import Digest, Subscriber

    with session_scope(current_settings()) as session:
        eds = session.scalars(select(Digest.edition).distinct().order_by(Digest.edition.desc()).limit(editions)).all()
        table = Table(title="editions")
        for col in ("edition", "digests", "sent", "failed", "other", "papers per topic"):
            table.add_column(col)
        for ed in eds:
            counts = dict(session.execute(select(Digest.status, func.count()).where(Digest.edition == ed)
                                          .group_by(Digest.status)).all())
            papers: dict[str, set] = {}
            for section in sections_of(session, Digest.edition == ed):
                if section:
                    papers.setdefault(section[0].section, set()).update(it.paper_id for it in section)
            topics = [(t, len(p)) for t, p in papers.items()]
            total = sum(counts.values())
            other = total - counts.get("sent", 0) - counts.get("failed", 0)
            table.add_row(str(ed), str(total), str(counts.get("sent", 0)), str(counts.get("failed", 0)), str(other),
                          ", ".join(f"{t} {n}" for t, n in sorted(topics)))
        console.print(table)
        per_topic = Counter()
        for (topics,) in session.execute(select(Subscriber.topics).where(Subscriber.status == "active")):
            per_topic.update(topics or [])
        table = Table(title="active subscribers per topic")
        table.add_column("topic")
        table.add_column("subscribers", justify="right")
        for topic, n in per_topic.most_common():
            table.add_row(topic, str(n))
        console.print(table)
