"""Stage 4: delivery over SMTP to a sink in its own process, next to a bare smtplib loop."""
from __future__ import annotations

import multiprocessing as mp
import smtplib
import time
from collections import Counter
from datetime import date

from bench.common import _requeue, _sent_span, make_settings, run_workers_cli


def _deliver_child(kw: dict, port: int, edition_iso: str, sample: int, baseline_n: int, only_sample: bool,
                   workers: int, sink_conn_info, out) -> None:
    """Re-queue `sample` digests of the edition; send a typical one in a bare smtplib loop (the
    baseline), then the sample through send_pending (one process, one connection), then again
    through `digest worker --concurrency N` (the product's way to send a large edition)."""
    try:
        from sqlalchemy import select

        from digest.store.db import session_factory
        from digest.delivery.backends import open_backend
        from digest.email.content import Recipient
        from digest.email.message import compose
        from digest.store.ledger import items_of
        from digest.store.models import Digest, Subscriber
        from digest.email.render import Renderer
        from digest.delivery.send import send_pending
        from digest.email.builder import ContentBuilder
        from digest.topics.config import load_topics

        s = make_settings(kw, delivery=f"smtp://127.0.0.1:{port}")
        edition = date.fromisoformat(edition_iso)
        config = load_topics(s.topics_file)
        names = {t.id: t.name for t in config.topics}
        make = session_factory(s)
        with make() as session:
            ids = list(session.scalars(select(Digest.id).where(Digest.edition == edition, Digest.status == "sent")
                                       .order_by(Digest.id).limit(sample)))
            emails = dict(session.execute(select(Subscriber.id, Subscriber.email).join(
                Digest, Digest.subscriber_id == Subscriber.id).where(Digest.id.in_(ids))).all())
            # the baseline's one message: of the first 200 sampled digests, the one of median size
            builder, renderer, payloads = ContentBuilder(s, names), Renderer(s), []
            for d in session.scalars(select(Digest).where(Digest.id.in_(ids[:200]))):
                sub = session.get(Subscriber, d.subscriber_id)
                items = items_of(session, [d.id])[d.id]
                builder.load(session, {i.paper_id for i in items})
                content = builder.build(Recipient(sub.id, sub.email, sub.name, sub.timezone, sub.link_secret), edition, items)
                payloads.append(compose(s, content, renderer.render(content)).raw)
            payload = sorted(payloads, key=len)[len(payloads) // 2]
        _requeue(make, ids)
        sender = "digest@bench.example"
        out.send({"phase": "baseline-ready", "payload_bytes": len(payload)})
        sink_conn_info.recv()  # parent reset the sink
        t0 = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            for i in range(baseline_n):
                smtp.sendmail(sender, [f"baseline{i}@bench.example"], payload)
        t1 = time.perf_counter()
        out.send({"phase": "baseline-done", "baseline_n": baseline_n, "baseline_s": t1 - t0})
        sink_conn_info.recv()  # parent checked and reset the sink
        t2 = time.perf_counter()
        with open_backend(s) as backend:
            # when the edition was only partly rendered (--render-limit), the rest is still planned:
            # restrict this run to the sampled subscribers
            report = send_pending(s, make, backend, Renderer(s), names, editions=None,
                                  subscriber_ids=sorted(emails) if only_sample else None)
        t3 = time.perf_counter()
        out.send({"phase": "done", "sample": len(ids), "sent": report.sent, "failed": report.failed,
                  "deferred": report.deferred, "errors": report.errors[:5], "deliver_s": t3 - t2,
                  "emails": sorted(e.lower() for e in emails.values())})
        if workers and not only_sample:
            sink_conn_info.recv()  # parent checked and reset the sink
            _requeue(make, ids)
            run = run_workers_cli(kw, s.delivery, workers)
            sent, span = _sent_span(make, ids)
            out.send({"phase": "workers-done", "sent": sent, "span_s": span, **run})
    except BaseException as exc:
        import traceback

        out.send({"phase": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})


def stage_deliver(kw: dict, edition: date, sample: int, baseline_n: int, log, only_sample: bool = False,
                  workers: int = 2) -> dict:
    from bench.sink import SinkProcess

    ctx = mp.get_context("spawn")
    with SinkProcess() as sink:
        results, child_out = ctx.Pipe(duplex=False)
        go_child, go = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_deliver_child,
                           args=(kw, sink.port, edition.isoformat(), sample, baseline_n, only_sample, workers,
                                 go_child, child_out))
        proc.start()
        child_out.close()

        def expect(phase):
            if not results.poll(7200):
                raise RuntimeError("deliver child timed out")
            msg = results.recv()
            if msg.get("phase") == "error":
                raise RuntimeError(f"deliver child: {msg['error']}\n{msg.get('traceback', '')}")
            assert msg["phase"] == phase, msg
            return msg

        ready = expect("baseline-ready")
        sink.reset()
        go.send("go")
        base = expect("baseline-done")
        bstats = sink.stats()
        sink.reset()
        go.send("go")
        log("  baseline done; delivering through send_pending ...")
        done = expect("done")
        stats = sink.stats()
        pool = None
        if workers and not only_sample:
            sink.reset()
            go.send("go")
            log(f"  delivering the sample again through `digest worker --concurrency {workers}` ...")
            pool = expect("workers-done")
            pool_stats = sink.stats()
        proc.join(60)
    if pool is not None:
        pool_per = Counter(pool_stats["per_rcpt"])
        pool_result = {
            "pool_workers": workers, "pool_sent": pool["sent"], "pool_exit_code": pool["exit_code"],
            "pool_msgs_per_s": (pool["sent"] - 1) / pool["span_s"] if pool["span_s"] else 0.0,
            "pool_wall_s": pool["wall_s"], "pool_sink_received": pool_stats["messages"],
            "pool_duplicates": sum(c - 1 for c in pool_per.values() if c > 1),
            "pool_missing": len(set(done["emails"]) - set(pool_per)), "pool_stderr_tail": pool["stderr_tail"]}
    else:
        pool_result = {}
    per = Counter(stats["per_rcpt"])
    duplicates = sum(c - 1 for c in per.values() if c > 1)
    expected = set(done["emails"])
    return {
        "deliver_sample": done["sample"], "deliver_sent": done["sent"], "deliver_failed": done["failed"],
        "deliver_deferred": done["deferred"], "deliver_errors": done["errors"], "deliver_s": done["deliver_s"],
        "deliver_msgs_per_s": done["sent"] / done["deliver_s"] if done["deliver_s"] else 0.0,
        "baseline_n": base["baseline_n"], "baseline_s": base["baseline_s"],
        "baseline_msgs_per_s": base["baseline_n"] / base["baseline_s"],
        "baseline_received": bstats["messages"], "payload_bytes": ready["payload_bytes"],
        "sink_received": stats["messages"], "sink_bytes": stats["bytes"], "duplicates": duplicates,
        "sink_recipients": len(per), "missing_recipients": len(expected - set(per)),
        "unexpected_recipients": len(set(per) - expected),
        **pool_result,
    }
