"""topics.yaml loading and validation."""
from pathlib import Path

import pytest

from digest.topics.config import DEFAULT_MIN_SCORE, TopicConfigError, load_topics, parse_topics

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
defaults:
  min_score: 0.3
  exclude: [retracted]
topics:
  - id: medical-segmentation
    name: Medical image segmentation
    description: Segmenting organs and tumours.
    keywords: [medical image segmentation, U-Net]
    exclude: [remote sensing]
    categories: [eess.IV, cs.CV]
    authors: [Olaf Ronneberger]
  - id: cardio
    name: Cardiology
    keywords: [ECG]
    min_score: 0.7
"""


def write(tmp_path, text, name="topics.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(TopicConfigError) as info:
        load_topics(path)
    return path, info.value


def test_good_config_loads(tmp_path):
    config = load_topics(write(tmp_path, GOOD))
    assert [t.id for t in config.topics] == ["medical-segmentation", "cardio"]
    seg = config.by_id["medical-segmentation"]
    assert seg.name == "Medical image segmentation"
    assert seg.keywords == ("medical image segmentation", "U-Net")
    assert seg.exclude == ("remote sensing", "retracted")
    assert seg.categories == ("eess.IV", "cs.CV")
    assert seg.authors == ("Olaf Ronneberger",)
    assert seg.min_score == 0.3
    assert config.by_id["cardio"].min_score == 0.7
    assert len(config.version) == 64


def test_version_is_stable_and_tracks_content(tmp_path):
    a = parse_topics(GOOD)
    b = parse_topics(GOOD.replace("topics:", "# a comment\ntopics:").replace("[ECG]", "[ ECG ]"))
    assert a.version == b.version  # comments and spacing do not matter
    c = parse_topics(GOOD.replace("[ECG]", "[ECG, EKG]"))
    assert c.version != a.version


def test_default_min_score():
    config = parse_topics("topics:\n  - id: a\n    name: A\n    keywords: [x]\n")
    assert config.topics[0].min_score == DEFAULT_MIN_SCORE


def test_sample_config_is_valid():
    config = load_topics(ROOT / "config" / "topics.yaml")
    assert 8 <= len(config.topics) <= 12
    assert any(t.exclude for t in config.topics) and any(t.authors for t in config.topics)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("topics:\n  - id: a\n    name: A\n    keywords: [x]\n    colour: red\n",
         "topics.yaml:5: topic 'a': field 'colour': unknown key"),
        ("topics:\n  - id: a\n    name: A\n    keywords: [x]\n  - id: a\n    name: B\n    keywords: [y]\n",
         "topics.yaml:5: topic 'a': field 'id': duplicate id (first used at line 2)"),
        ("topics:\n  - id: Bad_Id\n    name: A\n    keywords: [x]\n",
         "topics.yaml:2: topic 'Bad_Id': field 'id': must be lowercase"),
        ("topics:\n  - id: " + "a" * 65 + "\n    name: A\n    keywords: [x]\n",
         "field 'id': is longer than 64 characters"),
        ("topics:\n  - name: A\n    keywords: [x]\n", "topics.yaml:2: topic #1: field 'id': missing"),
        ("topics:\n  - id: a\n    keywords: [x]\n", "topics.yaml:2: topic 'a': field 'name': missing"),
        ("topics:\n  - id: a\n    name: A\n", "topics.yaml:2: topic 'a': field 'keywords': no keywords and no description"),
        ("topics:\n  - id: a\n    name: A\n    keywords: []\n", "topics.yaml:4: topic 'a': field 'keywords': no keywords"),
        ("topics:\n  - id: a\n    name: A\n    keywords:\n      - x\n      - ''\n",
         "topics.yaml:6: topic 'a': field 'keywords': item 2 is empty"),
        ("topics:\n  - id: a\n    name: A\n    keywords: medical\n",
         "topics.yaml:4: topic 'a': field 'keywords': must be a list"),
        ("topics:\n  - id: a\n    name: A\n    keywords: [[x]]\n",
         "topics.yaml:4: topic 'a': field 'keywords': item 1 must be text, got a list"),
        ("topics:\n  - id: a\n    name: [A]\n    keywords: [x]\n", "topics.yaml:3: topic 'a': field 'name': must be text"),
        ("topics:\n  - id: a\n    name: A\n    keywords: [x]\n    min_score: high\n",
         "topics.yaml:5: topic 'a': field 'min_score': must be a number"),
        ("topics:\n  - id: a\n    name: A\n    keywords: [x]\n    min_score: 1.5\n", "must be between 0 and 1"),
        ("topics:\n  - id: a\n    name: A\n    keywords: [x]\n    categories: [computer vision]\n",
         "field 'categories': item 1 'computer vision' is not an arXiv category"),
        ("topics:\n  - id: a\n    name: A\n    keywords: [x]\n    exclude: ['  ']\n",
         "field 'exclude': item 1 is empty"),
        ("topics:\n  - just a string\n", "topics.yaml:2: topic #1: each topic must be a mapping"),
        ("topics: {}\n", "'topics' must be a list"),
        ("topics: []\n", "'topics' is empty"),
        ("something: else\n", "unknown key"),
        ("", "the file is empty"),
        ("topics:\n  - id: a\n    name: [A\n", "YAML syntax error"),
        ("topics:\n  - id: a\n    name: A\n    name: B\n    keywords: [x]\n",
         "topics.yaml:4: topic 'a': field 'name': duplicate key (first at line 3)"),
        ("defaults:\n  min_score: 3\ntopics:\n  - id: a\n    name: A\n    keywords: [x]\n",
         "topics.yaml:2: field 'defaults.min_score': must be between 0 and 1"),
    ],
)
def test_each_error_kind(tmp_path, text, expected):
    path, exc = errors_of(tmp_path, text)
    message = str(exc)
    assert expected.replace("topics.yaml", str(path)) in message or expected in message, message
    assert all(str(e).startswith(str(path)) for e in exc.errors)


def test_all_errors_are_reported_with_file_line_topic_field(tmp_path):
    text = """\
topics:
  - id: pathology
    name: Computational pathology
    keywords: [pathology, '', histology]
    colour: red
  - id: pathology
    name: Again
    keywords: [x]
  - id: ok-topic
    name: Fine
    keywords: [fine]
  - id: no-name
    keywords: [y]
"""
    path, exc = errors_of(tmp_path, text)
    lines = str(exc).splitlines()
    assert len(exc.errors) == 4 == len(lines)
    assert lines[0] == f"{path}:4: topic 'pathology': field 'keywords': item 2 is empty"
    assert lines[1].startswith(f"{path}:5: topic 'pathology': field 'colour': unknown key")
    assert lines[2] == f"{path}:6: topic 'pathology': field 'id': duplicate id (first used at line 2)"
    assert lines[3].startswith(f"{path}:12: topic 'no-name': field 'name': missing")
    assert [e.line for e in exc.errors] == [4, 5, 6, 12]
    assert exc.errors[0].topic == "pathology" and exc.errors[0].field == "keywords"


def test_invalid_config_never_half_applies(tmp_path):
    path = write(tmp_path, GOOD)
    good = load_topics(path)
    path.write_text(GOOD + "  - id: broken\n    name: Broken\n    keywords: ['']\n", encoding="utf-8")
    with pytest.raises(TopicConfigError):
        load_topics(path)
    # the caller keeps the last good config; nothing partial came back
    assert [t.id for t in good.topics] == ["medical-segmentation", "cardio"]


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(TopicConfigError, match="file not found"):
        load_topics(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"topics:\n  - id: \xff\xfe\n")
    with pytest.raises(TopicConfigError, match=r"bad.yaml:2: not valid UTF-8"):
        load_topics(bad)
