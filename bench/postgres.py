"""The scale scenario on PostgreSQL: plan the edition there and send samples of it with
`digest worker --concurrency 1` and `--concurrency 2` to the SMTP sink.

The SQLite bench database (subscribers, papers, matches, the digests sent before this
edition) is copied into a throw-away PostgreSQL server (tests/pg_server.py: initdb in a
temp dir, 127.0.0.1, a free port), the edition is planned with ``plan_edition`` on it, and
each worker run gets its own sample of the planned digests (the rest are parked in a
status no sender claims). Throughput is counted from the ``sent_at`` stamps of the sample
(first to last), so process start-up is not in it; the wall time is reported too.
"""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

# the past digests keep their section lists, so the sections they refer to come along (the
# planner shares them with the new edition's digests)
TABLES = ("subscribers", "papers", "topic_matches", "ledger_sections", "digests")
PARKED = "bench-parked"


def _copy(sqlite_file: str, pg_url: str, before_edition: str, log) -> dict:
    """Copy the tables into PostgreSQL, the send history only up to (not including) the edition."""
    import psycopg

    src = sqlite3.connect(sqlite_file)
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    counts = {}
    filters = {"digests": ("WHERE edition < ?", (before_edition,))}
    with psycopg.connect(dsn) as pg:
        pg.execute("SET TIME ZONE 'UTC'")
        for table in TABLES:
            cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
            where, params = filters.get(table, ("", ()))
            n = 0
            with pg.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in src.execute(f"SELECT {', '.join(cols)} FROM {table} {where}", params):
                    copy.write_row(row)
                    n += 1
            counts[table] = n
            seq = pg.execute(f"SELECT pg_get_serial_sequence('{table}', 'id')").fetchone()[0] \
                if "id" in cols else None
            if seq:  # integer ids were copied as they are: the sequence continues after them
                pg.execute(f"SELECT setval('{seq}', (SELECT coalesce(max(id), 1) FROM {table}))")
            log(f"    copied {table}: {n:,}")
        pg.execute("ANALYZE")
    src.close()
    return counts


def _unpark(pg_url: str, n: int) -> list[int]:
    """Make the next `n` parked digests claimable; returns their ids."""
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(text(
            "UPDATE digests SET status = 'planned' WHERE id IN "
            "(SELECT id FROM digests WHERE status = :parked ORDER BY id LIMIT :n) RETURNING id"),
            {"parked": PARKED, "n": n})]
    engine.dispose()
    return sorted(ids)


def _sample_stats(pg_url: str, ids: list[int]) -> dict:
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*), min(sent_at), max(sent_at) FROM digests "
                                 "WHERE id = ANY(:ids) GROUP BY status"), {"ids": ids}).all()
        emails = [r[0].lower() for r in conn.execute(text(
            "SELECT s.email FROM digests d JOIN subscribers s ON s.id = d.subscriber_id WHERE d.id = ANY(:ids)"),
            {"ids": ids})]
    engine.dispose()
    by = {r[0]: r for r in rows}
    sent = by.get("sent")
    span = (sent[3] - sent[2]).total_seconds() if sent and sent[1] > 1 else 0.0
    return {"statuses": {k: v[1] for k, v in by.items()}, "sent": sent[1] if sent else 0,
            "span_s": span, "emails": emails}


def stage_postgres(kw: dict, now: datetime, sample: int, log, worker_counts=(1, 2)) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.common import worker_env
    from bench.sink import SinkProcess
    from tests.pg_server import PostgresUnavailable, TempPostgres

    try:
        server = TempPostgres().start()
    except PostgresUnavailable as exc:
        log(f"  PostgreSQL unavailable: {exc}")
        return {"postgres_error": str(exc)}
    out: dict = {}
    try:
        from digest.store.db import dispose_all, session_factory, upgrade
        from digest.plan import plan_edition
        from digest.pipeline import plan_options
        from digest.store.settings import Settings
        from digest.topics.config import load_topics

        url = server.create_database("bench")
        upgrade(url)
        t0 = time.perf_counter()
        out["pg_copied"] = _copy(kw["database_url"].removeprefix("sqlite:///"), url, now.date().isoformat(), log)
        out["pg_copy_s"] = round(time.perf_counter() - t0, 1)

        settings = Settings(**{**kw, "database_url": url})
        config = load_topics(settings.topics_file)
        t0 = time.perf_counter()
        with session_factory(settings)() as session:
            plan = plan_edition(session, config.ids, plan_options(settings), edition=now.date(), now=now)
        out["pg_plan_s"] = time.perf_counter() - t0
        out["pg_planned"] = plan.planned
        out["pg_plan_digests_per_s"] = plan.planned / out["pg_plan_s"] if out["pg_plan_s"] else 0.0
        log(f"  planned {plan.planned:,} on PostgreSQL in {out['pg_plan_s']:.1f} s")
        with session_factory(settings)() as session:
            from sqlalchemy import text

            session.execute(text("UPDATE digests SET status = :p WHERE status = 'planned'"), {"p": PARKED})
            session.commit()
        dispose_all()

        runs = []
        with SinkProcess() as sink:
            for n_workers in worker_counts:
                ids = _unpark(url, sample)
                if not ids:
                    break
                sink.reset()
                env = worker_env({**kw, "database_url": url}, f"smtp://127.0.0.1:{sink.port}")
                log(f"  {n_workers} worker(s): sending {len(ids):,} digests")
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "digest.cli", "worker", "--once",
                                       "--concurrency", str(n_workers)], env=env, capture_output=True, text=True,
                                      timeout=7200)
                wall = time.perf_counter() - t0
                stats = sink.stats()
                got = _sample_stats(url, ids)
                per = Counter(stats["per_rcpt"])
                rate = (got["sent"] - 1) / got["span_s"] if got["span_s"] else 0.0
                runs.append({
                    "workers": n_workers, "sample": len(ids), "sent": got["sent"], "statuses": got["statuses"],
                    "msgs_per_s": rate, "wall_s": round(wall, 1),
                    "wall_msgs_per_s": got["sent"] / wall if wall else 0.0,
                    "sink_received": stats["messages"], "duplicates": sum(c - 1 for c in per.values() if c > 1),
                    "missing": len(set(got["emails"]) - set(per)), "exit_code": proc.returncode,
                    "stderr_tail": proc.stderr[-400:] if proc.returncode else "",
                })
                log(f"    {rate:,.0f} msgs/s ({got['sent']:,} sent, sink {stats['messages']:,})")
        out["pg_workers"] = runs
    finally:
        from digest.store.db import dispose_all

        dispose_all()
        server.stop()
    return out
