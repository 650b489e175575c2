"""CLI: the `digest` command, a thin layer over the Python API, one module per command group:
`main` (the top-level commands: ingest, send-now, preview, run, worker, web, secret, check,
and the entry point), `reports` (status, history, stats), `subscribers` (`digest subscribers …`), `db`
(`digest db …`), `topics` (`digest topics …` and `digest classify`); what they share (exit
codes, the user error, --format, dates) in `common`, consoles, one-line errors and tables or
TSV/JSON for scripts in `output`, and `python -m digest.cli` in `__main__`. The top layer: it
may import anything below it.
"""
