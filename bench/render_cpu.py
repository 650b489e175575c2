"""CPU time per digest of rendering and composing one edition in one process.

    .venv/bin/python -m bench.render_cpu --workdir DIR [--workers N]

DIR is a workdir kept by ``python -m bench --workdir DIR ...``: the digests of its latest
edition are re-queued and sent again by ``send_pending`` to the dry-run backend (serialised,
nothing sent). Reports process CPU seconds (less sensitive than wall time to other load on a
shared machine) and wall seconds; run it from two checkouts on the same DIR to compare them.
With ``--workers N``: the edition is rendered by ``digest worker --once --concurrency N`` to the
discard delivery instead (as the scale bench's render stage does): wall seconds, digests/s and
the peak RSS of the largest worker process.
"""
from __future__ import annotations

import json
import time
from pathlib import Path


from bench.common import OneLineParser  # noqa: E402
def main(argv=None) -> int:
    p = OneLineParser(prog="python -m bench.render_cpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="a workdir kept by `python -m bench --workdir DIR`")
    p.add_argument("--workers", type=int, default=0,
                   help="render with `digest worker --once --concurrency N` (discard delivery) instead of in this process")
    args = p.parse_args(argv)
    work = Path(args.workdir).resolve()
    from bench.common import _requeue, make_settings

    kw = {"database_url": f"sqlite:///{work}/bench.db", "delivery": "dry-run", "config_dir": work / "config",
          "data_dir": work, "secret_key": "bench", "public_url": "https://digest.bench.example",
          "from_addr": "Paper Digest <digest@bench.example>", "lookback_days": 7, "ledger_keep_days": 8,
          "section_cap": 10, "trending_count": 5, "send_empty": False, "smtp_rate": 0.0, "smtp_retries": 3,
          "max_html_bytes": 100_000, "list_id": "bench.digest.example"}
    from sqlalchemy import func, select

    from digest.delivery.backends import open_backend
    from digest.delivery.send import send_pending
    from digest.email.render import Renderer
    from digest.store.db import session_factory
    from digest.store.models import Digest
    from digest.topics.config import load_topics

    s = make_settings(kw)
    make = session_factory(s)
    with make() as session:
        edition = session.scalar(select(func.max(Digest.edition)))
        ids = list(session.scalars(select(Digest.id).where(Digest.edition == edition)))
    _requeue(make, ids)
    if args.workers:
        from bench.common import run_workers_cli

        run = run_workers_cli(kw, "discard", args.workers)     # (no other children: its RSS is theirs)
        with make() as session:
            sent = session.scalar(select(func.count()).select_from(Digest).where(
                Digest.edition == edition, Digest.status == "sent"))
        print(json.dumps({"edition": str(edition), "workers": args.workers, "sent": sent, "wall_s": round(run["wall_s"], 2),
                          "digests_per_s": round(sent / run["wall_s"], 1), "peak_rss_mb": round(run["peak_rss_mb"]),
                          "exit_code": run["exit_code"], "stderr_tail": run["stderr_tail"]}))
        return 0 if run["exit_code"] == 0 and sent == len(ids) else 1
    names = {t.id: t.name for t in load_topics(s.topics_file).topics}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with open_backend(s) as backend:
        report = send_pending(s, make, backend, Renderer(s), names, editions={edition})
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(json.dumps({"edition": str(edition), "sent": report.sent, "failed": report.failed, "cpu_s": round(cpu, 2),
                      "wall_s": round(wall, 2), "cpu_ms_per_digest": round(cpu / max(1, report.sent) * 1000, 3),
                      "message_bytes": backend.bytes}))
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
