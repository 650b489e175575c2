"""The list of named sources admins configure in config/sources.yaml."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

KINDS = ("arxiv", "hf-daily", "auto")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SourcesConfigError(Exception):
    pass


@dataclass
class SourceSpec:
    name: str
    kind: str
    url: str
    enabled: bool = True
    base: Path | None = None  # folder that relative paths resolve against

    def location(self, today: date) -> str:
        # {date} lets a source follow HF's per-day URL (/api/daily_papers?date=YYYY-MM-DD)
        return self.url.replace("{date}", today.isoformat())


def load_sources(path: Path) -> list[SourceSpec]:
    if not path.is_file():
        return []
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SourcesConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        raise SourcesConfigError(f"{path}: expected a top-level 'sources:' list")
    lines = []
    if root is not None:
        for key, value in root.value:
            if key.value == "sources":
                lines = [item.start_mark.line + 1 for item in value.value]
    errors, specs, seen = [], [], set()
    for i, item in enumerate(data["sources"]):
        where = f"{path}:{lines[i] if i < len(lines) else '?'}"
        if not isinstance(item, dict):
            errors.append(f"{where}: source {i + 1} must be a mapping with name, kind, url")
            continue
        unknown = set(item) - {"name", "kind", "url", "enabled"}
        name = item.get("name")
        label = f"source {name!r}" if name else f"source {i + 1}"
        if unknown:
            errors.append(f"{where}: {label}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            errors.append(f"{where}: {label}: field 'name' must be a short slug (letters, digits, . _ -)")
            continue
        if name in seen:
            errors.append(f"{where}: {label}: field 'name' is a duplicate")
        seen.add(name)
        kind = item.get("kind", "auto")
        if kind not in KINDS:
            errors.append(f"{where}: {label}: field 'kind' must be one of {', '.join(KINDS)}, not {kind!r}")
        url = item.get("url")
        if not isinstance(url, str) or not url.strip():
            errors.append(f"{where}: {label}: field 'url' is missing or empty")
            continue
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            errors.append(f"{where}: {label}: field 'enabled' must be true or false")
        specs.append(SourceSpec(name=name, kind=kind, url=url.strip(), enabled=bool(enabled), base=path.parent))
    if errors:
        raise SourcesConfigError("\n".join(errors))
    return specs
