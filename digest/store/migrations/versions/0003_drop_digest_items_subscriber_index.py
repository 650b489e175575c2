"""drop the unused index digest_items(subscriber_id)

No query filters digest items by subscriber (the diff is planned from digests.planned_at),
and the index cost ~a third of the insert time of an edition's ledger rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:00:00.000000
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('digest_items', schema=None) as batch_op:
        batch_op.drop_index('ix_digest_items_subscriber_id')


def downgrade() -> None:
    with op.batch_alter_table('digest_items', schema=None) as batch_op:
        batch_op.create_index('ix_digest_items_subscriber_id', ['subscriber_id'], unique=False)
