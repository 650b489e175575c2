"""Measure topic matching on a labelled JSON-lines file, next to a naive baseline.

    .venv/bin/python -m bench.eval_topics [--matcher lexical|semantic|both] [--papers labeled.jsonl]
        [--topics topics.yaml] [--json out.json] [--no-split]

Each labelled record has ``id``, ``title``, ``abstract`` and its gold topic ids under
``topics`` (or ``labels``). The matcher runs through the real ``digest classify`` command (a
subprocess); the baseline (a topic is assigned when any of its keywords is a case-insensitive
substring of title + abstract) runs in this process. A split-half check then tunes one global
threshold shift on one half and measures it on the other (both ways), to show how much the
defaults depend on the data they were checked on.

``--matcher semantic`` (or ``both``) also runs ``digest classify --matcher semantic`` (the
hybrid of digest/semantic.py) and, in this process, the semantic-only matcher; its split-half
check tunes the hybrid's ``fallback_min`` (and the semantic-only ``min_similarity``) on one half
and measures on the other. The halves are the same for every matcher (fixed seed).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from digest.match import Matcher, MatchParams, PaperText  # noqa: E402
from digest.topics import load_topics  # noqa: E402

DEFAULT_PAPERS = Path("/work/shared/corpus/labeled-dev.jsonl")
DEFAULT_TOPICS = Path("/work/shared/corpus/topics-eval.yaml")


def read_labelled(path: Path) -> list[dict]:
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        rec = json.loads(line)
        gold = rec.get("topics", rec.get("labels"))
        if gold is None:
            raise SystemExit(f"{path}:{n}: no 'topics' or 'labels' field")
        rec["_gold"] = set(gold)
        records.append(rec)
    return records


def classify_cmd() -> list[str]:
    """The real CLI when the root app exists, else the same command in a one-command app."""
    if importlib.util.find_spec("digest.cli") is not None:
        exe = Path(sys.executable).with_name("digest")
        if exe.exists():
            return [str(exe), "classify"]
        return [sys.executable, "-c", "from digest.cli import main; main()", "classify"]
    code = ("import typer; from digest.cli_topics import classify; "
            "app = typer.Typer(); app.command('classify')(classify); app.command('noop', hidden=True)(lambda: None); app()")
    return [sys.executable, "-c", code, "classify"]


def run_cli(records: list[dict], topics: Path, matcher: str = "lexical") -> dict[str, set[str]]:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps({"id": rec["id"], "title": rec["title"], "abstract": rec.get("abstract", ""),
                                 "authors": rec.get("authors") or [], "categories": rec.get("categories") or []}) + "\n")
        tmp = fh.name
    try:
        proc = subprocess.run(classify_cmd() + ["--topics", str(topics), "--papers", tmp, "--format", "json", "--matcher", matcher],
                              capture_output=True, text=True, cwd=ROOT)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if proc.returncode != 0:
        raise SystemExit(f"digest classify failed ({proc.returncode}):\n{proc.stderr}")
    out = {}
    for line in proc.stdout.splitlines():
        obj = json.loads(line)
        out[obj["id"]] = {t["id"] for t in obj["topics"]}
    return out


def baseline(records: list[dict], config) -> dict[str, set[str]]:
    out = {}
    for rec in records:
        text = f"{rec['title']} {rec.get('abstract', '')}".lower()
        out[rec["id"]] = {t.id for t in config.topics if any(k.lower() in text for k in t.keywords)}
    return out


def scores(records: list[dict], pred: dict[str, set[str]], topic_ids: list[str]) -> dict:
    per = {t: {"tp": 0, "fp": 0, "fn": 0} for t in topic_ids}
    for rec in records:
        gold, got = rec["_gold"], pred.get(rec["id"], set())
        for t in topic_ids:
            if t in gold and t in got:
                per[t]["tp"] += 1
            elif t in got:
                per[t]["fp"] += 1
            elif t in gold:
                per[t]["fn"] += 1

    def prf(tp, fp, fn):
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    for t, c in per.items():
        c["precision"], c["recall"], c["f1"] = prf(c["tp"], c["fp"], c["fn"])
    tp = sum(c["tp"] for c in per.values())
    fp = sum(c["fp"] for c in per.values())
    fn = sum(c["fn"] for c in per.values())
    micro = dict(zip(("precision", "recall", "f1"), prf(tp, fp, fn)))
    present = [c for c in per.values() if c["tp"] + c["fn"] > 0]
    macro = {k: sum(c[k] for c in present) / max(len(present), 1) for k in ("precision", "recall", "f1")}
    return {"micro": micro, "macro": macro, "per_topic": per}


def _halves(records: list[dict], seed: int = 13) -> list[list[dict]]:
    rng = random.Random(seed)
    shuffled = records[:]
    rng.shuffle(shuffled)
    return [shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]]


def _paper(r: dict) -> PaperText:
    return PaperText(r["id"], r["title"], r.get("abstract", ""), r.get("authors") or [], r.get("categories") or [])


def _tune(records: list[dict], topic_ids: list[str], candidates: list, predict, default, seed: int = 13) -> dict:
    """Pick the candidate with the best micro-F1 on one half, measure it on the other, both ways
    (ties go to the candidate nearest the default)."""
    halves = _halves(records, seed)
    out = {}
    for name, (tune, test) in {"A->B": (halves[0], halves[1]), "B->A": (halves[1], halves[0])}.items():
        f1 = lambda recs, c: scores(recs, predict(recs, c), topic_ids)["micro"]["f1"]  # noqa: E731
        best = max(candidates, key=lambda c: (f1(tune, c), -_distance(c, default)))
        out[name] = {"chosen": best, "tune_micro_f1": f1(tune, best), "test_micro_f1": f1(test, best),
                     "test_micro_f1_defaults": f1(test, default)}
    return out


def _distance(a, b) -> float:
    if isinstance(a, tuple):
        return sum(abs(x - y) for x, y in zip(a, b))
    return abs(a - b)


def split_half(records: list[dict], config, seed: int = 13) -> dict:
    """Lexical: tune a global threshold shift on one half, measure on the other, and the reverse."""
    shifts = [round(-0.2 + 0.05 * i, 2) for i in range(9)]
    topic_ids = [t.id for t in config.topics]

    def predict(recs, shift):
        m = Matcher(config, MatchParams(threshold_shift=shift))
        return {r["id"]: {a.topic_id for a in m.match(_paper(r))} for r in recs}

    return _tune(records, topic_ids, shifts, predict, 0.0, seed)


def split_half_semantic(records: list[dict], hybrid, only, seed: int = 13) -> dict[str, dict]:
    """Hybrid: tune fallback_min; semantic only: tune (min_similarity, margin)."""
    topic_ids = [t.id for t in hybrid.config.topics]
    by_id = {r["id"]: _paper(r) for r in records}

    def predictor(base):
        def predict(recs, value):
            m = base.with_params(**value) if isinstance(value, dict) else value
            got = m.match_many([by_id[r["id"]] for r in recs])
            return {r["id"]: {a.topic_id for a in assigned} for r, assigned in zip(recs, got)}
        return predict

    hy = hybrid.params
    fallbacks = [round(0.35 + 0.05 * i, 2) for i in range(5)]
    pred_h = predictor(hybrid)
    out = {"semantic (hybrid)": _tune(records, topic_ids, fallbacks,
                                      lambda recs, v: pred_h(recs, {"fallback_min": v}), hy.fallback_min, seed)}
    grid = [(round(0.30 + 0.02 * i, 2), m) for i in range(10) for m in (0.0, 0.04, 0.08, 0.12)]
    pred_o = predictor(only)
    out["semantic only"] = _tune(records, topic_ids, grid,
                                 lambda recs, v: pred_o(recs, {"min_similarity": v[0], "margin": v[1]}),
                                 (only.params.min_similarity, only.params.margin), seed)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--papers", type=Path, default=DEFAULT_PAPERS)
    ap.add_argument("--topics", type=Path, default=DEFAULT_TOPICS)
    ap.add_argument("--matcher", choices=("lexical", "semantic", "both"), default="lexical",
                    help="which matcher(s) to measure next to the baseline (semantic needs the 'semantic' extra)")
    ap.add_argument("--json", type=Path, help="write the numbers to this file")
    ap.add_argument("--no-split", action="store_true", help="skip the split-half check")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    config = load_topics(args.topics)
    records = read_labelled(args.papers)
    topic_ids = [t.id for t in config.topics]
    console = Console(width=max(Console().width, 120))

    results: dict[str, dict] = {}
    timing: dict[str, float] = {}
    hybrid = only = None
    if args.matcher in ("lexical", "both"):
        results["lexical"] = scores(records, run_cli(records, args.topics, "lexical"), topic_ids)
        m = Matcher(config)
        start = time.perf_counter()
        for r in records:
            m.match(_paper(r))
        timing["lexical papers/s"] = len(records) / (time.perf_counter() - start)
    if args.matcher in ("semantic", "both"):
        results["semantic (hybrid)"] = scores(records, run_cli(records, args.topics, "semantic"), topic_ids)
        from digest.semantic import SemanticMatcher

        hybrid = SemanticMatcher(config, Matcher(config))
        only = SemanticMatcher(config, None, _shared=(hybrid.model, hybrid.topic_vectors, hybrid._cache))
        start = time.perf_counter()
        hybrid.embed([_paper(r) for r in records])  # cold cache: the embedding cost
        timing["semantic papers/s (embedding)"] = len(records) / (time.perf_counter() - start)
        got = only.match_many([_paper(r) for r in records])
        results["semantic only"] = scores(records, {r["id"]: {a.topic_id for a in g} for r, g in zip(records, got)},
                                          topic_ids)
    results["baseline (substring)"] = scores(records, baseline(records, config), topic_ids)

    summary = Table(title=f"{len(records)} papers, {len(topic_ids)} topics ({args.papers.name})")
    for col in ("", "micro P", "micro R", "micro F1", "macro P", "macro R", "macro F1"):
        summary.add_column(col, justify="right" if col else "left")
    for name, s in results.items():
        summary.add_row(name, *(f"{s[a][k]:.3f}" for a in ("micro", "macro") for k in ("precision", "recall", "f1")))
    console.print(summary)

    per = Table(title="Per topic (F1; P/R for the first matcher)")
    first = next(iter(results))
    per.add_column("topic")
    per.add_column("gold", justify="right")
    per.add_column(f"{first} P/R", justify="right")
    for name in results:
        per.add_column(name, justify="right")
    for t in topic_ids:
        c = results[first]["per_topic"][t]
        per.add_row(t, str(c["tp"] + c["fn"]), f"{c['precision']:.2f}/{c['recall']:.2f}",
                    *(f"{results[n]['per_topic'][t]['f1']:.2f}" for n in results))
    console.print(per)

    result = {"papers": str(args.papers), "topics": str(args.topics), "n": len(records), "matchers": results,
              "timing": timing}
    if "lexical" in results:  # the old keys, for existing readers of --json
        result["matcher"], result["baseline"] = results["lexical"], results["baseline (substring)"]
    if not args.no_split:
        halves: dict[str, dict] = {}
        if "lexical" in results:
            halves["lexical (threshold shift)"] = split_half(records, config)
        if hybrid is not None:
            halves.update(split_half_semantic(records, hybrid, only))
        result["split_half"] = halves
        sh = Table(title="Split-half (seed 13): tuned on one half, measured on the other")
        for col in ("matcher", "direction", "chosen", "tune micro F1", "test micro F1", "test micro F1 (defaults)"):
            sh.add_column(col, justify="left" if col == "matcher" else "right")
        for matcher, both in halves.items():
            for name, h in both.items():
                chosen = h["chosen"]
                chosen = ", ".join(f"{x:g}" for x in chosen) if isinstance(chosen, tuple) else f"{chosen:+g}"
                sh.add_row(matcher, name, chosen, f"{h['tune_micro_f1']:.3f}", f"{h['test_micro_f1']:.3f}",
                           f"{h['test_micro_f1_defaults']:.3f}")
        console.print(sh)
    console.print("  ".join(f"{k}: {v:,.1f}" for k, v in timing.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=sorted), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
