"""Matching a day of papers with learning on (issue 14: 1,000 papers x 50 topics < 2 minutes).

    .venv/bin/python -m bench.learn_speed [--papers 1000] [--topics 50] [--votes 12] [--json out.json]

Papers: the shared labelled files recycled to the wanted count (synthetic text without them);
topics: the 12 of topics-eval.yaml plus variants mixing their keywords, up to the wanted count.
Votes: ``--votes`` per topic on papers the plain matcher put there (alternately relevant / not),
so every topic gets a learned model. Times training, the plain matcher and the learned matcher
on the same papers (in this process; the pipeline adds one query per batch), and prints a table.
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import OneLineParser  # noqa: E402

from digest.topics.config import load_topics, parse_topics  # noqa: E402
from digest.topics.learn import Label, LearningMatcher, train  # noqa: E402
from digest.topics.match import Matcher, PaperText  # noqa: E402

CORPUS = Path("/work/shared/corpus")


def papers(n: int) -> list[PaperText]:
    recs = []
    for name in ("labeled-dev.jsonl", "stream-dev.jsonl"):
        path = CORPUS / name
        if path.exists():
            recs += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not recs:
        recs = [{"id": str(i), "title": f"Segmentation with sparse attention {i}",
                 "abstract": "We prune and quantize a vision transformer for tumor segmentation in MRI. " * 5}
                for i in range(50)]
    return [PaperText(f"{recs[i % len(recs)]['id']}-{i}", recs[i % len(recs)]["title"],
                      recs[i % len(recs)].get("abstract", "")) for i in range(n)]


def topics(n: int):
    base = load_topics(CORPUS / "topics-eval.yaml") if (CORPUS / "topics-eval.yaml").exists() else None
    src = list(base.topics) if base else []
    if not src:
        raise SystemExit("needs topics-eval.yaml in /work/shared/corpus")
    lines = ["topics:"]
    rng = random.Random(7)
    for i in range(n):
        t = src[i % len(src)]
        extra = src[(i * 5 + 3) % len(src)].keywords
        kws = list(t.keywords) + ([rng.choice(extra)] if i >= len(src) else [])
        lines += [f"  - id: {t.id}-{i}", f"    name: {json.dumps(t.name)}", f"    description: {json.dumps(t.description)}",
                  f"    keywords: {json.dumps(kws)}"]
    return parse_topics("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--papers", type=int, default=1000)
    ap.add_argument("--topics", type=int, default=50)
    ap.add_argument("--votes", type=int, default=12, help="votes per topic")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    config = topics(args.topics)
    day = papers(args.papers)
    plain = Matcher(config)

    start = time.perf_counter()
    assigned = plain.match_many(day)
    t_plain = time.perf_counter() - start

    labels: list[Label] = []
    per: dict[str, int] = {}
    for p, got in zip(day, assigned):
        for a in got:
            if per.get(a.topic_id, 0) < args.votes:
                labels.append(Label(p, a.topic_id, per.get(a.topic_id, 0) % 2 == 0))
                per[a.topic_id] = per.get(a.topic_id, 0) + 1
    start = time.perf_counter()
    model = train(plain, labels)
    t_train = time.perf_counter() - start
    learned = LearningMatcher(plain, model, {str(lb.paper.id): lb.paper for lb in labels})
    start = time.perf_counter()
    learned.match_many(day)
    t_learned = time.perf_counter() - start

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.papers} papers x {args.topics} topics, {len(labels)} votes "
                        f"({len(model.topics) if model else 0} learned topics)")
    for col in ("step", "seconds", "papers/s"):
        table.add_column(col, justify="right" if col != "step" else "left")
    table.add_row("plain matcher (baseline)", f"{t_plain:.2f}", f"{args.papers / t_plain:,.0f}")
    table.add_row("train (from votes)", f"{t_train:.2f}", "-")
    table.add_row("learned matcher", f"{t_learned:.2f}", f"{args.papers / t_learned:,.0f}")
    table.add_row("train + learned matcher", f"{t_train + t_learned:.2f}", "target < 120")
    Console(width=120).print(table)
    if args.json:
        args.json.write_text(json.dumps({"papers": args.papers, "topics": args.topics, "votes": len(labels),
                                         "plain_s": t_plain, "train_s": t_train, "learned_s": t_learned}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
