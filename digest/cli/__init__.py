"""CLI: the `digest` command, a thin layer over the Python API (`main`, `topics` for
`digest topics …` and `digest classify`, one-line errors and tables or TSV/JSON for
scripts in `output`, `python -m digest.cli` in `__main__`). The top layer: it may import
anything below it.
"""
