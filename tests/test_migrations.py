"""The Alembic migrations build exactly the schema of digest/models.py, on SQLite and on
PostgreSQL (the same migrations for both)."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from digest.store.db import current_revision, get_engine
from digest.store.models import Base


def test_migrated_schema_matches_the_models(db_url):
    engine = get_engine(db_url)  # runs every migration
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    assert diff == []
    assert current_revision(db_url) == "0007"
