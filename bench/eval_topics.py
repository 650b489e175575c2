"""Measure topic matching on a labelled JSON-lines file, next to a naive baseline.

    .venv/bin/python -m bench.eval_topics [--matcher lexical|semantic|both] [--papers labeled.jsonl]
        [--topics topics.yaml] [--json out.json] [--folds 5] [--repeats 3] [--no-split] [--simulate-readers]

Each labelled record has ``id``, ``title``, ``abstract`` and its gold topic ids under
``topics`` (or ``labels``). The matcher runs through the real ``digest classify`` command (a
subprocess); the baseline (a topic is assigned when any of its keywords is a case-insensitive
substring of title + abstract) runs in this process. Those are full-set numbers with the defaults.

Held-out numbers: k-fold cross-validation of every fitted parameter. For each fold the grid
point with the best micro-F1 on the other folds predicts the held-out fold; the pooled held-out
predictions are scored (``--repeats`` shuffles, averaged). Lexical: the global threshold shift
and the relative rule. ``--matcher semantic`` (or ``both``) also runs ``digest classify
--matcher semantic`` (the hybrid of digest/semantic.py), cross-validates its four z rules, and
in this process measures the semantic-only matcher (min_similarity, margin).
"""
from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import OneLineParser  # noqa: E402

from digest.topics.match import Matcher, MatchParams, PaperText  # noqa: E402
from digest.topics.config import load_topics  # noqa: E402

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
    if importlib.util.find_spec("digest.cli.main") is not None:
        exe = Path(sys.executable).with_name("digest")
        if exe.exists():
            return [str(exe), "classify"]
        return [sys.executable, "-c", "from digest.cli.main import main; main()", "classify"]
    code = ("import typer; from digest.cli.topics import classify; "
            "app = typer.Typer(); app.command('classify')(classify); app.command('noop', hidden=True)(lambda: None); app()")
    return [sys.executable, "-c", code, "classify"]


def _paper_json(rec: dict) -> dict:
    return {"id": rec["id"], "title": rec["title"], "abstract": rec.get("abstract", ""),
            "authors": rec.get("authors") or [], "categories": rec.get("categories") or []}


def run_cli(records: list[dict], topics: Path, matcher: str = "lexical", feedback: list[dict] | None = None) -> dict[str, set[str]]:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(_paper_json(rec)) + "\n")
        tmp = fh.name
    extra, tmp_feedback = [], None
    if feedback is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as fh:
            fh.writelines(json.dumps(v) + "\n" for v in feedback)
            tmp_feedback = fh.name
        extra = ["--feedback", tmp_feedback]
    try:
        proc = subprocess.run(classify_cmd() + ["--topics", str(topics), "--papers", tmp, "--format", "json", "--matcher", matcher]
                              + extra, capture_output=True, text=True, cwd=ROOT)
    finally:
        Path(tmp).unlink(missing_ok=True)
        if tmp_feedback:
            Path(tmp_feedback).unlink(missing_ok=True)
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


def _folds(n: int, k: int, seed: int) -> list[list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [sorted(order[i::k]) for i in range(k)]


def _paper(r: dict) -> PaperText:
    return PaperText(r["id"], r["title"], r.get("abstract", ""), r.get("authors") or [], r.get("categories") or [])


def kfold(records: list[dict], topic_ids: list[str], grid: list, predictions: dict, default,
          k: int = 5, repeats: int = 3) -> dict:
    """K-fold cross-validation of a parameter choice: for each fold, the grid point with the best
    micro-F1 on the other folds (ties: nearest the default) predicts the held-out fold. The
    held-out predictions of all folds are pooled and scored; repeated with ``repeats`` shuffles.
    ``predictions[g]`` holds every paper's topics under grid point g (computed once, so folds are cheap)."""
    ids = [r["id"] for r in records]
    runs, chosen = [], []
    for seed in range(repeats):
        held: dict[str, set[str]] = {}
        for fold in _folds(len(records), k, seed):
            train = [records[i] for i in range(len(records)) if i not in set(fold)]
            best = max(grid, key=lambda g: (scores(train, predictions[g], topic_ids)["micro"]["f1"], -_distance(g, default)))
            chosen.append(best)
            held.update({ids[i]: predictions[best][ids[i]] for i in fold})
        runs.append(scores(records, held, topic_ids))
    mean = {a: {m: sum(r[a][m] for r in runs) / len(runs) for m in ("precision", "recall", "f1")} for a in ("micro", "macro")}
    per_topic = {t: {"f1": sum(r["per_topic"][t]["f1"] for r in runs) / len(runs)} for t in topic_ids}
    counts: dict = {}
    for c in chosen:
        counts[c] = counts.get(c, 0) + 1
    return {"folds": k, "repeats": repeats, "grid_size": len(grid), "micro": mean["micro"], "macro": mean["macro"],
            "micro_f1_runs": [r["micro"]["f1"] for r in runs], "per_topic": per_topic,
            "chosen": sorted(counts.items(), key=lambda kv: -kv[1]), "default": default,
            "full_set_default": scores(records, predictions[default], topic_ids)["micro"]["f1"]}


def _distance(a, b) -> float:
    if isinstance(a, tuple):
        return sum(abs(x - y) for x, y in zip(a, b))
    return abs(a - b)


def kfold_lexical(records: list[dict], config, k: int, repeats: int) -> dict:
    """Lexical: the global threshold shift and the relative rule, chosen on the training folds."""
    topic_ids = [t.id for t in config.topics]
    default = MatchParams()
    grid = [(round(-0.15 + 0.05 * i, 2), round(0.3 + 0.05 * j, 2)) for i in range(7) for j in range(7)]
    papers = [_paper(r) for r in records]
    predictions = {}
    for shift, rel in grid:
        m = Matcher(config, MatchParams(threshold_shift=shift, relative=rel))
        predictions[(shift, rel)] = {p.id: {a.topic_id for a in m.match(p)} for p in papers}
    return kfold(records, topic_ids, grid, predictions, (default.threshold_shift, default.relative), k, repeats)


def kfold_semantic(records: list[dict], hybrid, only, k: int, repeats: int) -> dict[str, dict]:
    """Hybrid: its four z rules; semantic only: (min_similarity, margin). Calibration uses every
    paper's embedding but no label, as the day's papers would."""
    from digest.topics.semantic import decide_hybrid, decide_semantic_only

    topic_ids = [t.id for t in hybrid.config.topics]
    papers = [_paper(r) for r in records]
    sims = hybrid.similarities(papers)
    mu, sd = hybrid.calibration()
    zs = [[float(x) for x in (row - mu) / sd] for row in sims]
    rows = [[float(x) for x in row] for row in sims]
    lex = hybrid.lexical
    cands = [lex.candidates(p) for p in papers]
    vetoed = [{ti for ti, ev in lex.evidence(p).items() if ev.vetoed_by} for p in papers]
    hp = hybrid.params
    default = (hp.rescue_z, hp.drop_secondary_z, hp.drop_primary_z, hp.fallback_z)
    grid = [(r, s, pr, f) for r in (0.5, 1.0, 1.5, 99.0) for s in (-99.0, -1.0, -0.5, 0.0)
            for pr in (-99.0, -0.5, 0.0) for f in (2.0, 2.5, 3.0, 99.0)]
    predictions = {}
    for g in grid:
        params = replace(hp, rescue_z=g[0], drop_secondary_z=g[1], drop_primary_z=g[2], fallback_z=g[3])
        predictions[g] = {p.id: {a.topic_id for a in decide_hybrid(params, hybrid.topics, row, z, c, lambda v=v: v)}
                          for p, row, z, c, v in zip(papers, rows, zs, cands, vetoed)}
    out = {"semantic (hybrid)": kfold(records, topic_ids, grid, predictions, default, k, repeats)}
    op = only.params
    grid = [(round(0.30 + 0.02 * i, 2), m) for i in range(10) for m in (0.0, 0.04, 0.08, 0.12)]
    predictions = {}
    for g in grid:
        params = replace(op, min_similarity=g[0], margin=g[1])
        predictions[g] = {p.id: {a.topic_id for a in decide_semantic_only(params, only.topics, row)}
                          for p, row in zip(papers, rows)}
    out["semantic only"] = kfold(records, topic_ids, grid, predictions, (op.min_similarity, op.margin), k, repeats)
    return out


def simulate_readers(records: list[dict], topics: Path, matcher: str, topic_ids: list[str], splits: int = 5,
                     examples: int = 3) -> dict:
    """The protocol of issue 14 (section 4): for each of ``splits`` fixed shuffles, classify the
    first half with no feedback; simulated readers vote on every assigned (paper, topic) pair
    (relevant = the label) and an admin adds up to ``examples`` labelled papers per topic that
    were missed; then the second half is classified with and without that feedback (all through
    ``digest classify``). The second half is never seen before it is scored."""
    runs = []
    for seed in range(splits):
        order = list(range(len(records)))
        random.Random(1000 + seed).shuffle(order)
        half = len(order) // 2
        first, second = [records[i] for i in order[:half]], [records[i] for i in order[half:]]
        assigned = run_cli(first, topics, matcher)
        feedback = [{"paper": _paper_json(r), "topic": t, "relevant": t in r["_gold"]}
                    for r in first for t in sorted(assigned.get(r["id"], ()))]
        for t in topic_ids:
            missed = [r for r in first if t in r["_gold"] and t not in assigned.get(r["id"], set())][:examples]
            feedback += [{"paper": _paper_json(r), "topic": t, "relevant": True} for r in missed]
        plain = scores(second, run_cli(second, topics, matcher), topic_ids)["micro"]
        learned = scores(second, run_cli(second, topics, matcher, feedback), topic_ids)["micro"]
        runs.append({"seed": 1000 + seed, "votes": len(feedback), "no_feedback": plain, "feedback": learned})
    mean = {k: {m: sum(r[k][m] for r in runs) / len(runs) for m in ("precision", "recall", "f1")}
            for k in ("no_feedback", "feedback")}
    return {"splits": runs, "mean": mean, "matcher": matcher}


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--papers", type=Path, default=DEFAULT_PAPERS)
    ap.add_argument("--topics", type=Path, default=DEFAULT_TOPICS)
    ap.add_argument("--matcher", choices=("lexical", "semantic", "both"), default="lexical",
                    help="which matcher(s) to measure next to the baseline (semantic needs the 'semantic' extra)")
    ap.add_argument("--json", type=Path, help="write the numbers to this file")
    ap.add_argument("--folds", type=int, default=5, help="k-fold cross-validation of the fitted parameters (0: skip)")
    ap.add_argument("--repeats", type=int, default=3, help="k-fold runs, each with another shuffle")
    ap.add_argument("--no-split", action="store_true", help="same as --folds 0")
    ap.add_argument("--simulate-readers", action="store_true",
                    help="only the feedback protocol: 5 fixed half splits, votes on the first half, scores on the second")
    args = ap.parse_args(argv)
    if args.no_split:
        args.folds = 0

    from rich.console import Console
    from rich.table import Table

    config = load_topics(args.topics)
    records = read_labelled(args.papers)
    topic_ids = [t.id for t in config.topics]
    console = Console(width=max(Console().width, 120))

    if args.simulate_readers:
        kinds = ["lexical", "semantic"] if args.matcher == "both" else [args.matcher]
        sims = {k: simulate_readers(records, args.topics, k, topic_ids) for k in kinds}
        table = Table(title=f"Simulated readers on {args.papers.name}: second halves of 5 fixed splits (mean)")
        for col in ("matcher", "feedback", "micro P", "micro R", "micro F1", "F1 per split"):
            table.add_column(col, justify="left" if col in ("matcher", "feedback") else "right")
        for k, res in sims.items():
            for key, label in (("no_feedback", "none"), ("feedback", "votes + examples")):
                m = res["mean"][key]
                table.add_row(k, label, *(f"{m[x]:.3f}" for x in ("precision", "recall", "f1")),
                              " ".join(f"{r[key]['f1']:.2f}" for r in res["splits"]))
        console.print(table)
        if args.json:
            args.json.write_text(json.dumps({"papers": str(args.papers), "simulate_readers": sims}, indent=2), encoding="utf-8")
        return 0

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
        from digest.topics.semantic import SemanticMatcher

        hybrid = SemanticMatcher(config, Matcher(config))
        only = SemanticMatcher(config, None, _shared=(hybrid.model, hybrid.topic_vectors, hybrid._cache))
        start = time.perf_counter()
        hybrid.embed([_paper(r) for r in records])  # cold cache: the embedding cost
        timing["semantic papers/s (embedding)"] = len(records) / (time.perf_counter() - start)
        got = only.match_many([_paper(r) for r in records])
        results["semantic only"] = scores(records, {r["id"]: {a.topic_id for a in g} for r, g in zip(records, got)},
                                          topic_ids)
    results["baseline (substring)"] = scores(records, baseline(records, config), topic_ids)

    held: dict[str, dict] = {}
    if args.folds > 1:
        if "lexical" in results:
            held["lexical"] = kfold_lexical(records, config, args.folds, args.repeats)
        if hybrid is not None:
            held.update(kfold_semantic(records, hybrid, only, args.folds, args.repeats))

    summary = Table(title=f"{len(records)} papers, {len(topic_ids)} topics ({args.papers.name}): full set, defaults")
    for col in ("", "micro P", "micro R", "micro F1", "macro P", "macro R", "macro F1"):
        summary.add_column(col, justify="right" if col else "left")
    for name, s in results.items():
        summary.add_row(name, *(f"{s[a][k]:.3f}" for a in ("micro", "macro") for k in ("precision", "recall", "f1")))
    for name, h in held.items():
        summary.add_row(f"{name} ({h['folds']}-fold held-out)",
                        *(f"{h[a][k]:.3f}" for a in ("micro", "macro") for k in ("precision", "recall", "f1")))
    console.print(summary)

    per = Table(title="Per topic (F1; P/R for the first matcher; (k-fold) = held-out)")
    first = next(iter(results))
    per.add_column("topic")
    per.add_column("gold", justify="right")
    per.add_column(f"{first} P/R", justify="right")
    for name in results:
        per.add_column(name, justify="right")
    for name in held:
        per.add_column(f"{name} (k-fold)", justify="right")
    for t in topic_ids:
        c = results[first]["per_topic"][t]
        per.add_row(t, str(c["tp"] + c["fn"]), f"{c['precision']:.2f}/{c['recall']:.2f}",
                    *(f"{results[n]['per_topic'][t]['f1']:.2f}" for n in results),
                    *(f"{held[n]['per_topic'][t]['f1']:.2f}" for n in held))
    console.print(per)

    result = {"papers": str(args.papers), "topics": str(args.topics), "n": len(records), "matchers": results,
              "timing": timing}
    if "lexical" in results:  # the old keys, for existing readers of --json
        result["matcher"], result["baseline"] = results["lexical"], results["baseline (substring)"]
    if held:
        result["kfold"] = held
        kt = Table(title=f"{args.folds}-fold cross-validation x {args.repeats}: parameters chosen on the other folds")
        for col in ("matcher", "grid", "full set F1 (defaults)", "held-out micro F1 (runs)", "held-out macro F1",
                    "defaults", "chosen (times)"):
            kt.add_column(col, justify="left" if col in ("matcher", "chosen (times)") else "right")
        for name, h in held.items():
            fmt = lambda g: "/".join(f"{x:g}" for x in g) if isinstance(g, tuple) else f"{g:g}"  # noqa: E731
            kt.add_row(name, str(h["grid_size"]), f"{h['full_set_default']:.3f}",
                       f"{h['micro']['f1']:.3f} ({', '.join(f'{x:.3f}' for x in h['micro_f1_runs'])})",
                       f"{h['macro']['f1']:.3f}", fmt(h["default"]),
                       ", ".join(f"{fmt(g)} ({n})" for g, n in h["chosen"][:3]))
        console.print(kt)
    console.print("  ".join(f"{k}: {v:,.1f}" for k, v in timing.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=_jsonable), encoding="utf-8")
    return 0


def _jsonable(obj):
    return sorted(obj) if isinstance(obj, set) else list(obj)


if __name__ == "__main__":
    raise SystemExit(main())
