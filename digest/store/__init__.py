"""Store: the database and what configures it.

Owns the SQLAlchemy models (`models`), engines, sessions and Alembic migrations (`db`,
`migrations/`), the leader lease and other row locks (`locks`) and the `DIGEST_*` settings
(`settings`). The bottom layer: it imports nothing from `digest` but `digest.clock`.
"""
