"""Scale benchmark: one synthetic edition at N subscribers, stage by stage.

    .venv/bin/python -m bench [--subscribers 100000] [--json FILE] [--profile FILE]

Stages (each through the product's own entry points):

1. ingest   ``digest.sources.ingest.ingest_source`` on a generated 2,000-entry arXiv RSS feed, then the
            same bytes again (``reingest_ratio``), then the same entries with a new
            ``lastBuildDate`` (``reingest_changed_ratio``: the listing fingerprint ignores channel time stamps);
2. match    ``digest.topics.store.match_pending`` on today's P papers × T topics;
3. plan + render  ``digest.plan.plan_edition``, then the whole edition rendered and composed by
            ``digest worker --once --concurrency N`` with ``DIGEST_DELIVERY=discard`` (N = --processes,
            default the CPU count; with N = 1, --profile or --render-limit: ``send_pending`` in
            the same process), all in a separate process tree whose peak RSS is reported;
4. deliver  a sample of the edition re-queued and sent over SMTP to an aiosmtpd sink in its own
            process: by ``send_pending`` in one process over one connection, then again by
            ``digest worker --concurrency N``; next to a bare smtplib loop sending one
            pre-rendered message of median size over one connection (``deliver_ratio`` uses the
            worker pool, ``deliver_1proc_ratio`` the single process); the sink's per-recipient
            counts check that every message arrived exactly once;
4b. postgres  the same edition planned on a throw-away PostgreSQL and samples sent by
            ``digest worker`` with 1 and 2 processes (bench/postgres.py; --no-postgres skips it);
5. storage  database size before/after each edition, after ``digest.delivery.ledger.compact_ledger``,
            for two consecutive editions (growth must not depend on the number of past ones).
6. edition  one more day's edition end to end (bench/edition.py): plan, render and deliver to the
            sink with ``digest worker --concurrency N`` (``edition_seconds``), next to a bare smtplib
            loop sending as many messages of the same sizes to the same sink (``baseline_seconds``);
            the sink is --edition-sink (default the lean one); --no-edition skips it.

History: D past days of papers (with their topic matches) and of ``sent`` digests are
inserted directly in bulk, each digest with its section list and each distinct section once
(digest/store/ledger.py's form); ``compact_ledger`` then forgets what the digests older than
the window carried, as the scheduler's daily runs would have, so the ledger is in its steady
state. ``db_bytes_30_days`` is the file after D days and the editions, compacted;
``ledger_bytes_per_digest`` the bytes of the digests and ledger_sections tables and their
indexes (SQLite's dbstat) per digest.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bench.common import (_clean_env, db_path, make_settings, peak_rss_mb, run_in_child,  # noqa: F401
                          run_workers_cli, ts)
from bench.overlap import overlapped
from bench.storage import LEDGER_TABLES, compact, db_size, window_days  # noqa: F401
from bench.deliver import stage_deliver
from bench.report import print_results
from bench.synth import Generator, PaperDef, arxiv_rss

FEED_ENTRIES = 2000


# -------------------------------------------------------------------------------- helpers


# -------------------------------------------------------------------------------- history

from bench.common import OneLineParser  # noqa: E402
def build_history(kw: dict, gen: Generator, *, n_subs: int, n_papers: int, days: int, now: datetime,
                  version: str, log) -> dict:
    """Subscribers, D days of papers (+ matches) and of sent digests (+ what they carried)."""
    con = sqlite3.connect(db_path(kw))
    con.execute("PRAGMA synchronous=OFF")
    zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "America/Los_Angeles"]
    created = ts(now - timedelta(days=days + 30))
    sub_topics: list[tuple[str, ...]] = []
    rows = []
    for i in range(1, n_subs + 1):
        topics = tuple(gen.subscriber_topics())
        sub_topics.append(topics)
        rows.append((i, f"reader{i}@bench.example", f"Reader {i}" if i % 3 else None, json.dumps(list(topics)),
                     zones[i % len(zones)], "active", "daily", 0, 0, None, 0, created, created,
                     secrets.token_urlsafe(24), 0))
    con.executemany("INSERT INTO subscribers (id, email, name, topics, timezone, status, frequency, weekly_day, "
                    "trending, send_time, consecutive_failures, created_at, updated_at, link_secret, legacy_links) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    log(f"  {n_subs} subscribers")

    # papers of the past days, oldest first, with their topic matches
    from digest.topics.match import Matcher
    from digest.topics.config import load_topics

    matcher = Matcher(load_topics(Path(kw["config_dir"]) / "topics.yaml"))
    day_papers: dict[int, list[PaperDef]] = {}
    for k in range(days, 0, -1):
        seen = now - timedelta(days=k, hours=6, minutes=30)
        papers = [gen.paper() for _ in range(n_papers)]
        day_papers[k] = papers
        con.executemany(
            "INSERT INTO papers (id, arxiv_id, title, abstract, authors, categories, primary_category, version, "
            "announce_type, is_new, first_seen_at, updated_at, published_at, abs_url, pdf_url, content_hash, "
            "matched_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(p.id, p.id, p.title, p.abstract, json.dumps(p.authors), json.dumps(p.categories), p.categories[0], 1,
              "new", 1, ts(seen), ts(seen), ts(seen), f"https://arxiv.org/abs/{p.id}", f"https://arxiv.org/pdf/{p.id}",
              "", version) for p in papers])
        # the real matcher on the papers a plan can still see (2 × look-back); intended topics before
        if k <= 2 * kw["lookback_days"]:
            for p in papers:
                found = matcher.match(p)
                p.topics = [a.topic_id for a in found]
                p.extra["scores"] = {a.topic_id: (a.score, a.matched) for a in found}
        con.executemany(
            "INSERT INTO topic_matches (paper_id, topic_id, score, matched, matched_at) VALUES (?,?,?,?,?)",
            [(p.id, t, *(lambda sc: (sc[0], json.dumps(sc[1])))(p.extra.get("scores", {}).get(t, (0.8, [t]))), ts(seen))
             for p in papers for t in p.topics])
    con.commit()
    log(f"  {days * n_papers} past papers")

    # sent digests, one per subscriber and past day with something in it, each with its section
    # list; each distinct section stored once (digest.store.ledger's form, as the planner writes it)
    from digest.store.ledger import encode_ids, section_hash

    names = {t.id: t.name for t in gen.topics}

    win = window_days(kw) + 1
    did = 0
    n_items = 0
    n_sections = 0
    per_digest: list[int] = []
    for k in range(days, 0, -1):
        planned = now - timedelta(days=k)
        edition = planned.date().isoformat()
        by_topic: dict[str, list[PaperDef]] = {}
        for p in day_papers[k]:
            for t in p.topics:
                by_topic.setdefault(t, []).append(p)

        def sections(topics: tuple) -> list[tuple[str, int, tuple[str, ...]]]:
            taken: set[str] = set()
            out = []
            for t in topics:  # a paper goes to the first of the subscriber's topics it matches
                papers = tuple(p.id for p in by_topic.get(t, ()) if p.id not in taken)
                taken.update(papers)
                if papers:
                    out.append((t, min(10, len(papers)), papers))
            return out

        cache: dict[tuple, tuple[str, int, int]] = {}   # topics -> (section ids, papers, shown)
        section_ids: dict[tuple, int] = {}
        digests, new_sections = [], []
        for sid, topics in enumerate(sub_topics, start=1):
            got = cache.get(topics)
            if got is None:
                secs = sections(topics)
                ids = []
                for key in secs:
                    if key not in section_ids:
                        n_sections += 1
                        section_ids[key] = n_sections
                        new_sections.append((n_sections, section_hash(key), key[0], key[1], " ".join(key[2]),
                                             planned.date().isoformat()))
                    ids.append(section_ids[key])
                got = cache[topics] = (encode_ids(ids), sum(len(k[2]) for k in secs), sum(k[1] for k in secs))
            text, n_papers_in, shown = got
            if not n_papers_in:
                continue
            did += 1
            # the subject as a real send records it (same length); a sent digest names no sender
            subject = (f"{n_papers_in} new papers: {names[topics[0]]}"
                       f"{' and ' + names[topics[1]] if len(topics) > 1 else ''} — {planned:%d %b %Y}")
            digests.append((did, sid, edition, "sent", 1, subject, shown, ts(planned),
                            ts(planned + timedelta(minutes=5, microseconds=did % 999_983)), None, text))
            n_items += n_papers_in
            if k <= win:
                per_digest.append(n_papers_in)
        con.executemany("INSERT INTO ledger_sections (id, hash, section, shown, papers, used_on) "
                        "VALUES (?,?,?,?,?,?)", new_sections)
        con.executemany("INSERT INTO digests (id, subscriber_id, edition, status, attempts, subject, "
                        "paper_count, planned_at, sent_at, claimed_by, sections) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        digests)
        con.commit()
        del digests, new_sections
    con.execute("ANALYZE")
    con.commit()
    con.close()
    log(f"  {did} past digests carrying {n_items} papers in {n_sections} distinct sections")
    return {"history_digests": did, "history_items": n_items, "history_sections": n_sections,
            "history_items_per_digest": round(sum(per_digest) / max(1, len(per_digest)), 1),
            "day_papers": day_papers}


def feed_for_day(gen: Generator, n_new: int, old: list[PaperDef]) -> list[PaperDef]:
    """P new papers (new/cross) plus replacements of older ones, 2,000 entries at least."""
    rng = gen.rng
    entries = []
    for _ in range(n_new):
        p = gen.paper()
        p.announce_type = "cross" if rng.random() < 0.15 else "new"
        entries.append(p)
    for p in rng.sample(old, min(len(old), max(0, FEED_ENTRIES - n_new))):
        entries.append(PaperDef(id=p.id, title=p.title, abstract=p.abstract + " We add new experiments.",
                                authors=p.authors, categories=p.categories, topics=p.topics, version=2,
                                announce_type=rng.choice(["replace", "replace-cross"])))
    return entries


# -------------------------------------------------------------------------------- stages

def stage_ingest(kw: dict, path: Path, entries: list[PaperDef], day: datetime, now: datetime) -> dict:
    from digest.sources.ingest import adhoc_spec, ingest_source

    s = make_settings(kw)
    path.write_bytes(arxiv_rss(entries, day))
    t0 = time.perf_counter()
    first = ingest_source(s, adhoc_spec(str(path)), now=now)
    t1 = time.perf_counter()
    again = ingest_source(s, adhoc_spec(str(path)), now=now)
    t2 = time.perf_counter()
    # same entries, different bytes (a rebuilt feed): parse + upsert of unchanged papers
    path.write_bytes(arxiv_rss(entries, day, build=day + timedelta(minutes=7)))
    t3 = time.perf_counter()
    changed = ingest_source(s, adhoc_spec(str(path)), now=now)
    t4 = time.perf_counter()
    for rep in (first, again, changed):
        if rep.failed:
            raise RuntimeError(f"ingest failed: {rep.errors}")
    return {
        "entries": len(entries), "new": first.new, "updated": first.updated, "status": first.status,
        "first_s": t1 - t0, "reingest_s": t2 - t1, "reingest_status": again.status,
        "reingest_changed_s": t4 - t3, "reingest_changed_status": changed.status,
        "reingest_changed_unchanged": changed.unchanged, "feed_bytes": path.stat().st_size,
    }


def stage_match(kw: dict, now: datetime) -> dict:
    from sqlalchemy import func, select

    from digest.store.db import session_scope
    from digest.topics.match import Matcher
    from digest.topics.store import match_pending
    from digest.store.models import TopicMatch
    from digest.topics.config import load_topics

    s = make_settings(kw)
    config = load_topics(s.topics_file)
    t0 = time.perf_counter()
    matcher = Matcher(config)
    with session_scope(s) as session:
        n = match_pending(session, config, matcher, lookback_days=s.lookback_days, now=now)
    t1 = time.perf_counter()
    with session_scope(s) as session:
        total = session.scalar(select(func.count()).select_from(TopicMatch).where(TopicMatch.matched_at >= now))
    return {"papers": n, "topics": len(config.topics), "pairs": n * len(config.topics), "seconds": t1 - t0,
            "matches": total}


def _edition_child(kw: dict, now_iso: str, edition_iso: str, profile: str | None, limit: int, processes: int,
                   overlap: bool, out) -> None:
    """Plan + render (send_pending with a null backend) in a fresh process: its peak RSS is the send's.
    With `processes` > 1 (and no profile or limit), the rendering is done by `digest worker --once
    --concurrency N` with DIGEST_DELIVERY=discard (sends nothing, records as sent), as an operator would send a large edition."""
    try:
        from digest.store.db import session_factory
        from digest.delivery.backends import open_backend
        from digest.pipeline import plan_options
        from digest.plan import plan_edition
        from digest.email.render import Renderer
        from digest.delivery.send import send_pending
        from digest.topics.config import load_topics

        s = make_settings(kw)
        now, edition = datetime.fromisoformat(now_iso), date.fromisoformat(edition_iso)
        config = load_topics(s.topics_file)
        names = {t.id: t.name for t in config.topics}
        make = session_factory(s)
        rss0 = peak_rss_mb()
        prof = None
        if profile:
            from pyinstrument import Profiler

            prof = Profiler(interval=0.002)
            prof.start()
        t0 = time.perf_counter()
        with make() as session:
            plan = plan_edition(session, config.ids, plan_options(s), edition=edition, now=now)
        t1 = time.perf_counter()
        if processes > 1 and not profile and not limit:
            from sqlalchemy import func, select

            from digest.store.models import Digest

            run = run_workers_cli(kw, "discard", processes)
            t2 = time.perf_counter()
            with make() as session:
                rendered = session.scalar(select(func.count()).where(Digest.edition == edition, Digest.status == "sent"))
                left = session.scalar(select(func.count()).where(Digest.edition == edition, Digest.status != "sent"))
            together = {}
            if overlap:
                try:
                    together = overlapped(kw, make, s, config, edition, now, processes)
                except Exception as exc:   # the planned-then-rendered figures above still count
                    together = {"overlap_error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            out.send({**together,
                "planned": plan.planned, "empty": plan.empty, "already": plan.already, "groups": plan.groups,
                "plan_s": t1 - t0, "render_s": t2 - t1, "rendered": rendered, "render_failed": left,
                "render_errors": [run["stderr_tail"]] if run["exit_code"] else [], "backend_count": rendered,
                "avg_message_bytes": 0, "dry_run_duplicates": 0, "render_processes": processes,
                "peak_rss_mb": max(peak_rss_mb(), run["peak_rss_mb"]), "start_rss_mb": rss0, "profiled": False,
            })
            return
        import threading

        stop = threading.Event()
        done = [0]

        def on_sent(k: int) -> None:
            done[0] += k
            if limit and done[0] >= limit:
                stop.set()

        with open_backend(s) as backend:  # settings.delivery = "dry-run": serialises, sends nothing
            report = send_pending(s, make, backend, Renderer(s), names, editions=None, stop=stop, on_sent=on_sent)
        t2 = time.perf_counter()
        rss_end = peak_rss_mb()  # before the profiler builds its report
        if prof is not None:
            prof.stop()
            Path(profile).write_text(prof.output_html(), encoding="utf-8")
            Path(profile + ".txt").write_text(prof.output_text(unicode=False, color=False, show_all=False),
                                              encoding="utf-8")
        out.send({
            "planned": plan.planned, "empty": plan.empty, "already": plan.already, "groups": plan.groups,
            "plan_s": t1 - t0, "render_s": t2 - t1, "rendered": report.sent, "render_failed": report.failed,
            "render_errors": report.errors[:5], "backend_count": backend.sent,
            "avg_message_bytes": backend.bytes / max(1, backend.sent),
            "dry_run_duplicates": sum(c - 1 for c in backend.recipients.values() if c > 1),
            "peak_rss_mb": rss_end, "render_processes": 1,
            "start_rss_mb": rss0, "profiled": bool(profile),
        })
    except BaseException as exc:  # report, do not hang the parent
        import traceback

        out.send({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})



# -------------------------------------------------------------------------------- scenario

def machine_info() -> dict:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine()}


def run(args, log=print) -> dict:
    n, T, P, D = args.subscribers, args.topics, args.papers, args.days
    import bench.sink

    bench.sink.DEFAULT_KIND = args.sink
    work = Path(args.workdir or tempfile.mkdtemp(prefix=f"digest-bench-{n}-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "config"
    cfg.mkdir(exist_ok=True)
    gen = Generator(args.seed, T)
    (cfg / "topics.yaml").write_text(gen.topics_yaml(), encoding="utf-8")
    db = work / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    kw = {"database_url": f"sqlite:///{db}", "delivery": "dry-run", "config_dir": cfg, "data_dir": work,
          "secret_key": "bench", "public_url": "https://digest.bench.example", "from_addr":
          "Paper Digest <digest@bench.example>", "lookback_days": 7, "ledger_keep_days": args.keep_days,
          "section_cap": 10, "trending_count": 5, "send_empty": False, "smtp_rate": 0.0, "smtp_retries": 3,
          "max_html_bytes": 100_000, "list_id": "bench.digest.example"}
    from digest.store.db import get_engine
    from digest.topics.config import load_topics

    s = make_settings(kw)
    get_engine(s.database_url)  # migrations
    config = load_topics(s.topics_file)
    now = datetime.now(timezone.utc).replace(hour=8, minute=0, second=0, microsecond=0)
    result: dict = {"subscribers": n, "topics": T, "papers_per_day": P, "days": D,
                    "ledger_keep_days": args.keep_days, "lookback_days": 7, "seed": args.seed, "sink": args.sink,
                    "edition_sink": args.edition_sink if args.edition else None,
                    "workdir": str(work), **machine_info()}

    log(f"[N={n}] generating history: {D} days × {P} papers, {n} subscribers")
    t0 = time.perf_counter()
    hist = build_history(kw, gen, n_subs=n, n_papers=P, days=D, now=now, version=config.version, log=log)
    day_papers = hist.pop("day_papers")
    result.update(hist, setup_s=round(time.perf_counter() - t0, 1))
    old = [p for k in range(1, min(D, 14) + 1) for p in day_papers[k]]

    # 1. ingest (today's feed)
    log("[1] ingest")
    entries = feed_for_day(gen, P, old)
    ing = stage_ingest(kw, work / "feed-day0.xml", entries, now - timedelta(hours=12), now - timedelta(hours=6, minutes=30))
    result.update({
        "ingest_entries": ing["entries"], "ingest_new": ing["new"], "ingest_updated": ing["updated"],
        "ingest_s": ing["first_s"], "ingest_papers_per_s": ing["entries"] / ing["first_s"],
        "reingest_s": ing["reingest_s"], "reingest_status": ing["reingest_status"],
        "reingest_ratio": ing["reingest_s"] / ing["first_s"],
        "reingest_changed_s": ing["reingest_changed_s"], "reingest_changed_ratio": ing["reingest_changed_s"] / ing["first_s"],
        "reingest_changed_unchanged": ing["reingest_changed_unchanged"], "feed_bytes": ing["feed_bytes"],
    })

    # 2. match
    log("[2] match")
    m = stage_match(kw, now - timedelta(hours=6, minutes=30))
    result.update({"match_papers": m["papers"], "match_pairs": m["pairs"], "match_s": m["seconds"],
                   "match_pairs_per_s": m["pairs"] / m["seconds"], "match_assignments": m["matches"]})

    # storage before the edition (the ledger as the previous editions' compaction left it: one
    # pass here over the bulk-inserted history, as the scheduler's daily passes would have)
    compact(kw, now - timedelta(days=1))
    size0 = db_size(kw)

    # 3. plan + render
    log("[3] plan + render (child process)")
    ed = run_in_child(_edition_child, kw, now.isoformat(), now.date().isoformat(), args.profile, args.render_limit,
                      args.processes, args.overlap and args.processes > 1 and not args.profile and not args.render_limit)
    result.update({
        "planned": ed["planned"], "plan_empty": ed["empty"], "plan_groups": ed["groups"],
        "plan_s": ed["plan_s"], "render_s": ed["render_s"], "rendered": ed["rendered"],
        "render_failed": ed["render_failed"], "render_errors": ed["render_errors"],
        "plan_digests_per_s": ed["planned"] / ed["plan_s"] if ed["plan_s"] else 0.0,
        "render_digests_per_s": ed["rendered"] / ed["render_s"] if ed["render_s"] else 0.0,
        "plan_render_digests_per_s": 1.0 / (ed["plan_s"] / ed["planned"] + ed["render_s"] / ed["rendered"])
        if ed["planned"] and ed["rendered"] else 0.0, "render_processes": ed["render_processes"],
        "render_limit": args.render_limit or None,
        "avg_message_bytes": round(ed["avg_message_bytes"]), "dry_run_duplicates": ed["dry_run_duplicates"],
        "peak_rss_mb": ed["peak_rss_mb"], "child_start_rss_mb": ed["start_rss_mb"], "profiled": ed["profiled"],
    })
    if ed.get("overlap_planned"):
        result.update({"overlap_planned": ed["overlap_planned"], "overlap_plan_s": ed["overlap_plan_s"],
                       "overlap_wall_s": ed["overlap_wall_s"],
                       "plan_render_overlap_digests_per_s": ed["overlap_planned"] / ed["overlap_wall_s"],
                       "peak_rss_mb": max(result["peak_rss_mb"], ed["overlap_peak_rss_mb"])})
    if ed.get("overlap_error"):
        result["overlap_error"] = ed["overlap_error"]
    if args.profile:
        result["profile_file"] = args.profile

    # 4. deliver
    sample = min(args.deliver_sample, ed["rendered"]) if args.deliver_sample else ed["rendered"]
    log(f"[4] deliver ({sample} digests) + smtplib baseline")
    dl = stage_deliver(kw, now.date(), sample, min(args.baseline_messages, max(sample, 1)), log,
                       only_sample=bool(args.render_limit), workers=args.processes if args.processes > 1 else 0)
    result.update(dl)
    base = dl["baseline_msgs_per_s"]
    # one process over one connection, and the worker pool (what `deliver_*` reports when it ran)
    result["deliver_1proc_msgs_per_s"] = dl["deliver_msgs_per_s"]
    result["deliver_1proc_ratio"] = dl["deliver_msgs_per_s"] / base if base else 0.0
    if dl.get("pool_msgs_per_s"):
        result["deliver_msgs_per_s"] = dl["pool_msgs_per_s"]
    result["deliver_ratio"] = result["deliver_msgs_per_s"] / base if base else 0.0
    result["deliver_sample_note"] = (
        f"the first {sample} digests of the edition (by id) were re-queued and delivered over SMTP; "
        f"{'all' if sample == ed['rendered'] else 'a sample of'} {ed['rendered']} rendered")

    # 4b. the same edition on PostgreSQL, sent by `digest worker` with 1 and 2 processes
    if args.postgres:
        from bench.postgres import stage_postgres

        log(f"[4b] PostgreSQL: copy, plan, send {sample} digests with 1 and with 2 workers")
        result.update(stage_postgres(kw, now, sample, log))

    # 5. storage
    removed = compact(kw, now)
    size1 = db_size(kw)
    result.update({"db_bytes": size1["file_bytes"], "db_bytes_per_edition": size1["file_bytes"] - size0["file_bytes"],
                   "db_used_bytes_per_edition": size1["used_bytes"] - size0["used_bytes"],
                   "ledger_sections_before": size0["ledger_sections"], "ledger_sections_after": size1["ledger_sections"],
                   "compacted_sections": removed})
    editions = [{"edition": now.date().isoformat(), "file_growth": size1["file_bytes"] - size0["file_bytes"],
                 "used_growth": size1["used_bytes"] - size0["used_bytes"], "ledger_sections": size1["ledger_sections"],
                 "digests": size1["digests"], "compacted_sections": removed}]
    prev = size1
    for e in range(1, args.editions):
        t = now + timedelta(days=e)
        log(f"[5] edition {e + 1}: ingest, match, plan + render, compact")
        entries = feed_for_day(gen, P, old)
        stage_ingest(kw, work / f"feed-day{e}.xml", entries, t - timedelta(hours=12), t - timedelta(hours=6, minutes=30))
        stage_match(kw, t - timedelta(hours=6, minutes=30))
        ed2 = run_in_child(_edition_child, kw, t.isoformat(), t.date().isoformat(), None, args.render_limit,
                           args.processes, False)
        removed = compact(kw, t)
        size = db_size(kw)
        editions.append({"edition": t.date().isoformat(), "file_growth": size["file_bytes"] - prev["file_bytes"],
                         "used_growth": size["used_bytes"] - prev["used_bytes"], "ledger_sections": size["ledger_sections"],
                         "digests": size["digests"], "compacted_sections": removed, "planned": ed2["planned"],
                         "rendered": ed2["rendered"],
                         "plan_render_digests_per_s": 1.0 / (ed2["plan_s"] / max(1, ed2["planned"])
                                                             + ed2["render_s"] / max(1, ed2["rendered"]))})
        prev = size
        result["db_bytes"] = size["file_bytes"]
    # after D past days and these editions, compacted as the scheduler does
    result["db_bytes_30_days"] = prev["file_bytes"]
    result["ledger_bytes"] = prev["ledger_bytes"]
    result["ledger_bytes_per_digest"] = prev["ledger_bytes"] / max(1, prev["digests"])
    result["ledger_objects"] = prev["ledger_objects"]
    result["editions"] = editions
    if len(editions) >= 2:
        a, b = editions[-2]["used_growth"], editions[-1]["used_growth"]
        result["ledger_growth_ratio"] = b / a if a else None
        # stored sections must stay flat (compaction removes a day's per day added); the per-digest
        # rows (kept for history/stats by design) add a constant amount per edition
        result["ledger_bounded"] = bool(editions[-1]["ledger_sections"] <= editions[0]["ledger_sections"] * 1.05)

    # 6. one edition end to end: plan, render, deliver to the sink, next to a bare smtplib loop
    if args.edition:
        from bench.edition import stage_edition_day

        log(f"[6] edition end to end: plan, render and deliver with `digest worker --concurrency {args.processes}`")
        result.update(stage_edition_day(kw, gen, old, now + timedelta(days=max(1, args.editions)), work, P,
                                        args.processes, log, sink_kind=args.edition_sink))

    # checks
    result["correct"] = bool(dl["sink_received"] == dl["deliver_sent"] == sample and dl["duplicates"] == 0
                             and dl["missing_recipients"] == 0 and dl["unexpected_recipients"] == 0
                             and dl["baseline_received"] == dl["baseline_n"] and ed["render_failed"] == 0
                             and (not dl.get("pool_workers") or (dl["pool_sink_received"] == dl["pool_sent"] == sample
                                                                 and dl["pool_duplicates"] == 0
                                                                 and dl["pool_missing"] == 0))
                             and (not args.edition or (result["edition_duplicates"] == result["edition_missing"]
                                                       == result["edition_exit_code"] == 0
                                                       and result["edition_sink_received"] == result["edition_sent"])))
    if not args.keep_workdir and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
        result["workdir"] += " (removed)"
    return result


def parse_args(argv=None):
    p = OneLineParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", "-n", type=int, default=100_000, help="N subscribers (default 100000)")
    p.add_argument("--topics", type=int, default=50, help="T topics (default 50)")
    p.add_argument("--papers", type=int, default=1000, help="P new papers per day (default 1000)")
    p.add_argument("--days", type=int, default=30, help="D past days already in the ledger (default 30)")
    p.add_argument("--keep-days", type=int, default=8,
                   help="settings.ledger_keep_days (default 8 = look-back 7 + 1, the smallest allowed)")
    p.add_argument("--deliver-sample", type=int, default=5000,
                   help="digests delivered over SMTP (0 = all; default 5000)")
    p.add_argument("--baseline-messages", type=int, default=3000, help="messages of the bare smtplib loop")
    p.add_argument("--editions", type=int, default=2, help="consecutive editions for the storage check (default 2)")
    p.add_argument("--render-limit", type=int, default=0,
                   help="stop send_pending after this many rendered digests (0 = the whole edition); the rest "
                        "is released; the rate is per digest actually rendered")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="render and deliver with `digest worker --concurrency N` (default: the CPU count; "
                        "1 = send_pending in one process; --profile and --render-limit imply 1 for rendering)")
    p.add_argument("--postgres", action=argparse.BooleanOptionalAction, default=True,
                   help="also plan the edition on a throw-away PostgreSQL and send --deliver-sample digests "
                        "with `digest worker` at concurrency 1 and 2 (default on; needs PostgreSQL's server binaries)")
    p.add_argument("--edition", action=argparse.BooleanOptionalAction, default=True,
                   help="also time one more edition end to end (ingested and matched untimed; then plan, render and "
                        "deliver to the SMTP sink with `digest worker --concurrency N`) next to a bare smtplib loop "
                        "sending as many messages of the same sizes (bench/edition.py; default on)")
    p.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=True,
                   help="also plan the edition again while `digest worker --concurrency N` is already running (the "
                        "scaled-out deployment: workers render what the planner has committed while it plans the "
                        "rest) and time plan start to last digest rendered (default on; needs N > 1)")
    p.add_argument("--sink", choices=("aiosmtpd", "lean"), default="aiosmtpd",
                   help="the SMTP sink the deliver and PostgreSQL stages send to, in its own process: "
                        "aiosmtpd (default; reads DATA line by line, ~4.7 ms of CPU a 114 KB message on the cores "
                        "the senders use) or lean (bench/sink.py's own minimal server, reads DATA in bulk)")
    p.add_argument("--edition-sink", choices=("aiosmtpd", "lean"), default="lean",
                   help="the SMTP sink of the edition stage (default lean): it takes every message twice (100k: "
                        "2 x 11.4 GB), and on aiosmtpd both runs measure mostly the sink's own CPU on the senders' "
                        "cores (~16 of the run's minutes at 100k)")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--json", dest="json_file", help="write the results as JSON here")
    p.add_argument("--profile", help="write a pyinstrument profile (HTML; text next to it as .txt) of plan + render")
    p.add_argument("--workdir", help="use this directory (kept) instead of a temporary one")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temporary directory")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    _clean_env()
    random.seed(args.seed)
    t0 = time.perf_counter()
    r = run(args, log=lambda m: print(m, file=sys.stderr, flush=True))
    r["wall_s"] = round(time.perf_counter() - t0, 1)
    print_results(r)
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(r, indent=2, default=str) + "\n", encoding="utf-8")
    return 0 if r["correct"] else 1
