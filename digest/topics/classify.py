"""Classify papers from a JSON-lines file against a topics file, without a database.

Each line is one JSON object: ``{"id": "2401.00001", "title": "...", "abstract": "...",
"authors": ["..."], "categories": ["cs.CV"]}`` (``authors`` and ``categories`` optional).
Bad lines are skipped and reported with their line number; the caller decides the exit code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

from digest.topics.match import Assignment, Matcher, PaperText

__all__ = ["LineError", "read_papers", "iter_papers", "classify_papers"]


@dataclass(frozen=True)
class LineError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _string_list(value, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()] if what == "authors" else value.split()
    if not isinstance(value, list):
        raise ValueError(f"'{what}' must be a list of strings")
    out = []
    for item in value:
        if isinstance(item, dict) and what == "authors" and isinstance(item.get("name"), str):
            item = item["name"]
        if not isinstance(item, str):
            raise ValueError(f"'{what}' must be a list of strings")
        out.append(item)
    return out


def parse_paper(obj) -> PaperText:
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    pid = obj.get("id")
    if isinstance(pid, (int, float)) and not isinstance(pid, bool):
        pid = str(pid)
    if not isinstance(pid, str) or not pid.strip():
        raise ValueError("missing 'id' (a non-empty string)")
    title = obj.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"paper '{pid}': missing 'title' (a non-empty string)")
    abstract = obj.get("abstract", obj.get("summary", ""))
    if abstract is None:
        abstract = ""
    if not isinstance(abstract, str):
        raise ValueError(f"paper '{pid}': 'abstract' must be a string")
    try:
        authors = _string_list(obj.get("authors"), "authors")
        categories = _string_list(obj.get("categories"), "categories")
    except ValueError as exc:
        raise ValueError(f"paper '{pid}': {exc}") from None
    return PaperText(id=pid.strip(), title=title, abstract=abstract, authors=authors, categories=categories)


def iter_papers(stream: TextIO, name: str, errors: list[LineError]) -> Iterator[PaperText]:
    """Papers of a JSON-lines stream; bad lines are appended to ``errors`` and skipped."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(LineError(name, number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        try:
            yield parse_paper(obj)
        except ValueError as exc:
            errors.append(LineError(name, number, str(exc)))


def read_papers(path: str | Path) -> tuple[list[PaperText], list[LineError]]:
    """All good papers of a JSON-lines file, and the errors of the bad lines."""
    errors: list[LineError] = []
    with open(path, encoding="utf-8-sig", errors="strict") as fh:
        try:
            papers = list(iter_papers(fh, str(path), errors))
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text") from None
    return papers, errors


def read_feedback(path: str | Path, topic_ids: list[str]) -> tuple[list, list[LineError]]:
    """Labels from a JSON-lines feedback file: ``{"paper": {...}, "topic": "<id>", "relevant": true}``
    per line (``other_topic`` optional); bad lines are returned as errors and skipped."""
    from digest.topics.learn import Label

    labels, errors = [], []
    known = set(topic_ids)
    try:
        fh = open(path, encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    with fh:
        try:
            lines = list(fh)
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("expected a JSON object")
            paper = parse_paper(obj.get("paper"))
            topic = obj.get("topic")
            if topic not in known:
                raise ValueError(f"unknown topic {topic!r}; known: {', '.join(topic_ids)}")
            relevant = obj.get("relevant")
            if not isinstance(relevant, bool):
                raise ValueError("'relevant' must be true or false")
            other = obj.get("other_topic")
            if other is not None and other not in known:
                raise ValueError(f"unknown other_topic {other!r}")
        except json.JSONDecodeError as exc:
            errors.append(LineError(str(path), number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except ValueError as exc:
            errors.append(LineError(str(path), number, str(exc)))
            continue
        labels.append(Label(paper, topic, relevant, "vote"))
        if other:
            labels.append(Label(paper, other, True, "vote"))
    return labels, errors


def classify_papers(matcher: Matcher, papers) -> Iterator[tuple[PaperText, list[Assignment]]]:
    for paper in papers:
        yield paper, matcher.match(paper)
