"""`digest topics check|list|preview` and `digest classify`."""
from __future__ import annotations

import json
import sys
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from digest import clock
from digest.topics.config import TopicConfig, TopicConfigError, load_topics

topics_app = typer.Typer(help="Check, list and preview the topics admins define in topics.yaml.", no_args_is_help=True)

FILE_HELP = "Topics file (default: <config_dir>/topics.yaml from the settings)."


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _topics_path(file: Optional[Path]) -> Path:
    if file is not None:
        return file
    from digest.store.settings import get_settings

    try:
        return get_settings().topics_file
    except Exception as exc:  # a broken settings file is a user mistake too
        _fail(f"error: cannot read settings: {exc}")
        raise  # unreachable


def _load(file: Optional[Path]) -> TopicConfig:
    path = _topics_path(file)
    try:
        return load_topics(path)
    except TopicConfigError as exc:
        for error in exc.errors:
            typer.echo(str(error), err=True)
        n = len(exc.errors)
        _fail(f"{n} error{'s' if n != 1 else ''} in {path}")
        raise  # unreachable


@topics_app.command("check")
def check(file: Optional[Path] = typer.Option(None, "--file", "-f", help=FILE_HELP)) -> None:
    """Validate a topics file and print every problem with its file, line, topic and field.

    Exit code 0 when valid ("OK: N topics"), 2 otherwise.

    Example: digest topics check --file config/topics.yaml
    """
    config = _load(file)
    if any(t.example_lines for t in config.topics):  # examples must name stored papers
        from digest.store.db import session_scope
        from digest.topics.learn_store import missing_examples

        try:
            with session_scope() as session:
                errors = missing_examples(session, config)
        except Exception as exc:
            _fail(f"error: cannot check examples against the database: {exc}")
        for error in errors:
            typer.echo(str(error), err=True)
        if errors:
            _fail(f"{len(errors)} error{'s' if len(errors) != 1 else ''} in {config.path}")
    typer.echo(f"OK: {len(config.topics)} topics")


@topics_app.command("list")
def list_topics(file: Optional[Path] = typer.Option(None, "--file", "-f", help=FILE_HELP)) -> None:
    """Show the topics of a topics file as a table (id, name, keywords, categories).

    Example: digest topics list --file config/topics.yaml
    """
    from digest.cli.output import console
    from rich.table import Table

    config = _load(file)
    table = Table(title=f"{len(config.topics)} topics (version {config.version[:12]})")
    table.add_column("id", style="bold")
    table.add_column("name")
    table.add_column("keywords", justify="right")
    table.add_column("categories")
    table.add_column("min score", justify="right")
    for topic in config.topics:
        table.add_row(topic.id, topic.name, str(len(topic.keywords)), ", ".join(topic.categories) or "-",
                      f"{topic.min_score:g}")
    console.print(table)


@topics_app.command("preview")
def preview(
    topic: str = typer.Argument(..., help="Topic id, as in topics.yaml."),
    days: int = typer.Option(7, "--days", min=1, help="Look at papers first seen within this many days."),
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most this many papers."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help=FILE_HELP),
) -> None:
    """Show which stored papers would land in a topic's section, with score and why.

    The matcher runs on the stored papers directly, so an edited topics file can be previewed
    before it is applied.

    Example: digest topics preview medical-segmentation --days 3 --limit 10
    """
    from digest.cli.output import console
    from rich.table import Table
    from sqlalchemy import select

    from digest.store.db import session_scope
    from digest.topics.match import Matcher
    from digest.store.models import Paper

    config = _load(file)
    if topic not in config.by_id:
        _fail(f"error: unknown topic '{topic}'; known: {', '.join(config.ids)}")
    matcher = Matcher(config)
    since = clock.now() - timedelta(days=days)
    rows = []
    try:
        with session_scope() as session:
            for paper in session.scalars(select(Paper).where(Paper.first_seen_at >= since)):
                for a in matcher.match(paper):
                    if a.topic_id == topic:
                        rows.append((a.score, paper.id, paper.title, a.matched))
    except Exception as exc:
        _fail(f"error: cannot read the database: {exc}")
    rows.sort(key=lambda r: (-r[0], r[1]))
    table = Table(title=f"{config.by_id[topic].name}: {len(rows)} papers in the last {days} days")
    table.add_column("score", justify="right")
    table.add_column("paper")
    table.add_column("title")
    table.add_column("why")
    for score, pid, title, matched in rows[:limit]:
        table.add_row(f"{score:.2f}", pid, title, ", ".join(matched))
    console.print(table)
    if len(rows) > limit:
        typer.echo(f"... and {len(rows) - limit} more")


@topics_app.command("learn")
def learn_cmd(
    force: bool = typer.Option(False, "--force", help="Train a new version even if no vote or example changed."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help=FILE_HELP),
) -> None:
    """Retrain topic relevance from readers' votes and the admin's examples, then re-score the
    papers not yet sent. The scheduler does the same every `learn_every_hours`.

    Topics with fewer than 3 votes and examples keep the plain matcher.

    Example: digest topics learn
    """
    from digest.pipeline import run_learn
    from digest.store.settings import get_settings

    config = _load(file)
    try:
        result = run_learn(get_settings(), config, force=force)
    except Exception as exc:
        _fail(f"error: cannot learn: {exc}")
    state = "trained" if result.trained else "unchanged (same votes and examples)"
    topics = ", ".join(result.topics) or "none (too few votes: every topic keeps the plain matcher)"
    typer.echo(f"model version {result.version}, {state}: {result.labels} labels; learned topics: {topics}")


@topics_app.command("report")
def report_cmd(
    days: int = typer.Option(30, "--days", min=1, help="Look at the last N days of digests and votes."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help=FILE_HELP),
) -> None:
    """Topic health: per topic, papers shown, votes, precision from votes, the most disliked
    papers with what matched them, words that separate liked from disliked papers (suggested
    keywords and excludes), the topics that catch the same papers and the topics readers moved
    papers to ("belongs in <other topic>").

    Example: digest topics report --days 14
    """
    from rich.console import Console
    from rich.table import Table

    from digest.store.db import session_scope
    from digest.topics.report import moved_line, topic_health

    config = _load(file)
    try:
        with session_scope() as session:
            health = topic_health(session, config, days)
    except Exception as exc:
        _fail(f"error: cannot read the database: {exc}")
    table = Table(title=f"Topic health, last {days} days")
    for col in ("topic", "shown", "votes", "precision", "most disliked (what matched)", "suggested keywords",
                "suggested excludes", "shares papers with", "readers moved"):
        table.add_column(col, justify="right" if col in ("shown", "votes", "precision") else "left")
    for h in health:
        table.add_row(
            (h.topic_id + " (!)") if h.unhealthy else h.topic_id, str(h.shown), str(h.votes),
            "-" if h.precision is None else f"{h.precision:.2f}",
            "\n".join(f"{pid} x{n}: {title[:50]} ({', '.join(m[:3])})" for pid, title, n, m in h.disliked[:3]) or "-",
            ", ".join(h.suggest_keywords) or "-", ", ".join(h.suggest_excludes) or "-",
            ", ".join(f"{t} ({n})" for t, n in h.overlaps) or "-",
            "\n".join(moved_line(*m) for m in h.moved) or "-")
    Console(width=200).print(table)


class OutputFormat(str, Enum):
    json = "json"
    table = "table"


class MatcherKind(str, Enum):
    lexical = "lexical"
    semantic = "semantic"


def classify(
    topics: Optional[Path] = typer.Option(None, "--topics", "-t", help=FILE_HELP),
    papers: Path = typer.Option(..., "--papers", "-p", help="JSON-lines file: one {id, title, abstract, authors?, categories?} per line ('-' for stdin)."),
    format: OutputFormat = typer.Option(OutputFormat.json, "--format", help="json (one line per paper) or table."),
    matcher_kind: MatcherKind = typer.Option(
        MatcherKind.lexical, "--matcher",
        help="lexical (words) or semantic (words + sentence embeddings; needs the 'semantic' extra)."),
    feedback: Optional[Path] = typer.Option(
        None, "--feedback",
        help='JSON-lines votes to learn from first: {"paper": {id, title, abstract, ...}, "topic": "<id>", "relevant": true|false}.'),
) -> None:
    """Match papers from a JSON-lines file against a topics file (no database).

    Prints one JSON line per paper: {"id": ..., "topics": [{"id", "score", "matched"}]},
    listing only the topics the paper is assigned to. Bad input lines are reported on stderr
    with their line number and skipped; the exit code is then 1.

    With --feedback, a relevance model is first learned from those votes (as from stored votes
    and examples, see `digest topics learn`); the output format stays the same.

    Example: digest classify --topics config/topics.yaml --papers new.jsonl --format table
    """
    from digest.topics.classify import LineError, iter_papers
    from digest.topics.matchers import make_matcher

    config = _load(topics)
    try:
        matcher = make_matcher(config, matcher_kind.value)
    except Exception as exc:  # the optional semantic packages are missing or broken
        _fail(f"error: {exc}")
    feedback_errors: list[LineError] = []
    if feedback is not None:
        from digest.topics.classify import read_feedback
        from digest.topics.learn import LearningMatcher, train

        try:
            labels, feedback_errors = read_feedback(feedback, config.ids)
        except ValueError as exc:
            _fail(f"error: {exc}")
        model = train(matcher, labels)
        if model is not None:
            matcher = LearningMatcher(matcher, model, {str(lb.paper.id): lb.paper for lb in labels})

    def run(items):
        items = list(items)
        return list(zip(items, matcher.match_many(items)))

    errors: list[LineError] = []
    if str(papers) == "-":
        results = run(iter_papers(sys.stdin, "<stdin>", errors))
    else:
        try:
            with open(papers, encoding="utf-8-sig") as fh:
                results = run(iter_papers(fh, str(papers), errors))
        except FileNotFoundError:
            _fail(f"error: {papers}: file not found")
        except UnicodeDecodeError:
            _fail(f"error: {papers}: not UTF-8 text")
        except OSError as exc:
            _fail(f"error: {papers}: {exc.strerror or exc}")
    if format == OutputFormat.json:
        for paper, assigned in results:
            typer.echo(json.dumps({"id": paper.id, "topics": [a.as_dict() for a in assigned]}, ensure_ascii=False))
    else:
        from digest.cli.output import console
        from rich.table import Table

        table = Table(title=f"{len(results)} papers, {len(config.topics)} topics")
        table.add_column("paper")
        table.add_column("title")
        table.add_column("topics (score: why)")
        for paper, assigned in results:
            cell = "\n".join(f"{a.topic_id} {a.score:.2f}: {', '.join(a.matched[:4])}" for a in assigned) or "-"
            table.add_row(paper.id, paper.title, cell)
        console.print(table)
    errors = feedback_errors + errors
    for error in errors:
        typer.echo(str(error), err=True)
    if errors:
        _fail(f"{len(errors)} bad line{'s' if len(errors) != 1 else ''} skipped", code=1)
