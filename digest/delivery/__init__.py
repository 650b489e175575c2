"""Delivery: getting planned digests to subscribers exactly once.

Owns the backends (`backends`: SMTP, file outbox, dry run), claiming digests under a lease
(`claim`), the send loop that renders, sends and records them (`send`), `digest worker` processes (`worker`) and the clean-up of
old send records (`ledger`). May import `digest.email`, `digest.plan`, `digest.topics` and
`digest.store`.
"""
