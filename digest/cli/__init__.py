"""CLI: the `digest` command, a thin layer over the Python API (`main`, and `topics` for
`digest topics …` and `digest classify`). The top layer: it may import anything below it.
"""
