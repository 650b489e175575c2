"""digest: a daily email digest of new research papers.

The package follows the pipeline, one subpackage per stage; imports flow one way, down:

    cli ─► web, scheduler ─► pipeline ─► delivery ─► email ─► plan, sources, topics ─► store

`clock`, `tokens` and `logs` are small leaf modules any layer may use.
"""

__version__ = "0.1.0"
