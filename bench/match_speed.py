"""Matching speed (timing lives here, never in tests).

    .venv/bin/python -m bench.match_speed [--semantic]

Lexical: the synthetic 1,000 papers x 100 topics of tests/test_match.py, printed as pairs/s.
--semantic: embedding speed of the semantic matcher on the labelled papers (papers/s, CPU).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import OneLineParser  # noqa: E402

from digest.topics.match import Matcher, PaperText  # noqa: E402
from digest.topics.config import load_topics, parse_topics  # noqa: E402

PAPERS = Path("/work/shared/corpus/labeled-dev.jsonl")
TOPICS = Path("/work/shared/corpus/topics-eval.yaml")


def lexical(n_papers: int = 1000, n_topics: int = 100) -> float:
    lines = ["topics:"]
    for i in range(n_topics):
        lines += [f"  - id: t{i}", f"    name: Topic {i}",
                  f"    description: Studies of widget{i} gadgets, sprocket{i} and flux capacitor{i} designs.",
                  f"    keywords: [widget{i} learning, sprocket{i}, WG{i}, flux-capacitor {i}, deep gadget{i} model]"]
    m = Matcher(parse_topics("\n".join(lines) + "\n"))
    abstract = " ".join(["We propose a method for widget3 learning with sprocket7 and WG12 in realistic settings."] * 8)
    papers = [PaperText(str(i), f"On sprocket{i % n_topics} and others", abstract) for i in range(n_papers)]
    start = time.perf_counter()
    for p in papers:
        m.match(p)
    elapsed = time.perf_counter() - start
    print(f"lexical: {n_papers} papers x {n_topics} topics in {elapsed:.2f} s = {n_papers * n_topics / elapsed:,.0f} pairs/s "
          f"({n_papers / elapsed:,.0f} papers/s)")
    return elapsed


def semantic(path: Path = PAPERS, topics: Path = TOPICS) -> None:
    from digest.topics.semantic import SemanticMatcher

    recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    papers = [PaperText(r["id"], r["title"], r.get("abstract", "")) for r in recs]
    start = time.perf_counter()
    m = SemanticMatcher(load_topics(topics), None)
    print(f"semantic: model load + topic embeddings {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    m.embed(papers)
    elapsed = time.perf_counter() - start
    print(f"semantic: {len(papers)} papers embedded in {elapsed:.1f} s = {len(papers) / elapsed:.1f} papers/s")


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--semantic", action="store_true", help="also time the semantic matcher's embeddings")
    args = ap.parse_args(argv)
    lexical()
    if args.semantic:
        semantic()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
