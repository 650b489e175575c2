"""Server time of the reading pages on SQLite: the page of a digest of 200 papers (target
< 50 ms), a topic page and its Atom feed of 200 papers, and a conditional request answered 304,
next to the subscribe form as the baseline of a page with no papers.

    python -m bench.web_pages [--papers 200] [--topics 5] [--runs 30] [--json bench/results/web_pages.json]

--topics: topics in the config (the papers are in the first five); each paper of the digest
page offers the others in its "Belongs in" select, so the page grows with them.

Server time: from the request entering the ASGI app (security middleware included) to the last
byte of the response, in process (no network); median and 95th percentile over --runs warm
requests, after two warm-up requests.
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ABSTRACT = ("We propose a method for segmenting organs and lesions in CT and MRI volumes with a "
            "transformer encoder and a light decoder, trained on twelve public datasets. ") * 8


from bench.common import OneLineParser  # noqa: E402
def build(tmp: Path, n_papers: int, n_topics: int = 5):
    from digest import clock, tokens
    from digest.store.db import session_scope, upgrade
    from digest.plan import PlannedItem
    from digest.store.ledger import encode_ids, section_keys, upsert_sections
    from digest.store.models import Digest, Paper, Subscriber, TopicMatch

    config = tmp / "config"
    config.mkdir()
    topics = [f"topic-{k}" for k in range(n_topics)]
    (config / "topics.yaml").write_text("topics:\n" + "".join(
        f"  - id: {t}\n    name: Topic number {k} of the benchmark\n    keywords: [segmentation {k}]\n"
        for k, t in enumerate(topics)), encoding="utf-8")
    (config / "sources.yaml").write_text("sources: []\n", encoding="utf-8")
    from bench.common import _clean_env
    from digest.store.settings import Settings

    _clean_env()
    os.environ["DIGEST_CONFIG_DIR"] = str(config)      # read from the environment only
    s = Settings(database_url=f"sqlite:///{tmp}/bench.db", DIGEST_PUBLIC_URL="https://digest.example.org",
                 DIGEST_SECRET_KEY="bench")
    upgrade(s.database_url)
    now = clock.now()
    with session_scope(s) as session:
        sub = Subscriber(email="reader@example.org", topics=topics[:5], status="active")
        session.add(sub)
        session.flush()
        digest = Digest(subscriber_id=sub.id, edition=now.date(), status="sent", planned_at=now, sent_at=now)
        session.add(digest)
        session.flush()
        carried: dict[str, list] = {}
        for i in range(n_papers):
            pid = f"2611.{i:05d}"
            tid = topics[i % min(5, n_topics)]
            session.add(Paper(id=pid, arxiv_id=pid, title=f"Transformer segmentation of organs, study {i}",
                              abstract=ABSTRACT, authors=[f"Author {j} Name" for j in range(8)],
                              categories=["eess.IV", "cs.CV"], primary_category="eess.IV", is_new=True,
                              first_seen_at=now - timedelta(hours=i % 72), updated_at=now,
                              abs_url=f"https://arxiv.org/abs/{pid}", pdf_url=f"https://arxiv.org/pdf/{pid}",
                              hf_url=f"https://huggingface.co/papers/{pid}" if i % 3 == 0 else None,
                              hf_upvotes=i % 40 if i % 3 == 0 else None))
            # every paper in topic-0 too, so the topic page has n_papers papers
            for t in dict.fromkeys([tid, "topic-0"]):
                session.add(TopicMatch(paper_id=pid, topic_id=t, score=0.8, matched=["segmentation", "~organ"],
                                       matched_at=now))
            carried.setdefault(tid, []).append(PlannedItem(pid, tid, i // min(5, n_topics), i // min(5, n_topics) < 10))
        keys = section_keys([it for lst in carried.values() for it in lst])
        ids = upsert_sections(session.connection(), keys, now.date())
        digest.sections = encode_ids(ids[k] for k in keys)
        did, bind = digest.id, sub.link_secret
    return s, f"/digest/{tokens.make_token(s.secret_key, 'digest', did, bind=bind)}"


async def timed(app, path: str, headers: dict | None = None) -> tuple[float, int, int]:
    """Seconds from the request entering the app to its last body byte; status; body bytes."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "https", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
             + [(b"host", b"digest.example.org")], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 443)}
    status, size, done = 0, 0, asyncio.Event()

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    start = time.perf_counter()
    await app(scope, receive, send)
    await done.wait()
    return time.perf_counter() - start, status, size


def measure(app, path: str, runs: int, headers: dict | None = None) -> dict:
    async def go():
        for _ in range(2):
            await timed(app, path, headers)
        return [await timed(app, path, headers) for _ in range(runs)]
    results = asyncio.run(go())
    times = sorted(t for t, _, _ in results)
    return {"median_ms": round(statistics.median(times) * 1000, 2),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)] * 1000, 2),
            "status": results[-1][1], "bytes": results[-1][2]}


def main(argv=None) -> int:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=int, default=200)
    ap.add_argument("--topics", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", type=Path, default=Path("bench/results/web_pages.json"))
    args = ap.parse_args(argv)
    from digest.web.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        s, digest_path = build(Path(tmp), args.papers, args.topics)
        app = create_app(s)
        rows = {"subscribe form (baseline)": measure(app, "/subscribe", args.runs)}
        rows[f"digest page, {args.papers} papers, {args.topics} topics"] = page = measure(app, digest_path, args.runs)
        rows[f"topic page, {args.papers} papers"] = measure(app, "/topics/topic-0", args.runs)
        rows[f"topic Atom feed, {args.papers} entries"] = measure(app, "/topics/topic-0.atom", args.runs)

        # the ETag of the digest page, then a conditional request with it
        from starlette.testclient import TestClient
        # (with the CSRF cookie the first answer set: the page's vote forms carry a token made from it)
        first = TestClient(app, base_url="https://digest.example.org").get(digest_path)
        cookie = "; ".join(f"{k}={v}" for k, v in first.cookies.items())
        rows["digest page, If-None-Match (304)"] = measure(app, digest_path, args.runs,
                                                           {"If-None-Match": first.headers["etag"], "Cookie": cookie})
    target = 50.0
    print(f"{'request (SQLite, in process)':<40} {'median ms':>10} {'p95 ms':>8} {'status':>6} {'bytes':>9}")
    for name, r in rows.items():
        print(f"{name:<40} {r['median_ms']:>10.2f} {r['p95_ms']:>8.2f} {r['status']:>6} {r['bytes']:>9}")
    verdict = "met" if page["median_ms"] < target else "MISSED"
    print(f"digest page of {args.papers} papers: {page['median_ms']:.1f} ms median, target < {target:.0f} ms ({verdict})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"papers": args.papers, "topics": args.topics, "runs": args.runs, "target_ms": target,
                                     "rows": rows}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
