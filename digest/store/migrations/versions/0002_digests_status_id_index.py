"""index digests(status, id) for the claim query

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:25:00.000000
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.create_index('ix_digests_status_id', ['status', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_index('ix_digests_status_id')
