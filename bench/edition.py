"""Stage 6: one edition end to end, next to a bare smtplib loop.

A new day's papers are ingested and matched; then, timed as ``edition_seconds``: the edition
planned (``digest.plan.plan_edition`` in a fresh process) and every digest rendered and sent to
the SMTP sink (bench/sink.py) by ``digest worker --once --concurrency N``. Then
``baseline_seconds``: one bare smtplib loop over one connection sending as many messages, of
the same sizes as the sink received, to the same sink. The sink is the lean one by default
(``python -m bench --edition-sink``): with aiosmtpd both runs mostly measure that sink's own
CPU, on the cores the senders use. The sink's per-recipient counts check that each digest
arrived exactly once.
"""
from __future__ import annotations

import smtplib
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from bench.common import make_settings, run_in_child, run_workers_cli

_HEAD = (b"From: Paper Digest <digest@bench.example>\r\nTo: <baseline@bench.example>\r\n"
         b"Subject: baseline\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")


def _plan_child(kw: dict, now_iso: str, edition_iso: str, out) -> None:
    try:
        from digest.pipeline import plan_options
        from digest.plan import plan_edition
        from digest.store.db import session_factory
        from digest.topics.config import load_topics

        s = make_settings(kw)
        config = load_topics(s.topics_file)
        t0 = time.perf_counter()
        with session_factory(s)() as session:
            plan = plan_edition(session, config.ids, plan_options(s), edition=date.fromisoformat(edition_iso),
                                now=datetime.fromisoformat(now_iso))
        out.send({"planned": plan.planned, "empty": plan.empty, "plan_s": time.perf_counter() - t0})
    except BaseException as exc:  # report, do not hang the parent
        import traceback

        out.send({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


def _payload(size: int, filler: bytes) -> bytes:
    """A message of ``size`` bytes as the sink counts them: headers, then QP-like lines."""
    return _HEAD + filler[:max(0, size - len(_HEAD))]


def _baseline_child(port: int, sizes: list[int], out) -> None:
    try:
        line = b"=3D" + b"x" * 71 + b"=\r\n"                 # 76 characters + CRLF, as QP writes
        filler = line * (max(sizes, default=0) // len(line) + 2)
        t0 = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            for i, size in enumerate(sizes):
                smtp.sendmail("digest@bench.example", [f"baseline{i}@bench.example"], _payload(size, filler))
        out.send({"baseline_s": time.perf_counter() - t0})
    except BaseException as exc:
        import traceback

        out.send({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


def stage_edition(kw: dict, day: datetime, processes: int, log, sink_kind: str | None = None) -> dict:
    """Plan, render and deliver the edition of ``day`` (its papers already ingested and
    matched) with ``digest worker --concurrency processes``; then the bare loop. ``sink_kind``:
    see bench/sink.py (None: its default)."""
    from sqlalchemy import func, select

    from bench.sink import SinkProcess
    from digest.store.db import dispose_all, session_factory
    from digest.store.models import Digest, Subscriber

    edition = day.date()
    dispose_all()
    with SinkProcess(sink_kind) as sink:
        sink.reset()
        t0 = time.perf_counter()
        plan = run_in_child(_plan_child, kw, day.isoformat(), edition.isoformat())
        run = run_workers_cli(kw, f"smtp://127.0.0.1:{sink.port}", processes)
        edition_s = time.perf_counter() - t0
        stats = sink.stats()
        log(f"  edition: {stats['messages']} messages in {edition_s:.1f} s; bare smtplib loop ...")
        sink.reset()
        base = run_in_child(_baseline_child, sink.port, stats["sizes"])
        bstats = sink.stats()
    with session_factory(make_settings(kw))() as session:
        sent = session.scalar(select(func.count()).where(Digest.edition == edition, Digest.status == "sent"))
        expected = {e.lower() for e in session.scalars(select(Subscriber.email).join(
            Digest, Digest.subscriber_id == Subscriber.id).where(Digest.edition == edition))}
    got = stats["per_rcpt"]
    return {
        "edition_date": edition.isoformat(), "edition_planned": plan["planned"], "edition_plan_s": plan["plan_s"],
        "edition_sent": sent, "edition_sink_received": stats["messages"], "edition_sink_bytes": stats["bytes"],
        "edition_duplicates": sum(c - 1 for c in got.values() if c > 1),
        "edition_missing": len(expected - set(got)), "edition_unexpected": len(set(got) - expected),
        "edition_workers": processes, "edition_exit_code": run["exit_code"], "edition_stderr_tail": run["stderr_tail"],
        "edition_seconds": edition_s, "baseline_seconds": base["baseline_s"],
        "baseline_edition_received": bstats["messages"], "baseline_edition_bytes": bstats["bytes"],
        "edition_ratio": edition_s / base["baseline_s"] if base["baseline_s"] else 0.0,
    }


def stage_edition_day(kw: dict, gen, old: list, day: datetime, work: Path, papers: int, processes: int,
                      log, sink_kind: str | None = None) -> dict:
    """A new day's feed ingested and matched (not timed), then :func:`stage_edition`."""
    from bench.scale import feed_for_day, stage_ingest, stage_match

    entries = feed_for_day(gen, papers, old)
    stage_ingest(kw, work / "feed-edition.xml", entries, day - timedelta(hours=12), day - timedelta(hours=6, minutes=30))
    stage_match(kw, day - timedelta(hours=6, minutes=30))
    return stage_edition(kw, day, processes, log, sink_kind)
