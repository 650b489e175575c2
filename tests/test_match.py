"""The lexical matcher and match_pending against a real SQLite database."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from digest.topics.match import Matcher, PaperText, stem, tokenize
from digest.topics.store import match_pending
from digest.topics.config import parse_topics


def config(yaml_text):
    return parse_topics(yaml_text)


def one(keywords, **extra):
    lines = ["topics:", "  - id: t", "    name: Test topic", f"    keywords: [{', '.join(keywords)}]"]
    for key, value in extra.items():
        lines.append(f"    {key}: {value}")
    return Matcher(config("\n".join(lines) + "\n"))


def ids(matcher, title, abstract="", **kw):
    return [a.topic_id for a in matcher.match(PaperText("p", title, abstract, **kw))]


def test_stemmer_conflates_word_forms():
    assert stem("segmentation") == stem("segmenting") == stem("segment") == stem("segmented") == stem("segments")
    assert stem("quantization") == stem("quantized") == stem("quantize")
    assert stem("tumours") == stem("tumor")
    assert stem("ECGs") == stem("ecg")


def test_tokenize_splits_hyphens_and_digits():
    assert tokenize("Swin-UNet and ResNet50, vision–language") == ["Swin", "UNet", "and", "ResNet", "50", "vision", "language"]


def test_word_boundaries():
    m = one(["ECG"])
    assert ids(m, "A new ECG dataset") == ["t"]
    assert ids(m, "Twelve-lead ECGs at scale") == ["t"]
    assert ids(m, "DECGAN: a generator") == []
    assert ids(m, "PECG reduction") == []
    m = one(["heart"])
    assert ids(m, "The heartbeat of cities") == []
    assert ids(m, "Heart failure prediction") == ["t"]


def test_acronyms_are_case_sensitive():
    m = one(["OCT"])
    assert ids(m, "Retinal OCT volumes") == ["t"]
    assert ids(m, "Results from October") == []
    assert ids(m, "An oct tree for rendering") == []
    assert ids(m, "Oct 12 release notes") == []
    vit = one(["ViT"])
    assert ids(vit, "Scaling ViTs to billions") == ["t"]
    assert ids(vit, "A VIT study") == ["t"]
    assert ids(vit, "vit is a word here") == []


def test_morphology_in_title_and_phrase():
    m = one(["image segmentation"])
    assert ids(m, "Segmenting images of cells with attention") == ["t"]  # same words close together
    assert ids(m, "Images of cells, and their segmentation with a large attention model") == []  # too far apart
    assert ids(m, "Image segmenting made easy") == ["t"]
    assert ids(m, "Image segmentations for all") == ["t"]
    m = one(["medical image segmentation"])
    assert ids(m, "Segmentation of medical images with transformers") == ["t"]  # same words, near, other order


def test_word_families_of_fields():
    assert stem("pathology") == stem("pathological") == stem("pathologist") == stem("pathologies")
    assert stem("logic") != stem("pathology")
    m = one(["ophthalmology"])
    assert ids(m, "Ophthalmic images at scale") == ["t"]  # the field's adjective
    assert ids(m, "Ophthalmological screening in clinics") == ["t"]
    assert ids(m, "Optical flow at scale") == []


def test_connectors_inside_compounds():
    m = one(["vision-language"])
    assert ids(m, "Medical vision-and-language pretraining") == ["t"]
    m = one(["image-text"])
    assert ids(m, "Image-to-text retrieval for radiology") == ["t"]
    assert ids(m, "Image and text", "Images are shown next to a text.") == []


def test_description_lists_share_their_noun():
    from digest.topics.match import _salient_terms

    terms = _salient_terms("Decoding or encoding brain activity, sparse or linear attention, pruning, sparsity.")
    assert {"decoding brain activity", "encoding brain activity", "sparse attention", "linear attention",
            "pruning", "sparsity"} <= set(terms)
    assert "Decoding" not in terms
    terms = _salient_terms("Quantization, token reduction and efficient inference.")
    assert {"token reduction", "reduction", "efficient inference", "inference"} <= set(terms)


def test_candidates_say_which_rule_failed():
    m = Matcher(config(TWO.replace("    min_score: 0.2\n", "")))
    paper = PaperText("a", "Medical image segmentation with a new U-Net",
                      "Our U-Net improves medical image segmentation; pruning and pruning again, then pruning.")
    by_id = {c.assignment.topic_id: c for c in m.candidates(paper)}
    assert by_id["seg"].assigned and by_id["seg"].best
    comp = by_id["comp"]
    assert not comp.best and not comp.above_relative and not comp.assigned
    assert [a.topic_id for a in m.match(paper)] == ["seg"]


def test_multiword_phrases_need_the_words_together():
    m = one(["state space model"])
    assert ids(m, "A state space model for audio") == ["t"]
    assert ids(m, "The state of the art in latent space", "We model everything.") == []


def test_hyphen_and_space_variants():
    m = one(["vision-language"])
    for title in ("A vision-language benchmark", "A vision language benchmark", "VisionLanguage pretraining"):
        assert ids(m, title) == ["t"], title
    m = one(["U-Net"])
    assert ids(m, "A UNet for livers") == ["t"]
    assert ids(m, "Swin-UNet for organs") == ["t"]
    m = one(["superresolution"])
    assert ids(m, "Super-resolution of faces") == ["t"]


def test_title_weighs_more_than_abstract():
    m = one(["pruning"])
    in_title = m.score_all(PaperText("a", "Structured pruning of transformers", "We study transformers."))
    in_abstract = m.score_all(PaperText("b", "Faster transformers", "We study transformers and mention pruning once."))
    assert in_title[0].score > in_abstract[0].score
    assert ids(m, "Structured pruning of transformers") == ["t"]
    assert ids(m, "Faster transformers", "We study transformers and mention pruning once.") == []


def test_repeated_abstract_evidence_assigns():
    m = one(["knowledge distillation", "teacher network"])
    abstract = ("We use knowledge distillation to train a small student. The teacher network is large. "
                "Knowledge distillation transfers what the teacher network learned.")
    assert ids(m, "Small students, big gains", abstract) == ["t"]


def test_exclude_vetoes():
    m = one(["image segmentation"], exclude="[remote sensing]")
    assert ids(m, "Image segmentation of organs") == ["t"]
    assert ids(m, "Image segmentation for remote sensing") == []
    assert ids(m, "Image segmentation of fields", "Satellite data from Remote-Sensing platforms.") == []


def test_categories_are_evidence_but_not_enough_alone():
    m = one(["lesion segmentation"], categories="[eess.IV]")
    alone = m.score_all(PaperText("a", "Something unrelated", "", categories=["eess.IV"]))
    assert alone and alone[0].matched == ["category:eess.IV"]
    assert ids(m, "Something unrelated", "", categories=["eess.IV"]) == []
    weak = PaperText("b", "Skin imaging", "We study lesion segmentation.")
    assert ids(m, weak.title, weak.abstract) == []
    assert ids(m, weak.title, weak.abstract, categories=["eess.IV"]) == ["t"]


def test_authors_always_match():
    m = one(["zebra"], authors="[Olaf Ronneberger]")
    paper = PaperText("a", "Anything at all", "", authors=["Jane Doe", "Olaf Ronneberger"])
    result = m.match(paper)
    assert [a.topic_id for a in result] == ["t"] and result[0].score == 1.0
    assert result[0].matched[0] == "author:Olaf Ronneberger"
    assert ids(m, "Anything", "", authors=["O. Ronneberger"]) == ["t"]
    assert ids(m, "Anything", "", authors=["Olaf Smith"]) == []


def test_description_terms_are_weaker_evidence():
    m = Matcher(config("""\
topics:
  - id: eye
    name: Eye imaging
    description: Fundus photographs, glaucoma and diabetic retinopathy.
    keywords: [ophthalmology]
"""))
    paper = ("Detecting glaucoma in fundus photographs", "A dataset from an ophthalmology clinic.")
    assert ids(m, *paper) == ["eye"]
    assert ids(m, "A toolbox", "One dataset had a glaucoma case.") == []
    off = Matcher(config("""\
topics:
  - id: eye
    name: Eye imaging
    description: Fundus photographs, glaucoma and diabetic retinopathy.
    keywords: [ophthalmology]
    use_description: false
"""))
    assert ids(off, *paper) == []


TWO = """\
topics:
  - id: seg
    name: Segmentation
    keywords: [medical image segmentation, U-Net]
  - id: comp
    name: Compression
    keywords: [quantization, pruning]
    min_score: 0.2
"""


def test_best_first_with_matched_phrases():
    m = Matcher(config(TWO))
    paper = PaperText("a", "Quantization and pruning of U-Net models for medical image segmentation",
                      "We quantize a U-Net. Medical image segmentation on phones. Quantization and pruning halve memory.")
    result = m.match(paper)
    assert [a.topic_id for a in result][0] == "seg"
    assert {a.topic_id for a in result} == {"seg", "comp"}
    seg = result[0]
    assert 0 < seg.score <= 1 and "medical image segmentation" in seg.matched and "U-Net" in seg.matched
    assert all(0.0 <= a.score <= 1.0 for a in result)


def test_a_passing_mention_of_another_topic_is_not_enough():
    m = Matcher(config(TWO.replace("    min_score: 0.2\n", "")))
    paper = PaperText("a", "Medical image segmentation with a new U-Net",
                      "Our U-Net improves medical image segmentation; pruning is left for future work.")
    assert [a.topic_id for a in m.match(paper)] == ["seg"]


def test_1000_papers_100_topics():
    topics = ["topics:"]
    for i in range(100):
        topics += [f"  - id: t{i}", f"    name: Topic {i}",
                   f"    description: Studies of widget{i} gadgets, sprocket{i} and flux capacitor{i} designs.",
                   f"    keywords: [widget{i} learning, sprocket{i}, WG{i}, flux-capacitor {i}, deep gadget{i} model]"]
    m = Matcher(config("\n".join(topics) + "\n"))
    abstract = " ".join(["We propose a method for widget3 learning with sprocket7 and WG12 in realistic settings."] * 8)
    papers = [PaperText(str(i), f"On sprocket{i % 100} and others", abstract) for i in range(1000)]
    results = [m.match(p) for p in papers]  # timing lives in bench/match_speed.py, not here
    assert len(results) == 1000 and all(results)
    for i, assigned in enumerate(results):
        got = [a.topic_id for a in assigned]
        assert f"t{i % 100}" in got  # the topic named in the title
        assert set(got) <= {f"t{i % 100}", "t3", "t7", "t12"}  # ... and only those the abstract names
        assert all(0.0 < a.score <= 1.0 for a in assigned)
        assert len(got) == len(set(got))


# ---------------------------------------------------------------------------- database


@pytest.fixture()
def settings(tmp_path, db_url):
    from digest.store.settings import Settings

    return Settings(database_url=db_url, config_dir=tmp_path)


def add_papers(settings):
    from digest.store.db import session_scope
    from digest.store.models import Paper

    now = datetime.now(timezone.utc)
    with session_scope(settings) as s:
        s.add_all([
            Paper(id="p1", title="Medical image segmentation with a U-Net", abstract="We segment organs.",
                  authors=["A B"], categories=["eess.IV"], first_seen_at=now),
            Paper(id="p2", title="Pruning and quantization of language models", abstract="Smaller models.",
                  authors=[], categories=["cs.LG"], first_seen_at=now),
            Paper(id="p3", title="A history of the bicycle", abstract="Wheels.", authors=[], categories=[],
                  first_seen_at=now),
            Paper(id="old", title="Medical image segmentation long ago", abstract="", authors=[], categories=[],
                  first_seen_at=now - timedelta(days=400)),
        ])


def stored(settings):
    from digest.store.db import session_scope
    from digest.store.models import Paper, TopicMatch

    with session_scope(settings) as s:
        rows = sorted((m.paper_id, m.topic_id) for m in s.scalars(select(TopicMatch)))
        versions = {p.id: p.matched_version for p in s.scalars(select(Paper))}
    return rows, versions


def test_match_pending_is_bulk_idempotent_and_rematches(settings):
    from digest.store.db import session_scope

    add_papers(settings)
    cfg = config(TWO)
    with session_scope(settings) as s:
        assert match_pending(s, cfg, lookback_days=7) == 3  # "old" is outside 2 x lookback
    rows, versions = stored(settings)
    assert rows == [("p1", "seg"), ("p2", "comp")]
    assert versions["p1"] == versions["p3"] == cfg.version and versions["old"] is None
    with session_scope(settings) as s:
        assert match_pending(s, cfg, lookback_days=7) == 0  # nothing to do the second time
    assert stored(settings)[0] == rows

    cfg2 = config(TWO + "  - id: bikes\n    name: Bicycles\n    keywords: [bicycle]\n")
    with session_scope(settings) as s:
        assert match_pending(s, cfg2, lookback_days=7, batch_size=2) == 3
    rows2, versions2 = stored(settings)
    assert rows2 == [("p1", "seg"), ("p2", "comp"), ("p3", "bikes")]
    assert {versions2[k] for k in ("p1", "p2", "p3")} == {cfg2.version}

    # removing a topic removes its stored matches
    with session_scope(settings) as s:
        assert match_pending(s, cfg, lookback_days=7) == 3
    assert stored(settings)[0] == rows

    with session_scope(settings) as s:
        assert match_pending(s, cfg, all_papers=True) == 1
    assert ("old", "seg") in stored(settings)[0]


def test_two_runs_matching_at_once_never_collide(settings):
    """A second run that starts matching while the first has not committed waits, then finds
    the papers matched (no duplicate-key error on PostgreSQL, no lost match on SQLite)."""
    import threading

    from digest.store.db import session_factory

    add_papers(settings)
    cfg = config(TWO)
    make = session_factory(settings)
    first = make()
    assert match_pending(first, cfg, lookback_days=7) == 3          # not committed yet
    result: dict = {}

    def second():
        try:
            with make() as s:
                result["n"] = match_pending(s, cfg, lookback_days=7)
                s.commit()
        except Exception as exc:                                   # pragma: no cover - the bug
            result["error"] = exc

    t = threading.Thread(target=second)
    t.start()
    t.join(0.5)
    first.commit()
    first.close()
    t.join(60)
    assert "error" not in result, result.get("error")
    assert result["n"] in (0, 3)
    assert stored(settings)[0] == [("p1", "seg"), ("p2", "comp")]


def test_match_pending_stores_score_and_evidence(settings):
    from digest.store.db import session_scope
    from digest.store.models import TopicMatch

    add_papers(settings)
    with session_scope(settings) as s:
        match_pending(s, config(TWO), lookback_days=7)
    with session_scope(settings) as s:
        m = s.get(TopicMatch, ("p1", "seg"))
        assert 0 < m.score <= 1 and "U-Net" in m.matched and m.matched_at is not None


def test_hybrid_rules_in_units_of_each_topics_spread():
    """The semantic hybrid's decision (pure; no model needed): z confirms, drops or rescues."""
    from digest.topics.semantic import SemanticParams, decide_hybrid

    m = Matcher(config(TWO.replace("    min_score: 0.2\n", "")))
    paper = PaperText("a", "Medical image segmentation with a new U-Net",
                      "Our U-Net improves medical image segmentation; pruning and pruning again, then pruning.")
    cands = m.candidates(paper)
    p = SemanticParams()

    def decide(z, sims=(0.5, 0.3)):
        return [a.topic_id for a in decide_hybrid(p, m.topics, list(sims), z, cands, lambda: set())]

    assert decide([1.0, 0.2]) == ["seg"]  # a passing mention stays out
    assert decide([1.0, 1.4]) == ["seg", "comp"]  # ... unless its meaning is clearly there
    assert decide([-0.4, 1.4]) == ["comp"]  # words without meaning are dropped
    assert decide(None) == ["seg"]  # uncalibrated: the lexical result
    lone = PaperText("b", "Outlining growths in scans", "Nothing lexical here.")
    got = decide_hybrid(p, m.topics, [0.5, 0.1], [3.2, 0.0], m.candidates(lone), lambda: set())
    assert [a.topic_id for a in got] == ["seg"] and got[0].matched[0].startswith("semantic:0.50 z=+3.2")
    assert decide_hybrid(p, m.topics, [0.5, 0.1], [3.2, 0.0], [], lambda: {0}) == []  # vetoed topics stay out
