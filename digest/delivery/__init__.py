"""Delivery: getting planned digests to subscribers exactly once.

Owns the backends (`backends`: SMTP, file outbox, dry run), the send loop that claims,
sends and records digests (`send`), `digest worker` processes (`worker`) and the clean-up of
old send records (`ledger`). May import `digest.email`, `digest.plan`, `digest.topics` and
`digest.store`.
"""
