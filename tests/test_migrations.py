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


def _unmigrated_url(request, tmp_path) -> str:
    from tests.conftest import TEST_DB

    if TEST_DB == "sqlite":
        return f"sqlite:///{tmp_path}/old.db"
    return request.getfixturevalue("postgres").create_database("migrate_0004")


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
