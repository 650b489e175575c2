"""Plan + render as a scaled-out install runs it: `digest worker --concurrency N` already
running while the scheduler plans (README, "Scaling out")."""
from __future__ import annotations

import resource
import sys
import time
from datetime import date, datetime

from bench.common import worker_env


def plan_with_workers_running(kw: dict, delivery: str, concurrency: int, plan, count_sent, any_open, *,
                              poll: float = 0.2, timeout: float = 7200) -> dict:
    """The scaled-out deployment (README, "Scaling out"): `digest worker --concurrency N` is
    already running and idle when the scheduler plans, so workers render the batches the planner
    has committed while it plans the rest. Starts the workers (polling every `poll` s), waits
    until each has logged its start, then times ``plan()`` (returns the number planned) and waits
    until no digest of it is open (polled through ``any_open()``, cheap: a count of 100,000 rows
    20 times a second would take CPU from the workers) and ``count_sent()`` is what was planned;
    then stops the workers with SIGTERM. Call it in a fresh child (peak RSS)."""
    import signal
    import subprocess
    import tempfile

    env = worker_env(kw, delivery)
    env["DIGEST_WORKER_POLL_SECONDS"] = str(poll)
    log = tempfile.TemporaryFile(mode="w+")     # not a pipe: nobody reads it while they run
    proc = subprocess.Popen([sys.executable, "-m", "digest.cli", "worker", "--concurrency", str(concurrency)],
                            env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)

    def tail() -> str:
        log.seek(0)
        return log.read()[-400:]

    try:
        deadline = time.perf_counter() + 120
        while True:
            log.seek(0)
            if log.read().count("event=worker-start") >= concurrency:
                break
            if proc.poll() is not None or time.perf_counter() > deadline:
                return {"error": f"workers did not start (exit {proc.returncode}): {tail()}"}
            time.sleep(0.1)
        t0 = time.perf_counter()
        planned = plan()
        t1 = time.perf_counter()
        while any_open():
            if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                return {"error": f"workers stopped (exit {proc.returncode}) before sending all {planned}: {tail()}"}
            time.sleep(0.05)
        t2 = time.perf_counter()
        if count_sent() != planned:
            return {"error": f"{count_sent()} of {planned} digests sent"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    return {"planned": planned, "plan_s": t1 - t0, "wall_s": t2 - t0, "exit_code": proc.returncode,
            "stderr_tail": tail() if proc.returncode else "",
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def overlapped(kw: dict, make, s, config, edition: date, now: datetime, processes: int) -> dict:
    """The same edition once more, planned while `digest worker --concurrency N` is running (the
    scaled-out deployment): its digests are deleted, then planned again with the workers idle
    and polling; seconds from the plan's start until the last digest is sent. (A re-plan: its
    sections are already stored, so the planner finds them instead of inserting them.)"""
    from sqlalchemy import delete, func, select

    from digest.pipeline import plan_options
    from digest.plan import plan_edition
    from digest.store.models import Digest, open_digest

    with make() as session:
        session.execute(delete(Digest).where(Digest.edition == edition))
        session.commit()

    def plan() -> int:
        with make() as session:
            return plan_edition(session, config.ids, plan_options(s), edition=edition, now=now).planned

    def count_sent() -> int:
        with make() as session:
            return session.scalar(select(func.count()).where(Digest.edition == edition, Digest.status == "sent"))

    def any_open() -> bool:   # through the small partial index of open digests: cheap to poll
        with make() as session:
            return session.scalar(select(Digest.id).where(open_digest(), Digest.edition == edition).limit(1)) is not None

    run = plan_with_workers_running(kw, "discard", processes, plan, count_sent, any_open)
    if "error" in run:
        return {"overlap_error": run["error"]}
    return {"overlap_planned": run["planned"], "overlap_plan_s": run["plan_s"], "overlap_wall_s": run["wall_s"],
            "overlap_peak_rss_mb": run["peak_rss_mb"], "overlap_error": run["stderr_tail"] or None}
