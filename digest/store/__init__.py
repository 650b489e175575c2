"""Store: the database and what configures it.

Owns the SQLAlchemy models (`models`), engines, sessions and Alembic migrations (`db`,
`migrations/`), the leader lease and other row locks (`locks`), small key/value facts such
as the last valid topics config (`state`), the `DIGEST_*` settings (`settings`), the
parsing of `DIGEST_DELIVERY` (`delivery_url`) and the compact form of what each digest
carried (`ledger`: `items_of` reads it). The bottom layer: it imports nothing from `digest`
but `digest.clock`.
"""
