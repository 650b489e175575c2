"""Robustness run: ingest every file of a feed corpus and check nothing escapes or corrupts the database.

    .venv/bin/python bench/robustness.py [--corpus DIR] [--json FILE] [--quiet]

Each file goes through ``ingest_source(settings, adhoc_spec(path))`` into one fresh temporary
SQLite database. After every file the database is checked: every paper_listings row has its
paper, no paper lacks a title, every paper has a listing, and ``PRAGMA integrity_check`` is ok.

Reported per file: status, records (new + updated + unchanged), skipped, warnings, first message.
Totals: files, crashes (exceptions escaping ingest_source: must be 0), unexpected (failures that
ingest caught but that came from a bug rather than bad input), failed, warned, ok, not-modified,
inconsistent (consistency checks that failed: must be 0).
"""
from __future__ import annotations

import json
import logging
import sqlite3
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.store.db import dispose_all  # noqa: E402
from digest.sources.ingest import adhoc_spec, ingest_source  # noqa: E402
from digest.store.settings import Settings  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "peer-feeds" / "feedparser" / "tests"


from bench.common import OneLineParser  # noqa: E402
def check_database(db_path: Path) -> list[str]:
    problems = []
    con = sqlite3.connect(db_path)
    try:
        result = con.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            problems.append(f"integrity_check: {result}")
        orphans = con.execute(
            "SELECT count(*) FROM paper_listings l LEFT JOIN papers p ON p.id = l.paper_id WHERE p.id IS NULL"
        ).fetchone()[0]
        if orphans:
            problems.append(f"{orphans} listing(s) without their paper")
        untitled = con.execute("SELECT count(*) FROM papers WHERE title IS NULL OR trim(title) = ''").fetchone()[0]
        if untitled:
            problems.append(f"{untitled} paper(s) without a title")
        unlisted = con.execute(
            "SELECT count(*) FROM papers p WHERE NOT EXISTS (SELECT 1 FROM paper_listings l WHERE l.paper_id = p.id)"
        ).fetchone()[0]
        if unlisted:
            problems.append(f"{unlisted} paper(s) without a listing")
    finally:
        con.close()
    return problems


def run(corpus: Path, workdir: Path) -> dict:
    db_path = workdir / "robustness.db"
    settings = Settings(database_url=f"sqlite:///{db_path}", http_timeout=1.0, http_retries=0, http_backoff=0.0)
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    rows, totals = [], Counter()
    started = time.perf_counter()
    for path in files:
        rel = str(path.relative_to(corpus))
        row = {"file": rel, "status": "", "records": 0, "new": 0, "skipped": 0, "warnings": 0, "errors": 0,
               "message": "", "crash": None, "inconsistent": []}
        t0 = time.perf_counter()
        try:
            report = ingest_source(settings, adhoc_spec(str(path)))
        except Exception as exc:  # exactly what the run is looking for
            row["status"] = "CRASH"
            row["crash"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            row["traceback"] = traceback.format_exc()
            totals["crashes"] += 1
        else:
            row["status"] = report.status
            row["new"] = report.new
            row["records"] = report.new + report.updated + report.unchanged
            row["skipped"] = sum(report.skipped.values())
            row["skipped_reasons"] = dict(report.skipped)
            row["warnings"] = len(report.warnings)
            row["errors"] = len(report.errors)
            first = (report.errors or report.warnings or [""])[0].replace(f"{path}: ", "").replace(str(path), rel)
            if not first and report.skipped:
                first = "skipped: " + ", ".join(f"{n} {reason}" for reason, n in report.skipped.most_common())
            row["message"] = first
            if any(": unexpected " in e for e in report.errors):
                totals["unexpected"] += 1
            totals[report.status] += 1
        row["seconds"] = round(time.perf_counter() - t0, 4)
        row["inconsistent"] = check_database(db_path)
        if row["inconsistent"]:
            totals["inconsistent"] += 1
        totals["records"] += row["records"]
        totals["skipped"] += row["skipped"]
        rows.append(row)
    dispose_all()
    summary = {
        "corpus": str(corpus),
        "files": len(files),
        "crashes": totals["crashes"],
        "unexpected": totals["unexpected"],
        "failed": totals["failed"],
        "warned": totals["warning"],
        "ok": totals["ok"],
        "not_modified": totals["not-modified"],
        "inconsistent": totals["inconsistent"],
        "records": totals["records"],
        "skipped_entries": totals["skipped"],
        "seconds": round(time.perf_counter() - started, 2),
    }
    return {"summary": summary, "files": rows}


def print_table(result: dict, quiet: bool) -> None:
    rows = result["files"]
    if not quiet:
        width = min(70, max((len(r["file"]) for r in rows), default=4))
        print(f"{'file':<{width}}  {'status':<12} {'rec':>4} {'skip':>4} {'warn':>4}  message")
        print("-" * (width + 40))
        for r in rows:
            name = r["file"] if len(r["file"]) <= width else "…" + r["file"][-(width - 1):]
            msg = (r["crash"] or "; ".join(r["inconsistent"]) or r["message"]).replace("\n", " ")
            print(f"{name:<{width}}  {r['status']:<12} {r['records']:>4} {r['skipped']:>4} {r['warnings']:>4}  {msg[:90]}")
        print()
    s = result["summary"]
    print(f"corpus:       {s['corpus']}")
    print(f"files:        {s['files']}")
    print(f"crashes:      {s['crashes']}   (exceptions escaping ingest_source; must be 0)")
    print(f"unexpected:   {s['unexpected']}   (failures caught by ingest but caused by a bug, not by the input)")
    print(f"inconsistent: {s['inconsistent']}   (database checks failed after a file; must be 0)")
    print(f"failed:       {s['failed']}")
    print(f"warned:       {s['warned']}")
    print(f"ok:           {s['ok']}")
    print(f"not-modified: {s['not_modified']}")
    print(f"records:      {s['records']}  skipped entries: {s['skipped_entries']}  time: {s['seconds']} s")
    crashes = [r for r in rows if r["crash"]]
    for r in crashes[:10]:
        print(f"\nCRASH {r['file']}:\n{r['traceback']}")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder of feed files (recursive)")
    parser.add_argument("--json", type=Path, help="write the full result as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="print only the totals")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"{args.corpus}: no such folder", file=sys.stderr)
        return 2
    logging.disable(logging.CRITICAL)  # the ingest logs every bad feed; the table says it all
    with tempfile.TemporaryDirectory(prefix="digest-robustness-") as tmp:
        result = run(args.corpus.resolve(), Path(tmp))
    print_table(result, args.quiet)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        print(f"\nwrote {args.json}")
    s = result["summary"]
    return 1 if s["crashes"] or s["inconsistent"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
