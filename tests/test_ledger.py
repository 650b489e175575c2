"""The send ledger stays small: the claim index holds only open digests, and every query on
open digests by status can use it (SQLite uses a partial index only when the query repeats its
condition)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from digest import clock
from digest.delivery.claim import _claimable_by_status
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
    from digest.delivery.claim import claim_batch
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


def test_content_from_ledger_rows_equals_content_from_items(settings):
    """The send loop builds a digest from its stored sections (each row's Section built once
    and shared); that is the same content as building it from the items, for several readers
    sharing rows, a topic order, Trending, a question, a paper no longer stored, and one section
    stored in two rows (merged as the items would be)."""
    from digest.email.builder import ContentBuilder
    from digest.email.content import Recipient
    from digest.store.ledger import digest_sections, encode_ids, items_of, section_rows, upsert_sections
    from tests.factories import add_paper, add_subscriber

    now = clock.now()
    with session_factory(settings)() as s:
        for i in range(8):
            add_paper(s, f"2611.0{i:04d}", seen=now, matches={"a": 0.9 - i / 100, "b": 0.5})
        sub = add_subscriber(s, "r@example.org", ["b", "a"])
        s.commit()
        P = [f"2611.0{i:04d}" for i in range(8)]
        layouts = [  # (section, shown, papers) per stored section, in planned order
            [("a", 2, P[:4]), ("b", 1, P[4:6]), ("trending", 1, P[6:8])],
            [("trending", 2, P[6:8]), ("a", 2, P[:4]), ("ask:a", 1, P[5:6])],
            [("a", 1, P[:2] + ["2611.09999"]), ("b", 2, P[2:4])],            # a paper not stored
            [("a", 2, P[:3]), ("b", 1, P[3:5]), ("a", 1, P[5:7])],            # "a" in two rows
        ]
        ids = []
        for k, layout in enumerate(layouts):
            keys = [(name, shown, tuple(papers)) for name, shown, papers in layout]
            stored = upsert_sections(s.connection(), keys, now.date())
            d = Digest(subscriber_id=sub.id, edition=now.date() - timedelta(days=k), status="planned",
                       sections=encode_ids(stored[key] for key in keys))
            s.add(d)
            s.flush()
            ids.append(d.id)
        s.commit()
        conn = s.connection()
        refs = digest_sections(conn, ids)
        rows = section_rows(conn, {x for lst in refs.values() for x in lst})
        items = items_of(conn, ids)
        builder = ContentBuilder(settings, {"a": "Topic A", "b": "Topic B"})
        builder.load(s, set(P) | {"2611.09999"})
        who = Recipient(sub.id, sub.email, None, "UTC", "secret")
        for round_ in range(2):                                  # the second time from the row cache
            for did in ids:
                want = builder.build(who, now.date(), items[did], order=["b", "a"], digest_id=did)
                got = builder.build_rows(who, now.date(), [(x, *rows[x]) for x in refs[did]], order=["b", "a"],
                                         digest_id=did)
                assert got == want
                assert got.cache_key == want.cache_key
        assert [s_.topic_id for s_ in got.sections] == ["b", "a"] and got.sections[1].more == 2
        assert len(got.sections[1].papers) == 3


def test_senders_on_one_sqlite_file_take_turns(settings, tmp_path):
    """The send loop's writer queue: while one process holds it, another one's take() waits and
    goes on the moment it is given back; an in-memory database or PostgreSQL has none."""
    import subprocess
    import sys

    from digest.store.db import WriterQueue, get_engine, make_engine

    if TEST_DB != "sqlite":
        assert WriterQueue(get_engine(settings.database_url)).path is None
        return
    assert WriterQueue(make_engine("sqlite://")).path is None
    url = f"sqlite:///{tmp_path}/turns.db"
    queue = WriterQueue(make_engine(url))
    assert queue.path == tmp_path / "turns.db.write-lock"
    code = ("import sys, time; from digest.store.db import WriterQueue, make_engine; "
            "q = WriterQueue(make_engine(sys.argv[1])); print('waiting', flush=True); t = time.monotonic(); "
            "q.take(); print(f'took {time.monotonic() - t:.3f}', flush=True); q.close()")
    queue.take()
    queue.take()                                   # held already: no second lock, no deadlock
    other = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "waiting"
    import time
    time.sleep(0.5)
    assert other.poll() is None                    # still waiting for us
    queue.give_back()
    out, _ = other.communicate(timeout=30)
    assert out.startswith("took ") and float(out.split()[1]) >= 0.4
    queue.take()                                   # free again
    queue.close()
