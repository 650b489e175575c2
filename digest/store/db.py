"""Engine, sessions and migrations. Migrations run automatically on first use."""
from __future__ import annotations

import fcntl
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from digest.store.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_engines: dict[str, Engine] = {}
_upgraded: set[str] = set()
_lock = threading.RLock()


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str) -> Engine:
    _ensure_sqlite_dir(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # WAL: readers never block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def _sqlite_migration_lock(url: str) -> Iterator[None]:
    """Several processes may open a new SQLite file at once (a scheduler, a worker, the web
    app): pysqlite runs DDL outside any transaction, so without this they race to create the
    same tables. An OS lock on a file beside the database lets one migrate while the rest wait."""
    path = Path(url.removeprefix("sqlite:///")).expanduser()
    with open(path.with_name(path.name + ".migrate-lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class WriterQueue:
    """Writers of one SQLite file taking turns through an OS lock beside it, for short
    transactions written at a high rate (the send loop's one commit per message). SQLite makes a
    writer that finds the database locked sleep and retry (1 ms, then longer); a writer blocked
    on this lock is woken the moment the other releases it. (On the 100k bench two senders
    showed no difference beyond this machine's noise; it bounds the worst case.) Other
    databases: a no-op."""

    def __init__(self, engine: Engine):
        url = engine.url
        self.path = None
        if engine.dialect.name == "sqlite" and url.database and url.database != ":memory:" \
                and not url.database.startswith("file:"):
            self.path = Path(url.database).expanduser()
            self.path = self.path.with_name(self.path.name + ".write-lock")
        self._handle = None
        self.held = False

    def take(self) -> None:
        if self.path is None or self.held:
            return
        if self._handle is None:
            self._handle = open(self.path, "a")
        fcntl.flock(self._handle, fcntl.LOCK_EX)
        self.held = True

    def give_back(self) -> None:
        if self.held:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self.held = False

    def close(self) -> None:
        self.give_back()
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class DriverStatement:
    """A Core statement compiled once for one dialect and run straight on a DBAPI cursor, for
    the send loop's per-message writes: SQLAlchemy's per-execution work (execution context,
    parameter processing) cost more than the SQLite write itself. The values are converted by
    the same bind processors SQLAlchemy would use (its dialect-specific column types)."""

    __slots__ = ("sql", "positional", "names", "fixed", "convert")

    def __init__(self, statement, dialect):
        compiled = statement.compile(dialect=dialect)
        # what only SQLAlchemy's execution would do: onupdate/default values computed per call,
        # IN lists expanded, renamed binds. None of the send loop's statements has them.
        for what in ("insert_prefetch", "update_prefetch", "post_compile_params", "literal_execute_params",
                     "escaped_bind_names"):
            if getattr(compiled, what, None):
                raise ValueError(f"DriverStatement cannot run a statement with {what}: {compiled.string[:80]}")
        self.sql = compiled.string
        self.positional = compiled.positional          # SQLite's "?" / psycopg's "%(name)s"
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        self.names = list(compiled.positiontup) if self.positional else list(by_name)
        self.fixed = {}      # SQL name -> value, for the statement's literals (status == 'sending')
        self.convert = []    # (SQL name, parameter key, bind processor or None)
        for name, bind in by_name.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                self.convert.append((name, bind.key, process))
            else:
                value = bind.effective_value
                self.fixed[name] = process(value) if process else value

    def params(self, values: dict):
        out = dict(self.fixed)
        for name, key, process in self.convert:
            value = values[key]
            out[name] = process(value) if process else value
        return tuple([out[n] for n in self.names]) if self.positional else out


# any fixed number: every digest process on a PostgreSQL database takes the same advisory lock
_PG_MIGRATION_LOCK = 0x6469676573


def upgrade(url: str) -> None:
    engine = get_engine(url, migrate=False)
    sqlite = engine.dialect.name == "sqlite"
    on_file = sqlite and url.startswith("sqlite:///") and ":memory:" not in url
    with _sqlite_migration_lock(url) if on_file else nullcontext(), engine.connect() as conn:
        if sqlite:
            # A migration that rebuilds a table (Alembic batch mode) drops the old one; with foreign
            # keys on, that drop cascades to the rows referencing it. SQLite's recipe: keys off (only
            # possible outside a transaction), migrate, check the keys, keys on again.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                if engine.dialect.name == "postgresql":  # released at commit; the next one finds head
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError(f"migrating {url} broke a foreign key; nothing was changed")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def get_engine(url: str | None = None, *, migrate: bool = True) -> Engine:
    url = url or get_settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
    if migrate and url not in _upgraded:
        with _lock:
            if url not in _upgraded:
                upgrade(url)
                _upgraded.add(url)
    return engine


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    url = (settings or get_settings()).database_url
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = session_factory(settings)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def current_revision(url: str) -> str | None:
    engine = get_engine(url, migrate=False)
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _upgraded.clear()
