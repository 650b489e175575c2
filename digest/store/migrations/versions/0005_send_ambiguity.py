"""digests.unconfirmed and digests.in_flight: sends whose outcome is unknown

A message whose data reached the server without a reply (or whose sender died while it was
in flight) may have been delivered; counting such sends per digest bounds the copies a reader
can get (DIGEST_AMBIGUOUS_RETRY).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 06:00:00.000000
"""
import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unconfirmed', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('in_flight', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('digests', schema=None) as batch_op:
        batch_op.drop_column('in_flight')
        batch_op.drop_column('unconfirmed')
