"""The README's quick-start command, run for real in a clean copy of the repository."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO


def _clean_copy(dest):
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for rel in files:
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to list the repository's files")
def test_quickstart_in_clean_copy(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _clean_copy(repo)
    assert not (repo / ".venv").exists() and not (repo / "var").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    first = subprocess.run(["./scripts/quickstart.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    htmls = sorted((repo / "var" / "outbox").rglob("*.html"))
    emls = sorted((repo / "var" / "outbox").rglob("*.eml"))
    assert len(htmls) == 3 and len(emls) == 3, first.stdout
    assert "var/outbox" in first.stdout
    for html in htmls:
        text = html.read_text(encoding="utf-8")
        assert "<html" in text.lower() and "unsubscribe" in text.lower()
    # the edition was delivered: a second run sends nothing new
    second = subprocess.run(["./scripts/quickstart.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert len(sorted((repo / "var" / "outbox").rglob("*.eml"))) == 3
