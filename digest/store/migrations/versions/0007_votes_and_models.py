"""votes (readers' relevant / not for me), learned topic models, near matches ("Is this <topic>?")

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30 06:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

from digest.store.models import UTCDateTime

revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'votes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('paper_id', sa.String(length=64), nullable=False),
        sa.Column('topic_id', sa.String(length=64), nullable=False),
        sa.Column('relevant', sa.Boolean(), nullable=False),
        sa.Column('other_topic', sa.String(length=64), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['paper_id'], ['papers.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('subscriber_id', 'paper_id', 'topic_id', name='uq_vote'),
    )
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_votes_paper_id'), ['paper_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_votes_subscriber_id'), ['subscriber_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_votes_topic_id'), ['topic_id'], unique=False)
    op.create_table(
        'topic_models',
        sa.Column('version', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('trained_at', UTCDateTime(), nullable=False),
        sa.Column('config_version', sa.String(length=64), nullable=False),
        sa.Column('matcher', sa.String(length=32), nullable=False),
        sa.Column('labels_hash', sa.String(length=64), nullable=False),
        sa.Column('labels', sa.Integer(), nullable=False),
        sa.Column('model', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('version'),
    )
    op.create_table(
        'near_matches',
        sa.Column('paper_id', sa.String(length=64), nullable=False),
        sa.Column('topic_id', sa.String(length=64), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('matched', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['paper_id'], ['papers.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('paper_id', 'topic_id'),
    )
    with op.batch_alter_table('near_matches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_near_matches_topic_id'), ['topic_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('near_matches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_near_matches_topic_id'))
    op.drop_table('near_matches')
    op.drop_table('topic_models')
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_votes_topic_id'))
        batch_op.drop_index(batch_op.f('ix_votes_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_votes_paper_id'))
    op.drop_table('votes')
