"""The send ledger stays small: the claim index holds only open digests, and every query on
open digests by status can use it (SQLite uses a partial index only when the query repeats its
condition)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from digest import clock
from digest.delivery.send import _claimable_by_status
from digest.store.db import session_factory
from digest.store.models import Digest, open_digest
from tests.conftest import TEST_DB


def _plan(session, stmt) -> str:
    compiled = stmt.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[k] for k in compiled.positiontup)
    rows = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, params).all()
    return " ".join(r[-1] for r in rows)


@pytest.mark.skipif(TEST_DB != "sqlite", reason="SQLite's query planner")
def test_queries_on_open_digests_use_the_partial_index(settings):
    now = clock.now()
    with session_factory(settings)() as s:
        queries = [select(Digest.id).where(cond).order_by(Digest.id).limit(200) for cond in _claimable_by_status(now)]
        queries += [select(Digest.id).where(Digest.status == "sending", Digest.lease_until >= now, open_digest()),
                    update(Digest).where(Digest.status == "deferred", Digest.attempts >= 5, open_digest())
                    .values(status="exhausted"),
                    select(Digest.id).where(Digest.status.in_(("planned", "deferred")), open_digest()).limit(1)]
        for q in queries:
            assert "ix_digests_open" in _plan(s, q), str(q)
        # without the condition it would not: the index leaves the sent digests out
        assert "ix_digests_open" not in _plan(s, select(Digest.id).where(Digest.status == "planned"))


def test_the_claim_index_leaves_sent_digests_out(settings):
    """Claiming still finds planned and expired-lease digests among many sent ones."""
    from digest.delivery.send import claim_batch
    from tests.factories import add_subscriber

    now = clock.now()
    with session_factory(settings)() as s:
        subs = [add_subscriber(s, f"r{i}@example.org", ["t"]) for i in range(4)]
        s.commit()
        for k, sub in enumerate(subs):
            s.add(Digest(subscriber_id=sub.id, edition=now.date() - timedelta(days=1), status="sent"))
            s.add(Digest(subscriber_id=sub.id, edition=now.date(), status=("planned", "sending", "deferred", "sent")[k],
                         lease_until=now - timedelta(minutes=1)))
        s.commit()
        got = claim_batch(s, "host:1:x:y", lease=timedelta(minutes=5))
        assert sorted(s.scalar(select(Digest.status).where(Digest.id == i)) for i in got) == ["sending"] * 3
        s.execute(update(Digest).values(status="sent"))
        s.commit()
        assert claim_batch(s, "host:1:x:y", lease=timedelta(minutes=5)) == []
