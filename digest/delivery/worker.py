"""`digest worker`: processes that only send, sharing the planned digests of any edition.

Each process claims batches of digests (`FOR UPDATE SKIP LOCKED` on PostgreSQL, a conditional
UPDATE on SQLite) under a lease, renders and delivers them and marks each one sent as soon as
the server accepted it (see digest/send.py). Any number of processes on any number of
machines may run against one database. A process that dies leaves its leases behind: they are
taken over when they expire, at once when the dead process was on the same host.

`--concurrency N` starts N such processes under one parent, which restarts a child that
died (unless `--once`) and forwards SIGTERM/SIGINT: each child finishes the message in
flight, releases the rest of its batch and exits.
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time

from digest.store.settings import Settings

log = logging.getLogger("digest.worker")


def work(settings: Settings, *, once: bool = False, stop: threading.Event | None = None,
         backend=None) -> dict:
    """Send claimable digests until stopped (or, with `once`, until none is left). Returns totals."""
    from digest.store.db import session_factory
    from digest.delivery.backends import open_backend
    from digest.topics.current import current_topics
    from digest.email.render import Renderer
    from digest.delivery.send import send_pending, worker_id

    stop = stop or threading.Event()
    me = worker_id()
    make = session_factory(settings)
    totals = {"sent": 0, "failed": 0, "deferred": 0, "rounds": 0}
    renderer = Renderer(settings)
    log.info("event=worker-start worker=%s", me)
    pause = settings.worker_poll_seconds
    while not stop.is_set():
        try:
            config, error = current_topics(settings)
            if error:
                log.error("event=topics-invalid using=last-valid error=%s", error.replace("\n", " | "))
            names = {t.id: t.name for t in config.topics}   # section headings
            if backend is not None:
                report = send_pending(settings, make, backend, renderer, names, stop=stop, worker=me)
            else:
                with open_backend(settings) as own:
                    report = send_pending(settings, make, own, renderer, names, stop=stop, worker=me)
        except Exception as exc:  # database down, bad config...: wait longer each time, keep going
            log.error("event=worker-error worker=%s error=%s: %s; retrying in %.0f s", me, type(exc).__name__,
                      str(exc).splitlines()[0][:300] if str(exc) else "", pause)
            if once:
                raise
            stop.wait(pause)
            pause = min(pause * 2, 300.0)
            continue
        pause = settings.worker_poll_seconds
        totals["rounds"] += 1
        for key in ("sent", "failed", "deferred"):
            totals[key] += getattr(report, key)
        if report.sent or report.failed or report.deferred:
            log.info("event=worker-round worker=%s sent=%d failed=%d deferred=%d", me, report.sent,
                     report.failed, report.deferred)
        for line in report.errors[:20]:
            log.warning("event=send-error worker=%s %s", me, line)
        if once and not report.sent and not report.failed:
            break  # nothing (or only deferrals of this round) left to do
        if not (report.sent or report.failed):
            stop.wait(settings.worker_poll_seconds)
    log.info("event=worker-stop worker=%s sent=%d failed=%d", me, totals["sent"], totals["failed"])
    return totals


def _child(once: bool, json_logs: bool) -> None:
    from digest.logs import setup_logging
    from digest.store.settings import get_settings

    setup_logging(json_logs, level=logging.INFO)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    work(get_settings(), once=once, stop=stop)


def run_workers(settings: Settings, *, concurrency: int = 1, once: bool = False, json_logs: bool = False) -> int:
    """Run `concurrency` worker processes until SIGTERM/SIGINT (or, with `once`, until done)."""
    if concurrency <= 1:
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            work(settings, once=once, stop=stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0
    # spawn, not fork: a forked child would share the parent's database connections
    ctx = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    children: list = []

    def start():
        p = ctx.Process(target=_child, args=(once, json_logs), daemon=False)
        p.start()
        return p

    failures = 0
    try:
        children = [start() for _ in range(concurrency)]
        while not stopping.is_set():
            alive = 0
            for i, p in enumerate(children):
                if p.is_alive():
                    alive += 1
                    continue
                if p.exitcode not in (0, None):
                    failures += 1
                    log.error("event=worker-died pid=%s exitcode=%s", p.pid, p.exitcode)
                    if not once:  # its leases are reclaimed by the others (same host: at once)
                        children[i] = start()
                        alive += 1
            if alive == 0:
                break
            time.sleep(0.5)
    finally:
        for p in children:
            if p.is_alive():
                p.terminate()           # SIGTERM: finish the message in flight, release the rest
        for p in children:
            p.join(timeout=max(60.0, settings.smtp_timeout * 2))
            if p.is_alive():
                p.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failures and once else 0
