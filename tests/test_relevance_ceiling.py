"""bench/relevance_ceiling.py: the per-topic oracle is the true optimum over every choice of
cuts (checked by trying them all on small cases), and a model that cannot load is one line."""
from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings, strategies as st

from bench.relevance_ceiling import main, oracle, oracle_per_topic, transfer_cuts


def _every_choice_of_cuts(sims, gold):
    """Best P at R >= 0.70 and best F1 over all per-topic prefix lengths, by brute force."""
    total, best_p, best_f1 = gold.sum(), 0.0, 0.0
    ranked = [gold[np.argsort(-sims[:, j], kind="stable"), j] for j in range(sims.shape[1])]
    for cuts in itertools.product(range(len(sims) + 1), repeat=sims.shape[1]):
        predicted = sum(cuts)
        if not predicted:
            continue
        tp = sum(int(r[:k].sum()) for r, k in zip(ranked, cuts))
        p, r = tp / predicted, tp / total
        if r >= 0.70:
            best_p = max(best_p, p)
        if tp:
            best_f1 = max(best_f1, 2 * p * r / (p + r))
    return round(best_p, 3), round(best_f1, 3)


cases = st.integers(3, 6).flatmap(lambda n: st.integers(1, 3).flatmap(lambda m: st.tuples(
    st.lists(st.floats(0, 1), min_size=n * m, max_size=n * m).map(lambda v: np.array(v).reshape(n, m)),
    st.lists(st.booleans(), min_size=n * m, max_size=n * m).map(lambda v: np.array(v).reshape(n, m)),
))).filter(lambda c: c[1].any())


@settings(max_examples=150, deadline=None)
@given(cases)
def test_the_per_topic_oracle_is_the_best_of_every_choice_of_cuts(case):
    sims, gold = case
    got = oracle_per_topic(sims, gold)
    assert (got["precision_at_recall_0.70"], got["best_f1"]) == _every_choice_of_cuts(sims, gold)
    # one cut for all topics is one of those choices, so it can only be worse
    assert oracle(sims, gold)["precision_at_recall_0.70"] <= got["precision_at_recall_0.70"]


def test_cuts_chosen_and_scored_on_the_same_file_give_each_topic_its_best_f1():
    sims = np.array([[0.9], [0.8], [0.7], [0.6], [0.5]])
    gold = np.array([[True], [False], [True], [False], [False]])
    # best F1 for the topic: cut after the third paper (2 of 3 right, both positives found)
    assert transfer_cuts(sims, gold, sims, gold) == {"precision": 0.667, "recall": 1.0, "f1": 0.8}
    # applied to another file, the cut is the cosine of that third paper
    other = np.array([[0.71], [0.69], [0.95]])
    assert transfer_cuts(sims, gold, other, np.array([[True], [True], [False]])) == \
        {"precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_a_model_that_is_not_a_model_directory_is_one_line_and_exit_2(tmp_path, capsys):
    for name in ("labeled.jsonl", "stream.jsonl", "topics.yaml"):
        (tmp_path / name).write_text("", encoding="utf-8")
    code = main(["--model", str(tmp_path / "no-such-model"), "--seed", str(tmp_path / "labeled.jsonl"),
                 "--day", str(tmp_path / "stream.jsonl"), "--topics", str(tmp_path / "topics.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no-such-model" in err and "not a sentence-transformers model directory" in err
