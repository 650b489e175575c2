"""The bench's result tables (rich) and its verdicts against the targets."""
from __future__ import annotations

TARGETS = {
    "plan_render_digests_per_s": 2000.0,   # at N = 100,000
    "deliver_ratio": 0.8,
    "peak_rss_mb": 1024.0,
    "reingest_ratio": 0.10,
    "ledger_bytes_per_digest": 300.0,
    "db_bytes_30_days": 3e9,               # at N = 100,000
    "edition_ratio": 1.25,
    "wall_s": 900.0,                       # the whole run, at N = 100,000
}


# -------------------------------------------------------------------------------- output

def verdicts(r: dict) -> list[tuple[str, str, str, str]]:
    """(metric, measured, target, verdict)."""
    def ok(b):
        return "[green]met[/green]" if b else "[red]MISSED[/red]"

    rows = [
        ("plan + render", f"{r['plan_render_digests_per_s']:,.0f} digests/s", "≥ 2,000/s at N=100k",
         ok(r["plan_render_digests_per_s"] >= TARGETS["plan_render_digests_per_s"]) if r["subscribers"] >= 100_000
         else ("(indicative)" if r["plan_render_digests_per_s"] >= 2000 else "[yellow]below[/yellow] (indicative)")),
        ("deliver ratio", f"{r['deliver_ratio']:.2f}", "≥ 0.80 × bare smtplib", ok(r["deliver_ratio"] >= 0.8)),
        ("peak RSS (send)", f"{r['peak_rss_mb']:,.0f} MB", "< 1,024 MB", ok(r["peak_rss_mb"] < 1024)),
        ("re-ingest (same bytes)", f"{r['reingest_ratio']:.1%}", "< 10%", ok(r["reingest_ratio"] < 0.10)),
        ("re-ingest (rebuilt feed)", f"{r['reingest_changed_ratio']:.1%}", "< 10% (stricter reading)",
         ok(r["reingest_changed_ratio"] < 0.10)),
    ]
    if "edition_seconds" in r:
        rows.append(("edition end to end", f"{r['edition_seconds']:,.1f} s = {r['edition_ratio']:.2f} × bare loop",
                     f"≤ 1.25 × bare smtplib at N=100k ({r.get('edition_sink') or r['sink']} sink)", ok(r["edition_ratio"] <= TARGETS["edition_ratio"])
                     if r["subscribers"] >= 100_000 else "(indicative)"))
    if "ledger_bounded" in r:
        rows.append(("ledger bounded", f"sections {r['editions'][0]['ledger_sections']:,} → "
                     f"{r['editions'][-1]['ledger_sections']:,}", "flat per edition", ok(r["ledger_bounded"])))
    if "ledger_bytes_per_digest" in r:
        rows.append(("ledger bytes per digest", f"{r['ledger_bytes_per_digest']:,.0f} B", "≤ 300 B",
                     ok(r["ledger_bytes_per_digest"] <= TARGETS["ledger_bytes_per_digest"])))
        size = f"{r['db_bytes_30_days'] / 1e9:,.2f} GB"
        rows.append(("database after 30 days", size, "≤ 3 GB at N=100k",
                     ok(r["db_bytes_30_days"] <= TARGETS["db_bytes_30_days"]) if r["subscribers"] >= 100_000
                     else "(indicative)"))
    if "wall_s" in r:
        every_stage = all(k in r for k in ("edition_seconds", "pg_workers", "overlap_wall_s")) and not r.get("render_limit")
        rows.append(("whole run", f"{r['wall_s'] / 60:,.1f} min", "≤ 15 min at N=100k, every stage",
                     ok(r["wall_s"] <= TARGETS["wall_s"]) if r["subscribers"] >= 100_000 and every_stage
                     else "(indicative)"))
    pool = (f"; workers: sink {r['pool_sink_received']:,} / sent {r['pool_sent']:,}, dup {r['pool_duplicates']}"
            if r.get("pool_workers") else "")
    rows.append(("correctness", f"sink {r['sink_received']:,} / sent {r['deliver_sent']:,}, dup {r['duplicates']}{pool}",
                 "equal, 0 duplicates", ok(r["correct"])))
    return rows


def print_results(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console()
    t = Table(title=f"digest scale bench — N={r['subscribers']:,} subscribers, T={r['topics']}, P={r['papers_per_day']}, "
                    f"D={r['days']} ({r['cpu_count']} CPUs, Python {r['python']})")
    t.add_column("stage")
    t.add_column("measure", justify="right")
    t.add_column("detail")
    t.add_row("setup", f"{r['setup_s']:.0f} s", f"{r['history_digests']:,} past digests, {r['history_items']:,} items "
              f"({r['history_items_per_digest']} per digest) in {r['history_sections']:,} distinct sections")
    t.add_row("ingest", f"{r['ingest_papers_per_s']:,.0f} papers/s",
              f"{r['ingest_entries']} entries, {r['ingest_s']:.2f} s ({r['ingest_new']} new, {r['ingest_updated']} updated)")
    t.add_row("re-ingest same bytes", f"{r['reingest_ratio']:.1%}", f"{r['reingest_s'] * 1000:.0f} ms ({r['reingest_status']})")
    t.add_row("re-ingest rebuilt feed", f"{r['reingest_changed_ratio']:.1%}", f"{r['reingest_changed_s']:.2f} s "
              f"({r['reingest_changed_unchanged']} unchanged)")
    t.add_row("match", f"{r['match_pairs_per_s']:,.0f} pairs/s",
              f"{r['match_papers']} papers × {r['topics']} topics in {r['match_s']:.2f} s, {r['match_assignments']} assignments")
    t.add_row("plan", f"{r['plan_digests_per_s']:,.0f} digests/s", f"{r['planned']:,} planned in {r['plan_s']:.1f} s "
              f"({r['plan_groups']:,} groups, {r['plan_empty']:,} empty)")
    how = (f"digest worker ×{r['render_processes']}, dry-run" if r.get("render_processes", 1) > 1
           else "send_pending, dry-run backend")
    t.add_row(f"render ({how})", f"{r['render_digests_per_s']:,.0f} digests/s",
              f"{r['rendered']:,} in {r['render_s']:.1f} s{' (profiled)' if r['profiled'] else ''}")
    t.add_row("plan + render", f"{r['plan_render_digests_per_s']:,.0f} digests/s", "plan, then render")
    if r.get("overlap_error"):
        t.add_row("plan + render, workers already running", "[red]failed[/red]", r["overlap_error"])
    if "plan_render_overlap_digests_per_s" in r:
        t.add_row("plan + render, workers already running", f"{r['plan_render_overlap_digests_per_s']:,.0f} digests/s",
                  f"{r['overlap_planned']:,} planned in {r['overlap_plan_s']:.1f} s while digest worker "
                  f"×{r['render_processes']} rendered; last sent {r['overlap_wall_s']:.1f} s after the plan started")
    t.add_row("deliver, 1 process (send_pending → SMTP)", f"{r['deliver_1proc_msgs_per_s']:,.0f} msgs/s",
              f"{r['deliver_sent']:,} of sample {r['deliver_sample']:,} in {r['deliver_s']:.1f} s, ratio "
              f"{r['deliver_1proc_ratio']:.2f}")
    if r.get("pool_workers"):
        t.add_row(f"deliver, digest worker ×{r['pool_workers']} → SMTP", f"{r['pool_msgs_per_s']:,.0f} msgs/s",
                  f"{r['pool_sent']:,} sent (first to last sent_at); wall {r['pool_wall_s']:.1f} s incl. start-up")
    t.add_row("bare smtplib loop", f"{r['baseline_msgs_per_s']:,.0f} msgs/s",
              f"{r['baseline_n']:,} × {r['payload_bytes']:,} B in {r['baseline_s']:.1f} s")
    t.add_row("deliver ratio", f"{r['deliver_ratio']:.2f}", "")
    t.add_row("peak RSS (plan + send process)", f"{r['peak_rss_mb']:,.0f} MB", f"at start {r['child_start_rss_mb']:.0f} MB")
    t.add_row("database", f"{r['db_bytes'] / 1e6:,.1f} MB", "")
    if r.get("pg_workers"):
        t.add_row("plan on PostgreSQL", f"{r['pg_plan_digests_per_s']:,.0f} digests/s",
                  f"{r['pg_planned']:,} planned in {r['pg_plan_s']:.1f} s (copy of the history {r['pg_copy_s']:.0f} s)")
        for w in r["pg_workers"]:
            t.add_row(f"deliver on PostgreSQL, {w['workers']} worker process{'es' if w['workers'] > 1 else ''}",
                      f"{w['msgs_per_s']:,.0f} msgs/s",
                      f"{w['sent']:,} of {w['sample']:,} sent; sink {w['sink_received']:,}, dup {w['duplicates']}, "
                      f"missing {w['missing']}; wall {w['wall_s']:.1f} s incl. start-up")
        t.add_row("deliver on SQLite (same sample size)", f"{r['deliver_msgs_per_s']:,.0f} msgs/s",
                  f"{r.get('pool_workers') or 1} worker process(es); one process: {r['deliver_1proc_msgs_per_s']:,.0f} msgs/s")
    elif r.get("postgres_error"):
        t.add_row("PostgreSQL", "skipped", r["postgres_error"][:80])
    if "edition_seconds" in r:
        t.add_row(f"edition end to end (plan + digest worker ×{r['edition_workers']} → "
                  f"{r.get('edition_sink') or r['sink']} SMTP sink)",
                  f"{r['edition_seconds']:,.1f} s",
                  f"{r['edition_sink_received']:,} messages ({r['edition_sink_bytes'] / 1e6:,.0f} MB), plan "
                  f"{r['edition_plan_s']:.1f} s; dup {r['edition_duplicates']}, missing {r['edition_missing']}")
        t.add_row("bare smtplib loop, same messages", f"{r['baseline_seconds']:,.1f} s",
                  f"{r['baseline_edition_received']:,} messages ({r['baseline_edition_bytes'] / 1e6:,.0f} MB); "
                  f"ratio {r['edition_ratio']:.2f}")
    for e in r.get("editions", []):
        t.add_row(f"edition {e['edition']}", f"{e['used_growth'] / 1e6:+,.2f} MB used",
                  f"file {e['file_growth'] / 1e6:+,.2f} MB; sections {e['ledger_sections']:,}; digests {e['digests']:,}; "
                  f"compacted {e['compacted_sections']:,}")
    for name, size in r.get("ledger_objects", {}).items():
        t.add_row(f"ledger: {name}", f"{size / max(1, r['editions'][-1]['digests']):,.1f} B/digest",
                  f"{size / 1e6:,.1f} MB")
    c.print(t)
    v = Table(title="targets")
    for col in ("target", "measured", "wanted", "verdict"):
        v.add_column(col)
    for row in verdicts(r):
        v.add_row(*row)
    c.print(v)
