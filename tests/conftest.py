"""Shared fixtures: an isolated settings object with a real database per test.

The suite runs against SQLite (default) or PostgreSQL: `DIGEST_TEST_DB=postgresql` starts a
throw-away server for the session (tests/pg_server.py) and gives every test a fresh database,
cloned from one that is already migrated. Tests of SQLite-only behaviour carry the
`sqlite_only` mark, tests of PostgreSQL-only behaviour `postgresql_only`.
"""
from __future__ import annotations

import itertools
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from digest.store.db import dispose_all
from digest.store.settings import Settings, reset_settings_cache

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"

TEST_TOPICS = """\
topics:
  - id: medical-segmentation
    name: Medical image segmentation
    description: Segmenting organs, tumours and lesions in CT, MRI and ultrasound images.
    keywords: [medical image segmentation, tumor segmentation, organ segmentation, U-Net]
  - id: vision-language
    name: Vision-language models
    description: Multimodal large language models, image-text models and visual question answering.
    keywords: [vision-language, multimodal large language model, visual question answering, CLIP]
  - id: efficient-attention
    name: Efficient attention
    description: Sparse and linear attention, long-context transformers and state-space models.
    keywords: [efficient attention, sparse attention, linear attention, long context, state space model]
"""


TEST_DB = os.environ.get("DIGEST_TEST_DB", "sqlite").strip().lower() or "sqlite"
if TEST_DB not in ("sqlite", "postgresql"):
    raise SystemExit(f"DIGEST_TEST_DB must be sqlite or postgresql, not {TEST_DB!r}")
_db_numbers = itertools.count(1)


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: exercises SQLite itself; skipped on PostgreSQL runs")
    config.addinivalue_line("markers", "postgresql_only: needs PostgreSQL; skipped on SQLite runs")


def pytest_report_header(config):
    return f"database under test: {TEST_DB} (set DIGEST_TEST_DB=sqlite|postgresql)"


def pytest_collection_modifyitems(config, items):
    skip = "postgresql_only" if TEST_DB == "sqlite" else "sqlite_only"
    marker = pytest.mark.skip(reason=f"{skip.replace('_only', '')}-only test; this run is on {TEST_DB}")
    for item in items:
        if skip in item.keywords:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL server (only on PostgreSQL runs) with a migrated template."""
    if TEST_DB != "postgresql":
        pytest.skip("PostgreSQL runs only (DIGEST_TEST_DB=postgresql)")
    from digest.store.db import upgrade
    from tests.pg_server import TempPostgres

    server = TempPostgres().start()
    try:
        upgrade(server.create_database("digest_template"))
        dispose_all()   # a template must have no open connections
        yield server
    finally:
        dispose_all()
        server.stop()


@pytest.fixture
def db_url(request, tmp_path):
    """A fresh, empty (migrated) database for one test, on the database under test (dropped after)."""
    if TEST_DB == "sqlite":
        yield f"sqlite:///{tmp_path}/digest.db"
        return
    server = request.getfixturevalue("postgres")
    name = f"t{next(_db_numbers)}"
    url = server.create_database(name, template="digest_template")
    yield url
    dispose_all()   # the test's engines hold connections to it
    server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("DIGEST_"):
            monkeypatch.delenv(key)
    reset_settings_cache()
    yield
    reset_settings_cache()
    dispose_all()


@pytest.fixture
def config_dir(tmp_path) -> Path:
    d = tmp_path / "config"
    d.mkdir()
    (d / "topics.yaml").write_text(TEST_TOPICS, encoding="utf-8")
    (d / "sources.yaml").write_text("sources: []\n", encoding="utf-8")
    return d


@pytest.fixture
def settings(tmp_path, config_dir, db_url, monkeypatch) -> Settings:
    """Settings for one test; also exported as DIGEST_* so the CLI sees the same."""
    env = {
        "DIGEST_DATABASE_URL": db_url,
        "DIGEST_CONFIG_DIR": str(config_dir),
        "DIGEST_DATA_DIR": str(tmp_path / "var"),
        "DIGEST_DELIVERY": f"file://{tmp_path}/outbox",
        "DIGEST_SECRET_KEY": "test-secret",
        "DIGEST_PUBLIC_URL": "https://digest.example.org",
        "DIGEST_FROM": "Paper Digest <digest@example.org>",
        "DIGEST_HTTP_BACKOFF": "0.01",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings_cache()
    return Settings()


def _month_end(when: datetime) -> datetime:
    first_of_next = (when.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first_of_next - timedelta(seconds=1)


_REAL_NOW = datetime.now(timezone.utc).replace(microsecond=0)
# The clocks every clock-sensitive test runs at: the real one, and instants where date and
# time arithmetic usually breaks. All but the fixed DST instants move with the real date.
CLOCKS = [
    pytest.param(None, id="system-clock"),
    pytest.param(_REAL_NOW + timedelta(days=45), id="plus-45-days"),
    pytest.param(_month_end(_REAL_NOW), id="month-end-23.59.59"),
    pytest.param(datetime(2027, 3, 28, 0, 59, 59, tzinfo=timezone.utc), id="eu-dst-start"),
    pytest.param(datetime(2026, 11, 1, 5, 59, 59, tzinfo=timezone.utc), id="us-dst-end"),
]


@pytest.fixture(params=CLOCKS)
def clock(request, monkeypatch) -> datetime:
    """Run the test at each of CLOCKS: sets DIGEST_NOW (the app's clock, inherited by the
    CLI subprocesses the test starts) and returns that instant. Fixtures built from it are
    relative to it, never to a hard-coded day."""
    from digest import clock as app_clock

    when = request.param
    if when is None:
        return app_clock.now()
    monkeypatch.setenv("DIGEST_NOW", when.isoformat())
    return app_clock.now()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
