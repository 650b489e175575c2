"""The package layout keeps its promise: imports flow one way, from the CLI down to the store,
with no import cycle between modules (function-level imports included)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "digest"

# Lower layers never import higher ones; a layer imports its own package and anything below.
LAYERS = {
    "clock": 0, "logs": 0, "tokens": 1, "store": 1,
    "subscribers": 2, "sources": 2, "topics": 2, "plan": 2,
    "email": 3, "delivery": 4, "pipeline": 5, "check": 5, "scheduler": 6, "web": 6, "cli": 7,
}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imports(path: Path, mods: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("digest"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in mods else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("digest"))
    return {m for m in found if m in mods and m != "digest"}


def _layer(module: str) -> tuple[str, int]:
    top = module.split(".")[1]
    return top, LAYERS[top]


def test_every_module_has_a_layer_and_every_package_says_what_it_owns():
    mods = _modules()
    for name in mods:
        if name != "digest":
            assert name.split(".")[1] in LAYERS, f"{name}: add it to LAYERS"
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 40, f"{init}: the docstring says what the package owns"
        # ... and names every module in it, so the map stays true as modules are added
        for module in sorted(init.parent.glob("*.py")):
            if module.stem != "__init__":
                assert f"`{module.stem}`" in doc, f"{init}: the docstring does not name `{module.stem}`"


def test_imports_flow_down():
    mods = _modules()
    wrong = []
    for name, path in mods.items():
        if name in ("digest",) or name.startswith("digest.store.migrations"):
            continue
        pkg, rank = _layer(name)
        for target in _imports(path, mods):
            tpkg, trank = _layer(target)
            if tpkg != pkg and trank >= rank:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_import_cycles():
    mods = _modules()
    graph = {name: _imports(path, mods) for name, path in mods.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" → ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
