"""The CLI as an admin uses it: subscribers, preview, ingest, status, and clear errors."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def digest(*args, check=None):
    out = subprocess.run([sys.executable, "-m", "digest.cli", *args], capture_output=True, text=True,
                         env=os.environ.copy(), timeout=120)
    if check is not None:
        assert out.returncode == check, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_subscribers_lifecycle(settings, tmp_path):
    digest("subscribers", "add", "Ada@Example.ORG", "--topics", "vision-language,medical-segmentation",
           "--name", "Ada", "--tz", "Europe/Berlin", check=0)
    listed = digest("subscribers", "list", check=0).stdout
    assert "ada@example.org" in listed and "Europe/Berlin" in listed
    digest("subscribers", "set-topics", "ada@example.org", "--topics", "efficient-attention", check=0)
    csv = tmp_path / "people.csv"
    csv.write_text("email,name,topics,timezone\n"
                   "bob@example.org,Bob,vision-language;efficient-attention,UTC\n"
                   "not-an-email,X,vision-language,UTC\n"
                   "carol@example.org,Carol,no-such-topic,UTC\n"
                   "dan@example.org,Dan,vision-language,Mars/Olympus\n"
                   "erin@example.org,Erin,medical-segmentation,America/New_York\n", encoding="utf-8")
    out = digest("subscribers", "import", str(csv), check=1)
    assert "2 added" in out.stdout
    assert f"{csv}:3:" in out.stderr and "not-an-email" in out.stderr
    assert f"{csv}:4:" in out.stderr and "no-such-topic" in out.stderr
    assert f"{csv}:5:" in out.stderr and "Mars/Olympus" in out.stderr
    exported = digest("subscribers", "export", check=0).stdout.splitlines()
    assert exported[0].startswith("email,name,topics,timezone")
    assert any(line.startswith("bob@example.org,Bob,vision-language;efficient-attention,UTC") for line in exported)
    digest("subscribers", "remove", "bob@example.org", check=0)
    assert "unsubscribed" in digest("subscribers", "list", "--status", "unsubscribed", check=0).stdout


@pytest.mark.parametrize("args, message", [
    (["subscribers", "add", "nobody", "--topics", "vision-language"], "invalid email"),
    (["subscribers", "add", "x@example.org", "--topics", "bogus"], "unknown topic"),
    (["subscribers", "add", "x@example.org", "--topics", "vision-language", "--tz", "Nowhere/City"], "unknown timezone"),
    (["subscribers", "set-topics", "ghost@example.org", "--topics", "vision-language"], "no subscriber"),
    (["send-now", "--no-ingest", "--edition", "yesterday"], "--edition"),
    (["history", "--subscriber", "ghost@example.org"], "no subscriber"),
    (["ingest", "--kind", "pdf", "--from", "x"], "--kind"),
])
def test_user_mistakes_are_one_clear_line(settings, args, message):
    out = digest(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert len([line for line in out.stderr.splitlines() if line.strip()]) <= 2


def test_ingest_preview_send_history_stats(settings, tmp_path):
    feed = REPO / "samples" / "arxiv-cs.CV+eess.IV-rss-day1.xml"
    out = digest("ingest", "--from", str(feed), check=0)
    assert "ingest" in out.stdout and "new" in out.stdout
    # all sources failing: non-zero exit, one line per source
    bad = digest("ingest", "--from", str(tmp_path / "missing.xml"))
    assert bad.returncode == 1 and "no such file" in bad.stdout + bad.stderr
    digest("subscribers", "add", "ada@example.org", "--topics", "medical-segmentation,vision-language", check=0)
    html = tmp_path / "preview.html"
    out = digest("preview", "--subscriber", "ada@example.org", "--out", str(html), check=0)
    assert html.exists() and "subject:" in out.stdout
    assert "<html" in html.read_text(encoding="utf-8").lower()
    assert digest("send-now", "--no-ingest", "--dry-run", check=0).stdout.count("[dry-run]") == 1
    sent = digest("send-now", "--no-ingest", "--edition", "2026-11-21", check=0)
    assert "sent" in sent.stdout
    again = digest("send-now", "--no-ingest", "--edition", "2026-11-21", check=0)
    assert "already" in again.stdout
    hist = digest("history", "--subscriber", "ada@example.org", check=0).stdout
    assert "2026-11-21" in hist and "sent" in hist
    stats = digest("stats", check=0).stdout
    assert "2026-11-21" in stats and "medical-segmentation" in stats
    status = digest("status", check=0).stdout
    assert "last ingest per source" in status and "last edition 2026-11-21" in status
