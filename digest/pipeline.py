"""The daily pipeline as one Python API: ingest → match → plan → render → deliver.

The CLI (`digest send-now`) and the scheduler (`digest run`) are thin layers over this.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Callable

from sqlalchemy import select

from digest.store.db import session_factory, session_scope
from digest.sources.ingest import IngestReport, adhoc_spec, ingest_all
from digest.store.models import Subscriber
from digest.plan import PlanOptions, PlanReport, plan_edition
from digest.topics.personal import PersonalOrder
from digest.delivery.send import SendReport, send_pending
from digest.email.builder import ContentBuilder
from digest.store.settings import Settings
from digest.sources.config import SourceSpec, load_sources
from digest.topics.config import TopicConfig
from digest.topics.current import NoValidTopicsError, current_topics  # noqa: F401 (public API)

log = logging.getLogger("digest.pipeline")


class PipelineError(Exception):
    """A user-facing problem that stops the pipeline (one clear line)."""


def configured_sources(settings: Settings, name: str | None = None) -> list[SourceSpec]:
    specs = load_sources(settings.sources_file)
    if name is not None:
        specs = [s for s in specs if s.name == name]
        if not specs:
            raise PipelineError(f"no source named {name!r} in {settings.sources_file}")
        specs[0].enabled = True
    return specs


def run_ingest(settings: Settings, *, source: str | None = None, locations: list[str] | None = None,
               kind: str = "auto", on_progress: Callable[[str], None] | None = None,
               store_lock=None) -> list[IngestReport]:
    specs = [adhoc_spec(loc, kind) for loc in locations] if locations else configured_sources(settings, source)
    return ingest_all(settings, specs, on_progress=on_progress, store_lock=store_lock)


_matchers: dict[tuple[str, str], object] = {}


def matcher_for(settings: Settings, config: TopicConfig):
    """The configured matcher, built once per (config, kind): the semantic one loads a model."""
    from digest.topics.matchers import make_matcher

    key = (config.version, settings.matcher)
    if key not in _matchers:
        try:
            _matchers.clear()
            _matchers[key] = make_matcher(config, settings.matcher)
        except ValueError as exc:
            raise PipelineError(f"DIGEST_MATCHER: {exc}") from None
        except ImportError as exc:  # the optional semantic packages are missing
            raise PipelineError(str(exc)) from None
    return _matchers[key]


def match_version(settings: Settings, config: TopicConfig) -> str:
    # switching matchers must re-match stored papers, so the kind is part of the version
    if settings.matcher == "lexical":
        return config.version
    return hashlib.sha256(f"{config.version}:{settings.matcher}".encode()).hexdigest()


def run_match(settings: Settings, config: TopicConfig) -> int:
    from digest.topics.learn_store import learned_matcher, versioned
    from digest.topics.store import match_pending

    base = matcher_for(settings, config)
    with session_scope(settings) as session:
        # the newest learned model, if any; a new model changes the version, so pending papers are re-scored
        matcher, tag = learned_matcher(session, config, base, settings.matcher)
        return match_pending(session, config, matcher, lookback_days=settings.lookback_days,
                             version=versioned(match_version(settings, config), tag))


def run_learn(settings: Settings, config: TopicConfig, *, force: bool = False):
    """Retrain the relevance model from stored votes and examples (a no-op when they did not
    change), then re-score the pending papers with it. Returns the LearnResult."""
    from digest.topics.learn_store import learn

    with session_scope(settings) as session:
        result = learn(session, config, matcher_for(settings, config), settings.matcher, force=force)
    run_match(settings, config)
    return result


def plan_options(settings: Settings) -> PlanOptions:
    return PlanOptions(lookback_days=settings.lookback_days, section_cap=settings.section_cap,
                       weekly_section_cap=settings.weekly_section_cap, trending_count=settings.trending_count,
                       send_empty=settings.send_empty)


def subscriber_ids_for(settings: Settings, email: str | None) -> list[int] | None:
    if email is None:
        return None
    from digest.subscribers import get_by_email

    with session_scope(settings) as session:
        sub = get_by_email(session, email)
        if sub is None:
            raise PipelineError(f"no subscriber {email!r}")
        return [sub.id]


@dataclass
class RunReport:
    ingest: list[IngestReport] = field(default_factory=list)
    matched: int = 0
    plan: PlanReport | None = None
    send: SendReport | None = None
    topics_error: str | None = None
    previews: list[str] = field(default_factory=list)  # dry-run subjects

    @property
    def failed(self) -> int:
        return self.send.failed if self.send else 0


def send_now(settings: Settings, *, ingest: bool = True, dry_run: bool = False, subscriber: str | None = None,
             edition: date | None = None, now: datetime | None = None, stop: threading.Event | None = None,
             on_progress: Callable[[str], None] | None = None, on_sent: Callable[[int], None] | None = None,
             backend=None) -> RunReport:
    """Run the pipeline once, now. `edition` names the edition (its date and idempotency key).
    A dry run (`dry_run`, or DIGEST_DELIVERY=dry-run) plans and renders but records nothing."""
    from digest.delivery.backends import open_backend
    from digest.email.render import Renderer
    from digest.store.delivery_url import parse_delivery

    dry_run = dry_run or (backend is None and parse_delivery(settings.delivery)[0] == "dry-run")
    report = RunReport()
    config, report.topics_error = current_topics(settings)
    if ingest:
        report.ingest = run_ingest(settings, on_progress=on_progress)
    if on_progress:
        on_progress("matching")
    report.matched = run_match(settings, config)
    ids = subscriber_ids_for(settings, subscriber)
    if on_progress:
        on_progress("planning")
    names = {t.id: t.name for t in config.topics}
    make = session_factory(settings)
    with make() as session:
        report.plan = plan_edition(session, config.ids, plan_options(settings), edition=edition, now=now,
                                   subscriber_ids=ids, dry_run=dry_run, personal=PersonalOrder())
    renderer = Renderer(settings)
    if dry_run:
        report.send = SendReport()
        builder = ContentBuilder(settings, names)
        with make() as session:
            from digest.email.content import Recipient

            for sid, ed, items in report.plan.dry:
                builder.load(session, {i.paper_id for i in items})
                sub = session.get(Subscriber, sid)
                content = builder.build(Recipient(sid, sub.email, sub.name, sub.timezone, sub.link_secret), ed, items,
                                        weekly=sub.frequency == "weekly", order=sub.topics)
                rendered = renderer.render(content) if not content.is_empty else renderer.render_nothing_new(content)
                report.previews.append(f"{sub.email}: {rendered.subject}")
        return report
    if on_progress:
        on_progress("sending")
    editions = {edition} if edition else None
    own_backend = backend is None
    if own_backend:
        backend = open_backend(settings)
        backend.__enter__()
    try:
        report.send = send_pending(settings, make, backend, renderer, names, editions=editions,
                                   subscriber_ids=ids, stop=stop, on_sent=on_sent)
    finally:
        if own_backend:
            backend.__exit__(None, None, None)
    return report


def pending_count(settings: Settings, editions: set[date] | None = None) -> int:
    from sqlalchemy import func

    from digest.store.models import Digest, open_digest

    with session_scope(settings) as session:
        q = select(func.count()).select_from(Digest).where(open_digest())
        if editions:
            q = q.where(Digest.edition.in_(editions))
        return session.scalar(q) or 0
