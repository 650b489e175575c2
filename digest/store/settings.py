"""Settings from DIGEST_* environment variables and an optional config/settings.toml.

Precedence: explicit keyword arguments > environment > settings file > defaults.
"""
from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "dev-insecure-secret-change-me"


class SettingsError(Exception):
    pass


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGEST_", extra="ignore", populate_by_name=True)

    database_url: str = Field("sqlite:///./var/digest.db", description="SQLAlchemy URL of the database")
    config_dir: Path = Field(Path("./config"), description="Folder holding topics.yaml, sources.yaml, settings.toml")
    data_dir: Path = Field(Path("./var"), description="Folder for the SQLite file, outbox and artifacts")
    templates_dir: Path = Field(REPO_ROOT / "templates", description="Folder of Jinja2/MJML templates")
    delivery: str = Field("file://./var/outbox", description="smtp://[user:pass@]host:port[?starttls=1|ssl=1], file://DIR or dry-run")
    from_addr: str = Field("Paper Digest <digest@localhost>", alias="DIGEST_FROM", description="From header of every digest")
    public_url: str = Field("http://localhost:8000", description="Base URL of the web pages (unsubscribe, preferences)")
    secret_key: str = Field(DEV_SECRET, description="HMAC key for unsubscribe/preferences tokens")
    unsubscribe_mailto: str | None = Field(None, description="Optional mailto address added to List-Unsubscribe")
    list_id: str = Field("paper-digest.localhost", description="List-Id identifier")
    trusted_proxies: str = Field("", description="Comma-separated proxy addresses/networks whose X-Forwarded-For `digest web` believes (default none)")

    matcher: str = Field("lexical", description="Topic matcher: lexical, or semantic (needs the 'semantic' extra)")
    lookback_days: int = Field(7, ge=1, description="How far back a first (or late) edition looks for papers")
    ledger_keep_days: int = Field(30, ge=1, description="Days of per-paper send records kept (never less than the look-back window)")
    section_cap: int = Field(10, ge=1, description="Papers shown per section in a daily edition")
    weekly_section_cap: int = Field(5, ge=1, description="Papers shown per section in a weekly edition")
    trending_count: int = Field(5, ge=0, description="Papers in the optional Trending section")
    send_empty: bool = Field(False, description="Send a short 'nothing new today' note when there is nothing new")
    max_html_bytes: int = Field(100_000, description="Upper bound of a digest's HTML size")

    smtp_rate: float = Field(0.0, ge=0, description="Messages per second over SMTP (0 = unlimited)")
    smtp_timeout: float = Field(30.0, description="SMTP socket timeout, seconds")
    smtp_retries: int = Field(3, ge=0, description="Retries of a temporary SMTP failure")
    send_lease_seconds: int = Field(300, ge=5, description="How long a claimed digest stays reserved for one sender")
    bounce_after: int = Field(3, ge=1, description="Consecutive permanent failures before a subscriber is 'bounced'")
    worker_poll_seconds: float = Field(5.0, gt=0, description="How often an idle `digest worker` looks for planned digests")

    http_timeout: float = Field(20.0, description="HTTP timeout for feed fetches, seconds")
    http_retries: int = Field(3, ge=0, description="Retries on 5xx/timeouts when fetching a feed")
    http_backoff: float = Field(1.0, ge=0, description="First retry delay, seconds (doubles each retry)")
    max_feed_bytes: int = Field(50_000_000, description="Largest feed body accepted, bytes")
    user_agent: str = Field("digest/0.1 (+https://github.com/digest-dev/digest; paper email digest)", description="User-Agent for fetches")

    ingest_cron: str = Field("30 1 * * *", description="Cron (UTC) of scheduled ingestion")
    send_time: str = Field("08:00", description="Default local send time of an edition")
    max_edition_age_hours: int = Field(12, description="A late scheduler does not send editions older than this")
    leader_lease_seconds: float = Field(60.0, ge=1, description="Scheduler leadership lease; a standby takes over this long after the leader dies")
    scheduler_sends: bool = Field(True, description="The scheduler sends what it plans; false when `digest worker` processes send")
    log_json: bool = Field(False, description="Log one JSON object per line")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def topics_file(self) -> Path:
        return self.config_dir / "topics.yaml"

    @property
    def sources_file(self) -> Path:
        return self.config_dir / "sources.yaml"


class _TomlSource(PydanticBaseSettingsSource):
    """Reads <config_dir>/settings.toml; the config dir itself comes from the environment."""

    def __init__(self, settings_cls):
        super().__init__(settings_cls)
        cfg_dir = Path(os.environ.get("DIGEST_CONFIG_DIR", "./config"))
        path = cfg_dir / "settings.toml"
        self.data: dict[str, Any] = {}
        if path.is_file():
            try:
                raw = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"{path}: {exc}") from exc
            self.data = {k.lower(): v for k, v in raw.items()}
            if "from" in self.data:
                self.data["DIGEST_FROM"] = self.data.pop("from")

    def get_field_value(self, field, field_name):  # pragma: no cover - unused, required by ABC
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
