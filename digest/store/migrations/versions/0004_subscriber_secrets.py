"""subscribers: ids never reused, a per-subscriber link secret, status/consent/confirmation times

SQLite gets AUTOINCREMENT on subscribers (the table is rebuilt; digest/store/db.py turns foreign
keys off around migrations so the rebuild cannot cascade). PostgreSQL's sequence never reuses.
Existing subscribers get a random link secret each and keep their version-1 unsubscribe links
(legacy_links); their status date and consent time start from updated_at / created_at.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 06:00:00.000000
"""
import secrets

import sqlalchemy as sa
from alembic import op

import digest.store.models

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

NEW_COLUMNS = ('status_at', 'consented_at', 'confirmed_at', 'link_secret', 'legacy_links')


def upgrade() -> None:
    # Only SQLite rebuilds the table (that is how it gets AUTOINCREMENT); PostgreSQL alters it.
    rebuild = 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'
    with op.batch_alter_table('subscribers', schema=None, recreate=rebuild,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('status_at', digest.store.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('consented_at', digest.store.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('confirmed_at', digest.store.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('link_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('legacy_links', sa.Boolean(), nullable=True))
    conn = op.get_bind()
    table = sa.table('subscribers', sa.column('id', sa.Integer), sa.column('link_secret', sa.String),
                     sa.column('legacy_links', sa.Boolean))
    ids = [row[0] for row in conn.execute(sa.select(table.c.id))]
    for sid in ids:  # one random secret each: a secret cannot be computed in SQL portably
        conn.execute(table.update().where(table.c.id == sid)
                     .values(link_secret=secrets.token_urlsafe(24), legacy_links=True))
    op.execute("UPDATE subscribers SET status_at = updated_at, consented_at = created_at")
    with op.batch_alter_table('subscribers', schema=None,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.alter_column('link_secret', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('legacy_links', existing_type=sa.Boolean(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        for name in NEW_COLUMNS:
            batch_op.drop_column(name)
