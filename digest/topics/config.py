"""Load and validate ``topics.yaml``: the sections of the digest and what lands in them.

Shape (every field but ``id``, ``name`` and one of ``keywords``/``description`` is optional)::

    defaults:                       # optional, applies to every topic
      min_score: 0.4                # score in [0, 1] a paper needs to be assigned
      exclude: [retracted]          # phrases that veto every topic
    topics:
      - id: medical-segmentation    # stable slug ^[a-z0-9][a-z0-9-]*$, at most 64 characters
        name: Medical image segmentation
        description: Segmenting organs, tumours ...
        keywords: [medical image segmentation, U-Net]
        exclude: [remote sensing]   # phrases that veto a match
        categories: [eess.IV]       # arXiv categories that count as (weak) evidence
        authors: [Olaf Ronneberger] # papers by these people always match
        min_score: 0.6              # overrides defaults.min_score
        use_description: true       # false: the description is only shown, never matched
        examples: [2401.01234]      # arXiv ids of stored papers that belong here (for learning)
        counter_examples: [2401.04321]  # ... and of stored papers that do not

Loading is all-or-nothing: :func:`load_topics` either returns a complete
:class:`TopicConfig` or raises :class:`TopicConfigError` listing every problem found, each
naming the file, the line, the topic and the field.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "DEFAULT_MIN_SCORE",
    "Topic",
    "TopicConfig",
    "TopicError",
    "TopicConfigError",
    "load_topics",
    "parse_topics",
]

DEFAULT_MIN_SCORE = 0.4
ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ID_MAX = 64
CATEGORY_RE = re.compile(r"^[A-Za-z][A-Za-z-]*(\.[A-Za-z][A-Za-z-]*)?$")
# Part of the version hash: bump it when the meaning of a config for matching changes, so that
# every stored paper is matched again.
SCHEMA_REVISION = "topics-v1"

TOPIC_KEYS = {
    "id", "name", "description", "keywords", "exclude", "categories", "authors", "min_score", "use_description",
    "examples", "counter_examples",
}
EXAMPLE_FIELDS = ("examples", "counter_examples")
# arXiv ids as stored (no version): 2401.01234, or the old style hep-th/9901001
ARXIV_ID_RE = re.compile(r"^(\d{4}\.\d{4,5}|[a-z-]+(\.[A-Z]{2})?/\d{7})$")
DEFAULT_KEYS = {"min_score", "exclude"}
TOP_KEYS = {"topics", "defaults"}
PHRASE_FIELDS = ("keywords", "exclude", "categories", "authors")


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    min_score: float = DEFAULT_MIN_SCORE
    use_description: bool = True
    line: int = 0  # where the topic starts in its file (for messages); not part of the version
    # Admin examples teach the learned model (digest/topics/learn.py), not the plain matcher, so
    # they are not part of the version either; example_lines: (field, id, line) for messages.
    examples: tuple[str, ...] = ()
    counter_examples: tuple[str, ...] = ()
    example_lines: tuple[tuple[str, str, int], ...] = field(default=(), compare=False)

    def normalised(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "keywords": list(self.keywords),
            "exclude": list(self.exclude),
            "categories": list(self.categories),
            "authors": list(self.authors),
            "min_score": self.min_score,
            "use_description": self.use_description,
        }


@dataclass(frozen=True)
class TopicConfig:
    topics: tuple[Topic, ...]
    path: str = ""
    by_id: dict[str, Topic] = field(init=False, compare=False, repr=False)
    version: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {t.id: t for t in self.topics})
        payload = json.dumps(
            {"schema": SCHEMA_REVISION, "topics": [t.normalised() for t in self.topics]},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        object.__setattr__(self, "version", hashlib.sha256(payload.encode("utf-8")).hexdigest())

    def __len__(self) -> int:
        return len(self.topics)

    def __iter__(self):
        return iter(self.topics)

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.topics]


@dataclass(frozen=True)
class TopicError:
    file: str
    line: int | None
    message: str
    topic: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = [f"{self.file}:{self.line}" if self.line else self.file]
        if self.topic is not None:
            parts.append(f"topic {self.topic}" if self.topic.startswith("#") else f"topic '{self.topic}'")
        if self.field is not None:
            parts.append(f"field '{self.field}'")
        parts.append(self.message)
        return ": ".join(parts)


class TopicConfigError(Exception):
    """Every problem of a topics file; ``str()`` is one line per problem."""

    def __init__(self, errors: list[TopicError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag.endswith(":null"):
        return "empty"
    return {"int": "a number", "float": "a number", "bool": "a boolean"}.get(node.tag.rsplit(":", 1)[-1], "a string")


def _collapse(text: str) -> str:
    return " ".join(text.split())


class _Parser:
    def __init__(self, file: str):
        self.file = file
        self.errors: list[TopicError] = []

    def err(self, node: Node | None, message: str, topic: str | None = None, fld: str | None = None) -> None:
        self.errors.append(TopicError(self.file, _line(node) if node is not None else None, message, topic, fld))

    def mapping(self, node: MappingNode, topic: str | None, allowed: set[str], what: str) -> dict[str, tuple[Node, Node]]:
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag.endswith(":null"):
                self.err(key_node, f"{what} keys must be plain names", topic)
                continue
            key = str(key_node.value)
            if key in out:
                self.err(key_node, f"duplicate key (first at line {_line(out[key][0])})", topic, key)
                continue
            if key not in allowed:
                self.err(key_node, f"unknown key; expected one of: {', '.join(sorted(allowed))}", topic, key)
                continue
            out[key] = (key_node, value_node)
        return out

    def text(self, node: Node, topic: str | None, fld: str, required: bool) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag.endswith(":null"):
            if required or not (isinstance(node, ScalarNode)):
                self.err(node, f"must be text, got {_kind(node)}", topic, fld)
            return None
        value = _collapse(str(node.value))
        if not value:
            if required:
                self.err(node, "is empty", topic, fld)
            return None
        return value

    def phrases(self, node: Node, topic: str | None, fld: str) -> tuple[str, ...] | None:
        if isinstance(node, ScalarNode) and node.tag.endswith(":null"):
            return ()
        if isinstance(node, ScalarNode):
            self.err(node, f"must be a list, e.g. [{node.value}]", topic, fld)
            return None
        if not isinstance(node, SequenceNode):
            self.err(node, f"must be a list of text, got {_kind(node)}", topic, fld)
            return None
        out: list[str] = []
        seen: set[str] = set()
        ok = True
        for i, item in enumerate(node.value, start=1):
            if not isinstance(item, ScalarNode):
                self.err(item, f"item {i} must be text, got {_kind(item)}", topic, fld)
                ok = False
                continue
            value = "" if item.tag.endswith(":null") else _collapse(str(item.value))
            if not value:
                self.err(item, f"item {i} is empty", topic, fld)
                ok = False
                continue
            if fld == "categories" and not CATEGORY_RE.match(value):
                self.err(item, f"item {i} '{value}' is not an arXiv category such as cs.CV or eess.IV", topic, fld)
                ok = False
                continue
            if fld != "categories" and not re.search(r"\w", value):
                self.err(item, f"item {i} '{value}' has no letters or digits", topic, fld)
                ok = False
                continue
            folded = value.casefold()
            if folded in seen:
                continue  # a repeated phrase is harmless: keep the first
            seen.add(folded)
            out.append(value)
        return tuple(out) if ok else None

    def score(self, node: Node, topic: str | None, fld: str) -> float | None:
        if isinstance(node, ScalarNode) and node.tag.rsplit(":", 1)[-1] in ("int", "float"):
            try:
                value = float(node.value)
            except ValueError:
                value = float("nan")
            if 0.0 <= value <= 1.0:
                return value
            self.err(node, f"must be between 0 and 1, got {node.value}", topic, fld)
            return None
        self.err(node, f"must be a number between 0 and 1, got {_kind(node)}", topic, fld)
        return None

    def example_ids(self, node: Node, topic: str | None, fld: str) -> list[tuple[str, int]] | None:
        """A list of arXiv ids (as text, so 2401.01230 keeps its last zero: quote them or not)."""
        if isinstance(node, ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, SequenceNode):
            self.err(node, f"must be a list of arXiv ids such as [2401.01234], got {_kind(node)}", topic, fld)
            return None
        out: list[tuple[str, int]] = []
        ok = True
        for i, item in enumerate(node.value, start=1):
            value = str(item.value).strip() if isinstance(item, ScalarNode) else ""
            value = re.sub(r"^(arxiv:)", "", value, flags=re.IGNORECASE)
            value = re.sub(r"v\d+$", "", value)
            if not ARXIV_ID_RE.match(value):
                self.err(item, f"item {i} '{value or _kind(item)}' is not an arXiv id such as 2401.01234", topic, fld)
                ok = False
                continue
            if value not in {v for v, _ in out}:
                out.append((value, _line(item)))
        return out if ok else None

    def boolean(self, node: Node, topic: str | None, fld: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag.endswith(":bool"):
            return str(node.value).lower() in ("true", "yes", "on", "y")
        self.err(node, f"must be true or false, got {_kind(node)}", topic, fld)
        return None

    # -- the document ---------------------------------------------------------------------
    def document(self, root: Node | None) -> list[Topic]:
        if root is None:
            self.errors.append(TopicError(self.file, 1, "the file is empty; expected a 'topics:' list"))
            return []
        if not isinstance(root, MappingNode):
            self.err(root, f"expected a mapping with a 'topics:' list, got {_kind(root)}")
            return []
        top = self.mapping(root, None, TOP_KEYS, "top-level")
        default_min, default_exclude = DEFAULT_MIN_SCORE, ()
        if "defaults" in top:
            _, dnode = top["defaults"]
            if isinstance(dnode, MappingNode):
                fields = self.mapping(dnode, None, DEFAULT_KEYS, "defaults")
                if "min_score" in fields:
                    value = self.score(fields["min_score"][1], None, "defaults.min_score")
                    default_min = value if value is not None else default_min
                if "exclude" in fields:
                    default_exclude = self.phrases(fields["exclude"][1], None, "defaults.exclude") or ()
            elif not (isinstance(dnode, ScalarNode) and dnode.tag.endswith(":null")):
                self.err(dnode, f"must be a mapping, got {_kind(dnode)}", None, "defaults")
        if "topics" not in top:
            self.err(root, "missing the 'topics:' list")
            return []
        key_node, tnode = top["topics"]
        if not isinstance(tnode, SequenceNode):
            self.err(tnode if not _kind(tnode) == "empty" else key_node, f"'topics' must be a list, got {_kind(tnode)}")
            return []
        if not tnode.value:
            self.err(tnode, "'topics' is empty; define at least one topic")
            return []
        topics: list[Topic] = []
        first_line: dict[str, int] = {}
        for index, node in enumerate(tnode.value, start=1):
            topic = self.topic(node, index, default_min, default_exclude, first_line)
            if topic is not None:
                topics.append(topic)
        return topics

    def topic(self, node: Node, index: int, default_min: float, default_exclude: tuple[str, ...],
              first_line: dict[str, int]) -> Topic | None:
        label = f"#{index}"
        if not isinstance(node, MappingNode):
            self.err(node, f"each topic must be a mapping with id, name, keywords..., got {_kind(node)}", label)
            return None
        before = len(self.errors)
        # Find the id first so that every later message names the topic.
        tid: str | None = None
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == "id":
                if isinstance(value_node, ScalarNode) and not value_node.tag.endswith(":null"):
                    tid = str(value_node.value).strip() or None
                break
        label = tid if tid is not None else label
        fields = self.mapping(node, label, TOPIC_KEYS, "topic")
        if "id" not in fields:
            self.err(node, "missing (a unique slug such as 'medical-imaging')", label, "id")
        else:
            id_node = fields["id"][1]
            if not isinstance(id_node, ScalarNode) or id_node.tag.endswith(":null") or id_node.tag.endswith(":bool"):
                self.err(id_node, f"must be a slug such as 'medical-imaging', got {_kind(id_node)}", label, "id")
            elif not tid:
                self.err(id_node, "is empty", label, "id")
            elif len(tid) > ID_MAX:
                self.err(id_node, f"is longer than {ID_MAX} characters", label, "id")
            elif not ID_RE.match(tid):
                self.err(id_node, "must be lowercase letters, digits and '-', starting with a letter or digit"
                         f" (e.g. '{_slug(tid)}')", label, "id")
            elif tid in first_line:
                self.err(id_node, f"duplicate id (first used at line {first_line[tid]})", label, "id")
            else:
                first_line[tid] = _line(node)
        name = None
        if "name" not in fields:
            self.err(node, "missing (the section heading shown in emails)", label, "name")
        else:
            name = self.text(fields["name"][1], label, "name", required=True)
        description = ""
        if "description" in fields:
            description = self.text(fields["description"][1], label, "description", required=False) or ""
        values: dict[str, tuple[str, ...]] = {}
        broken: set[str] = set()
        for fld in PHRASE_FIELDS:
            if fld in fields:
                result = self.phrases(fields[fld][1], label, fld)
                if result is None:
                    broken.add(fld)
                values[fld] = result or ()
        if not values.get("keywords") and not description and "keywords" not in broken:
            target = fields["keywords"][1] if "keywords" in fields else node
            self.err(target, "no keywords and no description: nothing to match papers with", label, "keywords")
        min_score = default_min
        if "min_score" in fields:
            value = self.score(fields["min_score"][1], label, "min_score")
            min_score = value if value is not None else min_score
        use_description = True
        if "use_description" in fields:
            value = self.boolean(fields["use_description"][1], label, "use_description")
            use_description = value if value is not None else True
        examples: dict[str, list[tuple[str, int]]] = {}
        for fld in EXAMPLE_FIELDS:
            if fld in fields:
                examples[fld] = self.example_ids(fields[fld][1], label, fld) or []
        both = {v for v, _ in examples.get("examples", ())} & {v for v, _ in examples.get("counter_examples", ())}
        for value, line in examples.get("counter_examples", ()):
            if value in both:
                self.errors.append(TopicError(self.file, line, f"'{value}' is also in examples", label,
                                              "counter_examples"))
        if len(self.errors) != before or tid is None or name is None:
            return None
        exclude = list(values.get("exclude", ()))
        exclude += [p for p in default_exclude if p.casefold() not in {e.casefold() for e in exclude}]
        return Topic(
            id=tid,
            name=name,
            description=description,
            keywords=values.get("keywords", ()),
            exclude=tuple(exclude),
            categories=values.get("categories", ()),
            authors=values.get("authors", ()),
            min_score=min_score,
            use_description=use_description,
            line=_line(node),
            examples=tuple(v for v, _ in examples.get("examples", ())),
            counter_examples=tuple(v for v, _ in examples.get("counter_examples", ())),
            example_lines=tuple((fld, v, line) for fld in EXAMPLE_FIELDS for v, line in examples.get(fld, ())),
        )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:ID_MAX] or "my-topic"


def parse_topics(text: str, file: str = "topics.yaml") -> TopicConfig:
    """Validate topics given as YAML text; ``file`` is only used in messages."""
    parser = _Parser(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(filter(None, [exc.context, exc.problem]))
        raise TopicConfigError([TopicError(file, line, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise TopicConfigError([TopicError(file, None, f"YAML error: {exc}")]) from None
    topics = parser.document(root)
    if parser.errors:
        raise TopicConfigError(sorted(parser.errors, key=lambda e: e.line or 0))
    return TopicConfig(topics=tuple(topics), path=file)


def load_topics(path: str | Path) -> TopicConfig:
    """Read and validate a topics file. Raises :class:`TopicConfigError` (never half-applies)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TopicConfigError([TopicError(str(path), None, "file not found")]) from None
    except OSError as exc:
        raise TopicConfigError([TopicError(str(path), None, f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TopicConfigError([TopicError(str(path), line, "not valid UTF-8 text")]) from None
    return parse_topics(text, str(path))
