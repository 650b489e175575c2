"""The `digest` command: a thin layer over the Python API (digest.pipeline and friends)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from digest import clock
from digest.cli.common import (EXIT_DEFERRED, EXIT_FAILED, EXIT_USAGE, UserError, check_format, current_settings,
                               delivery_kind, format_option, parse_date)
from digest.cli.output import console, emit, err, error_line, stdout_console
from digest.cli.db import db_app
from digest.cli.subscribers import subs_app
from digest.cli.reports import history, stats, status
from digest.cli.topics import classify, topics_app
from digest.store.settings import SettingsError, get_settings, require_real_secret

app = typer.Typer(
    help="digest: a daily email digest of new research papers.\n\n"
         "Quick start: `digest send-now` ingests the configured sources, matches papers to topics, "
         "and delivers today's edition (by default to ./var/outbox).",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
app.add_typer(db_app, name="db")
app.add_typer(subs_app, name="subscribers")
app.add_typer(topics_app, name="topics")
app.command("classify")(classify)


# ------------------------------------------------------------------ ingest

@app.command()
def ingest(
    source: Optional[str] = typer.Option(None, "--source", help="Only this source from config/sources.yaml."),
    from_: Optional[list[str]] = typer.Option(None, "--from", help="Ingest this URL or path instead (repeatable)."),
    kind: str = typer.Option("auto", "--kind", help="Format of --from: arxiv, hf-daily or auto."),
    fmt: str = format_option(),
) -> None:
    """Fetch the daily listings and store new papers.

    Examples:
      digest ingest
      digest ingest --source sample-arxiv-cv
      digest ingest --from https://rss.arxiv.org/rss/cs.CV --kind arxiv
      digest ingest --from samples/hf-daily-day1.json
    """
    from digest.pipeline import run_ingest

    if kind not in ("arxiv", "hf-daily", "auto"):
        raise UserError(f"--kind must be arxiv, hf-daily or auto, not {kind!r}")
    check_format(fmt)
    s = current_settings()
    with console.status("ingesting…") as status:
        reports = run_ingest(s, source=source, locations=from_, kind=kind,
                             on_progress=lambda msg: status.update(msg))
    if not reports:
        raise UserError(f"no sources configured (add some to {s.sources_file} or use --from)")
    _ingest_table(reports, fmt)
    if all(r.failed for r in reports):
        raise typer.Exit(1)


def _ingest_table(reports, fmt: str = "table") -> None:
    rows = []
    for r in reports:
        skipped = sum(r.skipped.values())
        reasons = ", ".join(f"{k}: {v}" for k, v in r.skipped.items())
        rows.append({"source": r.source, "status": r.status, "new": r.new, "updated": r.updated,
                     "unchanged": r.unchanged, "skipped": f"{skipped}" + (f" ({reasons})" if reasons else ""),
                     "errors": "; ".join(r.errors + r.warnings)})
    emit(rows, fmt=fmt, title="ingest", right=("new", "updated", "unchanged", "skipped"))


# ------------------------------------------------------------------ preview / send-now

@app.command()
def preview(
    subscriber: str = typer.Option(..., "--subscriber", help="Email of the subscriber."),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default var/preview/<email>.html)."),
    edition: Optional[str] = typer.Option(None, "--edition", help="Edition date YYYY-MM-DD (default: today)."),
) -> None:
    """Render a subscriber's next digest without sending or recording anything.

    Example: digest preview --subscriber ada@example.org --out /tmp/ada.html
    """
    from digest.store.db import session_factory
    from digest.email.content import Recipient
    from digest.store.models import Subscriber
    from digest.pipeline import plan_options, run_match, subscriber_ids_for
    from digest.topics.current import current_topics
    from digest.plan import plan_edition
    from digest.email.render import Renderer
    from digest.email.builder import ContentBuilder
    from digest.topics.personal import PersonalOrder

    s = current_settings()
    ed = parse_date(edition)
    config, _ = current_topics(s)
    run_match(s, config)
    ids = subscriber_ids_for(s, subscriber)
    make = session_factory(s)
    with make() as session:
        sub = session.get(Subscriber, ids[0])
        opts = plan_options(s)
        opts.send_empty = True
        plan = plan_edition(session, config.ids, opts, edition=ed, subscriber_ids=ids, dry_run=True,
                            personal=PersonalOrder())     # the reader's own order, as the real send
        items = plan.dry[0][2] if plan.dry else []
        builder = ContentBuilder(s, {t.id: t.name for t in config.topics})
        builder.load(session, {i.paper_id for i in items})
        content = builder.build(Recipient(sub.id, sub.email, sub.name, sub.timezone, sub.link_secret),
                                ed or clock.now().date(), items, weekly=sub.frequency == "weekly",
                                order=sub.topics)
    renderer = Renderer(s)
    rendered = renderer.render(content) if not content.is_empty else renderer.render_nothing_new(content)
    out = out or (s.data_dir / "preview" / (sub.email.replace("@", "_at_").replace("/", "_") + ".html"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(rendered.html, encoding="utf-8")
    console.print(f"subject: {rendered.subject}")
    console.print(f"{content.shown_count} papers shown, {content.total_count} in all; wrote {out}")


@app.command("send-now")
def send_now_cmd(
    no_ingest: bool = typer.Option(False, "--no-ingest", help="Skip ingestion; use what is stored."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan and render, but send and record nothing."),
    subscriber: Optional[str] = typer.Option(None, "--subscriber", help="Only this subscriber."),
    edition: Optional[str] = typer.Option(None, "--edition", help="Name the edition YYYY-MM-DD (date in the email and idempotency key). Default: each subscriber's local today."),
) -> None:
    """Run the whole pipeline once, now: ingest, match, plan, render, deliver.

    Running it twice for the same edition sends nothing the second time. A dry run
    (--dry-run or DIGEST_DELIVERY=dry-run) sends and records nothing.

    Exit codes: 0 all sent (an "unconfirmed" digest counts: the server got it without answering);
    1 some digest failed for good (a 5xx reply, or 5 deferred attempts used up: "exhausted", see
    `digest status`);
    2 a usage mistake or invalid setting (nothing ran); 3 nothing failed but some digests were
    deferred (SMTP server down or a 4xx reply): they are retried by the next run.

    Examples:
      digest send-now
      digest send-now --no-ingest --subscriber ada@example.org
      digest send-now --dry-run
    """
    from rich.progress import Progress

    from digest.pipeline import send_now

    s = current_settings()
    ed = parse_date(edition)
    dry_run = dry_run or delivery_kind(s) == "dry-run"
    if not dry_run and delivery_kind(s) == "smtp":
        require_real_secret(s, "sending through smtp://")
    with Progress(console=stdout_console(), transient=True) as progress:
        task = progress.add_task("starting", total=None)
        report = send_now(s, ingest=not no_ingest, dry_run=dry_run, subscriber=subscriber, edition=ed,
                          on_progress=lambda msg: progress.update(task, description=msg),
                          on_sent=lambda n: progress.advance(task, n))
    if report.ingest:
        _ingest_table(report.ingest)
    if report.topics_error:
        err.print(f"warning: topics.yaml is invalid, used the last valid config:\n{report.topics_error}",
                  markup=False, highlight=False)
    for line in report.plan.warnings:
        err.print(f"warning: {line}", markup=False, highlight=False)
    for line in report.previews:
        console.print(f"[dry-run] {line}", markup=False, highlight=False)
    table = Table(title="send" + (" (dry run)" if dry_run else ""))
    for col in ("planned", "nothing new", "already done", "sent", "deferred", "failed", "exhausted",
                "unconfirmed"):
        table.add_column(col, justify="right")
    sr = report.send
    table.add_row(str(report.plan.planned), str(report.plan.empty), str(report.plan.already),
                  str(sr.sent), str(sr.deferred), str(sr.failed), str(sr.exhausted), str(sr.unconfirmed))
    console.print(table)
    for line in sr.errors:
        err.print(line, markup=False, highlight=False)
    if s.delivery.startswith("file://") and sr.sent:
        console.print(f"open the digests in {s.delivery.removeprefix('file://')} (one .html per message)")
    if sr.failed or sr.exhausted:
        err.print(f"failed {sr.failed + sr.exhausted}" + (f", deferred {sr.deferred}" if sr.deferred else "")
                  + ": see `digest status`", markup=False, highlight=False)
        raise typer.Exit(EXIT_FAILED)
    if sr.deferred:
        err.print(f"deferred {sr.deferred}: the SMTP server did not take them now; the next run "
                  "(digest run, digest worker or send-now) retries them", markup=False, highlight=False)
        raise typer.Exit(EXIT_DEFERRED)


# ------------------------------------------------------------------ run / status / history / stats

@app.command()
def run(
    wait: bool = typer.Option(True, "--wait/--no-wait",
                              help="If another scheduler is the leader, stand by and take over when it dies "
                                   "(default), or exit at once (--no-wait)."),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log one JSON object per line."),
) -> None:
    """Run the scheduler: ingest on a cron, plan (and send) each edition at the subscriber's local time.

    One leader per database (a lease row renewed every DIGEST_LEADER_LEASE_SECONDS/3 s); more `digest run` instances stand by and take over within the lease time when the leader dies. With DIGEST_SCHEDULER_SENDS=false it only plans and `digest worker` processes send.

    SIGTERM/SIGINT finish the message in flight and exit cleanly.

    Example: DIGEST_DELIVERY=smtp://mail:25 digest run
    """
    from digest.logs import setup_logging
    from digest.scheduler import DigestScheduler, SchedulerBusy

    from digest.topics.current import current_topics

    s = current_settings()
    if s.scheduler_sends and delivery_kind(s) == "smtp":
        require_real_secret(s, "digest run (it sends through smtp://)")
    current_topics(s)  # no valid topics.yaml, now or earlier: every tick would fail, so do not start
    setup_logging(json_logs or s.log_json, level=logging.INFO)
    scheduler = DigestScheduler(s)
    try:
        scheduler.run_forever(wait_for_lock=wait)
    except SchedulerBusy as exc:
        raise UserError(str(exc)) from None
    if scheduler.lost_leadership:
        raise typer.Exit(1)


@app.command()
def worker(
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, max=64,
                                    help="Worker processes to run (each claims its own batches)."),
    once: bool = typer.Option(False, "--once", help="Exit when no planned digest is left instead of waiting for more."),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log one JSON object per line."),
) -> None:
    """Send planned digests: claim batches under a lease, render, deliver, mark each one sent.

    Run any number of workers, on any number of machines, against one database (PostgreSQL for more than one machine); the scheduler (`digest run` with DIGEST_SCHEDULER_SENDS=false) plans the editions.

    A killed worker's digests are taken over when its lease (DIGEST_SEND_LEASE_SECONDS) expires, at once by a worker on the same host; the message it had in flight counts as unconfirmed (DIGEST_AMBIGUOUS_RETRY): a reader gets at most two copies. SIGTERM finishes the message in flight and exits.

    Examples:
      digest worker --concurrency 2
      digest worker --once
    """
    from digest.logs import setup_logging
    from digest.delivery.worker import run_workers

    s = current_settings()
    kind = delivery_kind(s)
    if kind == "dry-run":
        raise UserError("digest worker marks what it sends as sent, so it does not run with DIGEST_DELIVERY=dry-run; "
                        "use `digest send-now --dry-run` to see an edition without sending it")
    if kind == "smtp":
        require_real_secret(s, "digest worker (it sends through smtp://)")
    setup_logging(json_logs or s.log_json, level=logging.INFO)
    raise typer.Exit(run_workers(s, concurrency=concurrency, once=once, json_logs=json_logs or s.log_json))


# what happened: digest/cli/reports.py (kept here, in this order, for --help)
app.command()(status)
app.command()(history)
app.command()(stats)


@app.command()
def web(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """Serve the subscriber pages: subscribe (double opt-in), confirm, preferences, unsubscribe.

    Links in emails point at DIGEST_PUBLIC_URL; put this server (behind TLS) there.
    Example: digest web --host 0.0.0.0 --port 8000
    """
    from digest.web.app import listen, serve

    s = current_settings()
    require_real_secret(s, "digest web")
    try:
        sock = listen(host, port)   # a port in use or a foreign host: one line, before uvicorn
    except OSError as exc:
        error_line(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        raise typer.Exit(1) from None
    serve(s, host=host, port=port, sock=sock)


# ------------------------------------------------------------------ secret / check

@app.command()
def secret() -> None:
    """Print a fresh random DIGEST_SECRET_KEY (the HMAC key of subscriber links).

    Example: export DIGEST_SECRET_KEY=$(digest secret)
    """
    import secrets

    sys.stdout.write(secrets.token_urlsafe(32) + "\n")


@app.command()
def check(fmt: str = format_option()) -> None:
    """Check the installation before trusting it: settings, topics.yaml, sources.yaml, the
    database (reachable, at the latest migration), SMTP (connect, EHLO, STARTTLS/AUTH when
    configured, QUIT; nothing is sent), the public URL, the secret key and the From domain.

    Prints OK/WARN/FAIL per check; exits 1 when any check FAILs. `digest run` logs the same
    checks when it starts.

    Example: digest check
    """
    from digest.check import run_checks

    check_format(fmt)
    results = run_checks(current_settings())
    emit([{"check": r.name, "result": r.status, "detail": r.detail} for r in results], fmt=fmt, title="digest check")
    if any(r.status == "FAIL" for r in results):
        raise typer.Exit(1)


# ------------------------------------------------------------------ entry point

def _usage_line(exc) -> str:
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "digest"
    return f"{where}: {exc.format_message()} (see `{where} --help`)"


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations run quietly on first use


def main() -> None:
    import click
    from sqlalchemy.exc import OperationalError

    from digest.sources.fetch import FetchError
    from digest.pipeline import PipelineError
    from digest.topics.current import NoValidTopicsError
    from digest.sources.config import SourcesConfigError
    from digest.subscribers import SubscriberError

    _quiet_libraries()
    try:
        code = app(standalone_mode=False)  # returns the exit code of typer.Exit instead of raising
        sys.exit(code if isinstance(code, int) else 0)
    except (typer.Exit, click.exceptions.Exit) as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        console.print(exc.ctx.get_help())
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:  # usage mistakes: unknown command or option, bad value
        error_line(_usage_line(exc) if isinstance(exc, click.UsageError) else exc.format_message())
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.exit(130)
    except (UserError, SubscriberError, PipelineError, NoValidTopicsError, SourcesConfigError, SettingsError,
            FetchError) as exc:
        error_line(str(exc))
        sys.exit(EXIT_USAGE)
    except OperationalError as exc:  # the database is down or unreachable: not a bug, one line
        error_line(_database_down(exc))
        sys.exit(1)
    except OSError as exc:  # a file or folder named on the command line: missing, not writable
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        error_line(f"{exc.strerror or exc}{where}")
        sys.exit(1)


def _database_down(exc) -> str:
    from sqlalchemy.engine import make_url

    try:
        where = make_url(get_settings().database_url).render_as_string(hide_password=True)
    except Exception:
        where = "the database"
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"cannot use {where}: {reason[0] if reason else type(exc).__name__}"


if __name__ == "__main__":
    main()
