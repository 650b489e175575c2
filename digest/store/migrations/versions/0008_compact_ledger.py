"""a compact ledger: distinct sections in ledger_sections, each digest their ids in order

Replaces digest_items (one row per paper per digest). Existing rows move over in batches of
digests, so a large ledger never has to fit in memory; the downgrade rebuilds digest_items
from the compact form the same way. The encoding is digest/store/ledger.py's.

Also slims the digests row (bytes per digest, issue 15): its subscriber_id index goes (the
unique (subscriber_id, edition) one serves those lookups) and so does message_id, which is
computed from (subscriber, edition) anyway; the downgrade brings the column back empty. The
(status, id) index of the claim query keeps only open digests (planned, sending, deferred).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:00:00.000000
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

from digest.store.ledger import PlannedItem, decode_ids, encode_ids, load_sections, section_keys, upsert_sections

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BATCH = 2000  # digests per step
OPEN = "status IN ('planned', 'sending', 'deferred')"   # the models' ix_digests_open condition

digests = sa.table('digests', sa.column('id', sa.Integer), sa.column('sections', sa.Text))


def _create_items_table() -> None:
    op.create_table(
        'digest_items',
        sa.Column('digest_id', sa.Integer(), nullable=False),
        sa.Column('paper_id', sa.String(length=64), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('section', sa.String(length=64), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('shown', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('digest_id', 'paper_id'),
    )


def upgrade() -> None:
    op.create_table(
        'ledger_sections',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('hash', sa.LargeBinary(length=16), nullable=False),
        sa.Column('section', sa.String(length=64), nullable=False),
        sa.Column('shown', sa.Integer(), nullable=False),
        sa.Column('papers', sa.Text(), nullable=False),
        sa.Column('used_on', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('hash'),
    )
    op.add_column('digests', sa.Column('sections', sa.Text(), nullable=True))
    # the unique (subscriber_id, edition) index serves every lookup by subscriber
    op.drop_index('ix_digests_subscriber_id', table_name='digests')
    # a digest's Message-ID is message_id_for(subscriber, edition): no need to store it (in place,
    # not a batch rebuild, which on SQLite could cascade)
    op.execute("ALTER TABLE digests DROP COLUMN message_id")
    # the claim index holds only the digests still to act on (not the sent ones, nearly all)
    op.drop_index('ix_digests_status_id', table_name='digests')
    op.create_index('ix_digests_open', 'digests', ['status', 'id'], unique=False, sqlite_where=sa.text(OPEN),
                    postgresql_where=sa.text(OPEN))
    conn = op.get_bind()
    today = datetime.now(timezone.utc).date()
    last = 0
    while True:  # digests with items, BATCH at a time
        ids = [r[0] for r in conn.execute(sa.text(
            "SELECT DISTINCT digest_id FROM digest_items WHERE digest_id > :last ORDER BY digest_id LIMIT :n"),
            {"last": last, "n": BATCH})]
        if not ids:
            break
        last = ids[-1]
        items: dict[int, list[PlannedItem]] = {i: [] for i in ids}
        for did, pid, section, position, shown in conn.execute(sa.text(
                "SELECT digest_id, paper_id, section, position, shown FROM digest_items "
                "WHERE digest_id >= :lo AND digest_id <= :hi ORDER BY digest_id, section, shown DESC, position"),
                {"lo": ids[0], "hi": ids[-1]}):
            items[did].append(PlannedItem(pid, section, position, bool(shown)))
        keys = {did: section_keys(lst) for did, lst in items.items()}
        known = upsert_sections(conn, {k for lst in keys.values() for k in lst}, today)
        conn.execute(digests.update().where(digests.c.id == sa.bindparam('did')),
                     [{"did": did, "sections": encode_ids(known[k] for k in lst)} for did, lst in keys.items()])
    op.drop_table('digest_items')


def downgrade() -> None:
    _create_items_table()
    conn = op.get_bind()
    items_table = sa.table('digest_items', *(sa.column(c) for c in
                                             ('digest_id', 'paper_id', 'subscriber_id', 'section', 'position', 'shown')))
    last = 0
    while True:
        rows = conn.execute(sa.text(
            "SELECT id, subscriber_id, sections FROM digests WHERE id > :last AND sections IS NOT NULL "
            "ORDER BY id LIMIT :n"), {"last": last, "n": BATCH}).all()
        if not rows:
            break
        last = rows[-1][0]
        sections = load_sections(conn, (s for r in rows for s in decode_ids(r[2])))
        out, seen = [], set()
        for did, sid, text in rows:
            for section_id in decode_ids(text):
                for it in sections.get(section_id, ()):
                    if (did, it.paper_id) not in seen:  # the old primary key: a paper once per digest
                        seen.add((did, it.paper_id))
                        out.append({"digest_id": did, "paper_id": it.paper_id, "subscriber_id": sid,
                                    "section": it.section, "position": it.position, "shown": it.shown})
        if out:
            conn.execute(items_table.insert(), out)
    op.create_index('ix_digests_subscriber_id', 'digests', ['subscriber_id'], unique=False)
    op.drop_index('ix_digests_open', table_name='digests')
    op.create_index('ix_digests_status_id', 'digests', ['status', 'id'], unique=False)
    op.add_column('digests', sa.Column('message_id', sa.String(length=255), nullable=True))  # left empty
    # not a batch rebuild: on SQLite with foreign keys on, dropping the old digests table would
    # cascade to the digest_items just rebuilt (SQLite >= 3.35 drops a column in place)
    op.execute("ALTER TABLE digests DROP COLUMN sections")
    op.drop_table('ledger_sections')
