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
    assert current_revision(db_url) == "0008"


def _unmigrated_url(request, tmp_path, name: str = "migrate_0004") -> str:
    from tests.conftest import TEST_DB

    if TEST_DB == "sqlite":
        return f"sqlite:///{tmp_path}/{name}.db"
    return request.getfixturevalue("postgres").create_database(name)


def test_0004_keeps_every_row_gives_secrets_and_never_reuses_ids(request, tmp_path):
    """A database at 0003 with subscribers and their digests: after 0004 nothing is lost (the
    SQLite table rebuild must not cascade), each subscriber has its own secret, and deleting the
    newest subscriber does not hand its id to the next one."""
    from alembic import command
    from sqlalchemy import text

    from digest.store.db import alembic_config, upgrade

    url = _unmigrated_url(request, tmp_path)
    engine = get_engine(url, migrate=False)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
    with engine.begin() as conn:
        for sid in (1, 2, 3):
            conn.execute(text("INSERT INTO subscribers (id, email, topics, timezone, status, frequency, weekly_day, "
                              "trending, consecutive_failures, created_at, updated_at) VALUES (:id, :e, '[]', 'UTC', "
                              "'active', 'daily', 0, false, 0, '2026-11-01 08:00:00', '2026-11-02 08:00:00')"),
                         {"id": sid, "e": f"s{sid}@example.org"})
            conn.execute(text("INSERT INTO digests (id, subscriber_id, edition, status, attempts, paper_count, planned_at)"
                              " VALUES (:id, :id, '2026-11-02', 'sent', 1, 0, '2026-11-02 08:00:00')"), {"id": sid})
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('subscribers_id_seq', 3)"))
    upgrade(url)
    assert current_revision(url) == "0008"
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM digests")).scalar() == 3
        rows = conn.execute(text("SELECT link_secret, legacy_links, status_at, consented_at FROM subscribers")).all()
        assert len({r[0] for r in rows}) == 3 and all(len(r[0]) >= 32 and r[1] for r in rows)
        assert all(r[2] is not None and r[3] is not None for r in rows)
        conn.execute(text("DELETE FROM subscribers WHERE id = 3"))
        assert conn.execute(text("SELECT count(*) FROM digests")).scalar() == 2  # the cascade still works
    from digest.store.db import session_scope
    from digest.store.models import Subscriber
    from digest.store.settings import Settings

    with session_scope(Settings(database_url=url)) as session:
        new = Subscriber(email="new@example.org", topics=["x"])
        session.add(new)
        session.flush()
        assert new.id == 4 and new.link_secret and not new.legacy_links


def test_processes_opening_a_new_database_at_once_all_start(request, tmp_path):
    """A scheduler, a worker and the web app started together on an empty database: one
    migrates, the others wait for it; none fails with 'table already exists'."""
    import os
    import subprocess
    import sys

    from tests.conftest import TEST_DB

    code = ("import sys; from digest.store.db import get_engine, current_revision; "
            "get_engine(sys.argv[1]); print(current_revision(sys.argv[1]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    for attempt in range(3):  # a race: several tries, so a missing lock shows reliably
        url = (f"sqlite:///{tmp_path}/new{attempt}.db" if TEST_DB == "sqlite"
               else request.getfixturevalue("postgres").create_database(f"migrate_race{attempt}"))
        procs = [subprocess.Popen([sys.executable, "-c", code, url], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
        results = [p.communicate(timeout=120) for p in procs]
        for p, (out, err) in zip(procs, results):
            assert p.returncode == 0, err
            assert out.strip() == "0008"


def test_0008_moves_the_ledger_into_sections_and_back(request, tmp_path, monkeypatch):
    """A database at 0007 with per-paper ledger rows: 0008 stores each distinct section once
    and every digest reads back exactly what it carried (shown and counted, in order); the
    downgrade rebuilds the same rows. Batches smaller than the data, so batching is exercised."""
    import importlib

    from alembic import command
    from sqlalchemy import text

    from digest.store.db import alembic_config, upgrade
    from digest.store.ledger import items_of

    m0008 = importlib.import_module("digest.store.migrations.versions.0008_compact_ledger")
    monkeypatch.setattr(m0008, "BATCH", 3)
    url = _unmigrated_url(request, tmp_path, "migrate_0008")
    engine = get_engine(url, migrate=False)

    def to(rev, how=command.upgrade):
        with engine.begin() as conn:
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            how(cfg, rev)

    to("0007")
    # seven digests; 1-5 share the vision section, 3-4 carry the same ask, 7 carried nothing
    vision = [("2611.00001", True), ("2611.00002", True), ("2611.00003", False)]
    carried = {did: [("vision", p, pos, shown) for pos, (p, shown) in enumerate(vision)] for did in range(1, 6)}
    for did in (3, 4):
        carried[did] += [("ask:vision", "2611.00009", 0, True)]
    carried[5] += [("trending", "2611.00020", 0, True), ("trending", "2611.00021", 1, True)]
    carried[6] = [("medical", "2611.00004", 0, True), ("medical", "2611.00005", 1, False)]
    with engine.begin() as conn:
        for sid in range(1, 8):
            conn.execute(text("INSERT INTO subscribers (id, email, topics, timezone, status, frequency, weekly_day, "
                              "trending, consecutive_failures, created_at, updated_at, link_secret, legacy_links) "
                              "VALUES (:id, :e, '[]', 'UTC', 'active', 'daily', 0, false, 0, '2026-11-01 08:00:00', "
                              "'2026-11-02 08:00:00', 'x', false)"), {"id": sid, "e": f"s{sid}@example.org"})
            conn.execute(text("INSERT INTO digests (id, subscriber_id, edition, status, attempts, paper_count, planned_at,"
                              " unconfirmed, in_flight) VALUES (:id, :id, '2026-11-02', 'sent', 1, 2, "
                              "'2026-11-02 08:00:00', 0, false)"), {"id": sid})
        for did, rows in carried.items():
            for section, pid, pos, shown in rows:
                conn.execute(text("INSERT INTO digest_items (digest_id, paper_id, subscriber_id, section, position, "
                                  "shown) VALUES (:d, :p, :d, :s, :pos, :shown)"),
                             {"d": did, "p": pid, "s": section, "pos": pos, "shown": shown})
    upgrade(url)
    assert current_revision(url) == "0008"
    with engine.connect() as conn:
        # vision, ask:vision, trending, medical: four distinct sections for eleven section uses
        assert conn.execute(text("SELECT count(*) FROM ledger_sections")).scalar() == 4
        got = items_of(conn, range(1, 8))
    assert set(got) == set(range(1, 8)) and got[7] == []
    for did in range(1, 7):
        assert sorted((i.section, i.paper_id, i.position, i.shown) for i in got[did]) == \
            sorted((s, p, pos, shown) for s, p, pos, shown in carried[did])

    to("0007", command.downgrade)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT digest_id, section, paper_id, position, shown FROM digest_items")).all()
    assert sorted((d, s, p, pos, bool(sh)) for d, s, p, pos, sh in rows) == \
        sorted((d, s, p, pos, sh) for d, lst in carried.items() for s, p, pos, sh in lst)
    upgrade(url)  # and up again
    with engine.connect() as conn:
        assert len(items_of(conn, [5])[5]) == 5
