"""`digest classify` and `digest topics ...` through a Typer app (the real root app when present)."""
import json

import pytest
import typer
from typer.testing import CliRunner

from digest.cli.topics import classify, topics_app

TOPICS = """\
topics:
  - id: seg
    name: Medical image segmentation
    keywords: [medical image segmentation, U-Net]
  - id: cardio
    name: Cardiology
    keywords: [ECG, electrocardiogram]
"""


def make_app():
    try:
        from digest.cli.main import app  # the lead's root app, once it exists

        return app
    except Exception:
        app = typer.Typer()
        app.add_typer(topics_app, name="topics")
        app.command("classify")(classify)
        return app


@pytest.fixture()
def files(tmp_path):
    topics = tmp_path / "topics.yaml"
    topics.write_text(TOPICS, encoding="utf-8")
    papers = tmp_path / "papers.jsonl"
    papers.write_text(
        "\n".join(json.dumps(p) for p in [
            {"id": "a", "title": "A U-Net for medical image segmentation", "abstract": "We segment livers."},
            {"id": "b", "title": "Twelve-lead ECGs classified", "abstract": "ECG data.", "authors": ["X Y"],
             "categories": ["eess.SP"]},
            {"id": "c", "title": "October weather", "abstract": "Nothing here."},
        ]) + "\n",
        encoding="utf-8",
    )
    return topics, papers


runner = CliRunner()


def test_classify_json_lines(files):
    topics, papers = files
    result = runner.invoke(make_app(), ["classify", "--topics", str(topics), "--papers", str(papers)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "c"]
    assert [t["id"] for t in lines[0]["topics"]] == ["seg"]
    assert [t["id"] for t in lines[1]["topics"]] == ["cardio"]
    assert lines[2]["topics"] == []
    topic = lines[0]["topics"][0]
    assert set(topic) == {"id", "score", "matched"}
    assert 0 < topic["score"] <= 1 and "U-Net" in topic["matched"]


def test_classify_table(files):
    topics, papers = files
    result = runner.invoke(make_app(), ["classify", "--topics", str(topics), "--papers", str(papers), "--format", "table"])
    assert result.exit_code == 0, result.output
    assert "seg" in result.stdout and "cardio" in result.stdout


def test_classify_bad_lines_are_reported_and_skipped(files, tmp_path):
    topics, _ = files
    papers = tmp_path / "bad.jsonl"
    papers.write_text(
        '{"id": "a", "title": "A U-Net for medical image segmentation"}\n'
        "{not json\n"
        '{"title": "no id"}\n'
        "\n"
        '{"id": "d", "title": "ECG", "authors": 5}\n'
        '{"id": "e", "title": "Plain"}\n',
        encoding="utf-8",
    )
    result = runner.invoke(make_app(), ["classify", "--topics", str(topics), "--papers", str(papers)])
    assert result.exit_code == 1
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["a", "e"]
    err = result.stderr
    assert f"{papers}:2: not valid JSON" in err
    assert f"{papers}:3: missing 'id'" in err
    assert f"{papers}:5: paper 'd': 'authors' must be a list" in err
    assert "3 bad lines skipped" in err
    assert "Traceback" not in result.output


def test_classify_user_mistakes_are_one_line(files, tmp_path):
    topics, papers = files
    result = runner.invoke(make_app(), ["classify", "--topics", str(topics), "--papers", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "file not found" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics:\n  - id: x\n", encoding="utf-8")
    result = runner.invoke(make_app(), ["classify", "--topics", str(bad), "--papers", str(papers)])
    assert result.exit_code == 2
    assert f"{bad}:2: topic 'x': field 'name': missing" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_topics_check_and_list(files, tmp_path):
    topics, _ = files
    app = make_app()
    result = runner.invoke(app, ["topics", "check", "--file", str(topics)])
    assert result.exit_code == 0 and result.stdout.strip() == "OK: 2 topics"
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics:\n  - id: a\n    name: A\n    keywords: ['']\n    extra: 1\n", encoding="utf-8")
    result = runner.invoke(app, ["topics", "check", "--file", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:4: topic 'a': field 'keywords': item 1 is empty" in result.stderr
    assert f"{bad}:5: topic 'a': field 'extra': unknown key" in result.stderr
    result = runner.invoke(app, ["topics", "list", "--file", str(topics)])
    assert result.exit_code == 0 and "Cardiology" in result.stdout


def test_topics_preview(files, tmp_path, monkeypatch, db_url):
    from datetime import datetime, timezone

    from digest.store.db import session_scope
    from digest.store.models import Paper
    from digest.store.settings import Settings, reset_settings_cache

    topics, _ = files
    monkeypatch.setenv("DIGEST_DATABASE_URL", db_url)
    reset_settings_cache()
    try:
        with session_scope(Settings(database_url=db_url)) as s:
            s.add(Paper(id="p1", title="A U-Net for medical image segmentation", abstract="", authors=[],
                        categories=[], first_seen_at=datetime.now(timezone.utc)))
            s.add(Paper(id="p2", title="Unrelated", abstract="", authors=[], categories=[],
                        first_seen_at=datetime.now(timezone.utc)))
        app = make_app()
        result = runner.invoke(app, ["topics", "preview", "seg", "--file", str(topics)])
        assert result.exit_code == 0, result.output
        assert "p1" in result.stdout and "p2" not in result.stdout and "U-Net" in result.stdout
        result = runner.invoke(app, ["topics", "preview", "nope", "--file", str(topics)])
        assert result.exit_code == 2 and "unknown topic 'nope'" in result.stderr
    finally:
        reset_settings_cache()


def test_every_command_has_help_with_example():
    app = make_app()
    for args in (["classify"], ["topics", "check"], ["topics", "list"], ["topics", "preview"]):
        result = runner.invoke(app, args + ["--help"])
        assert result.exit_code == 0 and "Example" in result.stdout, args
