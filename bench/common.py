"""Helpers shared by the bench stages: settings, child processes, worker runs."""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


def _clean_env() -> None:
    """Settings also read DIGEST_* variables: the bench sets everything it needs explicitly."""
    for key in list(os.environ):
        if key.startswith("DIGEST_"):
            del os.environ[key]


def make_settings(kw: dict, **over):
    _clean_env()
    from digest.store.settings import Settings

    return Settings(**{**kw, **over})


def ts(dt: datetime) -> str:
    """How SQLAlchemy stores a UTCDateTime on SQLite (naive UTC)."""
    return dt.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def db_path(kw: dict) -> str:
    return kw["database_url"].removeprefix("sqlite:///")



def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss is not used: on Linux it keeps the parent's
    RSS across fork + exec, so a spawned child would report the generator's memory."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_in_child(target, *args, timeout: float = 7200) -> dict:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, child))
    proc.start()
    child.close()
    if not parent.poll(timeout):
        proc.terminate()
        raise RuntimeError(f"{target.__name__} timed out")
    result = parent.recv()
    proc.join(60)
    if "error" in result:
        raise RuntimeError(f"{target.__name__}: {result['error']}\n{result.get('traceback', '')}")
    return result


def _requeue(make, ids: list[int]) -> None:
    from sqlalchemy import update

    from digest.store.models import Digest

    with make() as session:
        for start in range(0, len(ids), 900):
            session.execute(update(Digest).where(Digest.id.in_(ids[start:start + 900])).values(
                status="planned", sent_at=None, claimed_by=None, lease_until=None, attempts=0))
        session.commit()


def _sent_span(make, ids: list[int]) -> tuple[int, float]:
    """(digests of `ids` sent, seconds from the first to the last sent_at)."""
    from sqlalchemy import func, select

    from digest.store.models import Digest

    n, first, last = 0, None, None
    with make() as session:
        for start in range(0, len(ids), 900):
            c, a, b = session.execute(select(func.count(), func.min(Digest.sent_at), func.max(Digest.sent_at)).where(
                Digest.id.in_(ids[start:start + 900]), Digest.status == "sent")).one()
            if isinstance(a, str):  # aggregates bypass the column type on SQLite
                a, b = datetime.fromisoformat(a), datetime.fromisoformat(b)
            n += c
            first = a if first is None or (a is not None and a < first) else first
            last = b if last is None or (b is not None and b > last) else last
    return n, (last - first).total_seconds() if n > 1 else 0.0


def worker_env(kw: dict, delivery: str) -> dict:
    """The environment of a `digest worker` process with the bench's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update({"DIGEST_DATABASE_URL": kw["database_url"], "DIGEST_DELIVERY": delivery,
                "DIGEST_CONFIG_DIR": str(kw["config_dir"]), "DIGEST_DATA_DIR": str(kw["data_dir"]),
                "DIGEST_SECRET_KEY": kw["secret_key"], "DIGEST_PUBLIC_URL": kw["public_url"],
                "DIGEST_FROM": kw["from_addr"], "DIGEST_LIST_ID": kw["list_id"],
                "DIGEST_LOOKBACK_DAYS": str(kw["lookback_days"]), "DIGEST_LEDGER_KEEP_DAYS": str(kw["ledger_keep_days"])})
    return env


def run_workers_cli(kw: dict, delivery: str, concurrency: int) -> dict:
    """`digest worker --once --concurrency N` as a subprocess: wall time, exit code, and the peak
    RSS of its largest process (children's rusage of this process: call it in a fresh child)."""
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "digest.cli", "worker", "--once", "--concurrency", str(concurrency)],
                          env=worker_env(kw, delivery), capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "exit_code": proc.returncode, "stderr_tail": proc.stderr[-400:] if proc.returncode else "",
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a wrong invocation is one line (what is wrong, exit 2), not usage + error."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: {message} (see --help)\n")
        sys.exit(2)
