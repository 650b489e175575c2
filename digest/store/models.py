"""Database tables (SQLAlchemy 2 typed models). Portable: SQLite and PostgreSQL."""
from __future__ import annotations

import secrets
from datetime import date, datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator
from digest import clock


def utcnow() -> datetime:
    return clock.now()


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class Paper(Base):
    """One row per paper, whatever the number of sources that list it."""

    __tablename__ = "papers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # arXiv id without version, or "hf:..."/"x:..."
    arxiv_id: Mapped[str | None] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list] = mapped_column(JSON, default=list)
    categories: Mapped[list] = mapped_column(JSON, default=list)  # primary first
    primary_category: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int | None] = mapped_column(Integer)
    announce_type: Mapped[str | None] = mapped_column(String(16))
    # True when the paper arrived as something new (arXiv new/cross, HF daily list); a paper first
    # seen as a replacement is stored but never announced.
    is_new: Mapped[bool] = mapped_column(Boolean, default=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    abs_url: Mapped[str | None] = mapped_column(Text)
    pdf_url: Mapped[str | None] = mapped_column(Text)
    hf_url: Mapped[str | None] = mapped_column(Text)
    code_url: Mapped[str | None] = mapped_column(Text)
    project_url: Mapped[str | None] = mapped_column(Text)
    doi: Mapped[str | None] = mapped_column(String(255))
    journal_ref: Mapped[str | None] = mapped_column(Text)
    hf_upvotes: Mapped[int | None] = mapped_column(Integer)
    hf_listed_on: Mapped[date | None] = mapped_column(Date, index=True)
    ai_keywords: Mapped[list | None] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    matched_version: Mapped[str | None] = mapped_column(String(64))  # topics-config hash last matched with


class PaperListing(Base):
    """Which source listed a paper, when, and as what."""

    __tablename__ = "paper_listings"
    __table_args__ = (UniqueConstraint("paper_id", "source", "listed_on", name="uq_listing"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(128))
    listed_on: Mapped[date] = mapped_column(Date)
    announce_type: Mapped[str | None] = mapped_column(String(16))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SourceState(Base):
    """Per-source HTTP cache validators, for conditional GET."""

    __tablename__ = "source_state"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    url: Mapped[str] = mapped_column(Text, default="")
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str | None] = mapped_column(String(64))
    last_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IngestRun(Base):
    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(128), index=True)
    location: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="running")  # ok | warning | failed | not-modified
    new: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    skipped_reasons: Mapped[dict] = mapped_column(JSON, default=dict)
    errors: Mapped[list] = mapped_column(JSON, default=list)


class TopicMatch(Base):
    """A (paper, topic) assignment with its score and the evidence that produced it."""

    __tablename__ = "topic_matches"

    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True)
    topic_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    score: Mapped[float] = mapped_column(Float)
    matched: Mapped[list] = mapped_column(JSON, default=list)
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def new_link_secret() -> str:
    return secrets.token_urlsafe(24)


class Subscriber(Base):
    __tablename__ = "subscribers"
    # SQLite would otherwise hand a deleted subscriber's id to the next one (max(rowid) + 1).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    topics: Mapped[list] = mapped_column(JSON, default=list)  # ordered topic ids
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)  # active|unsubscribed|bounced|pending|paused
    frequency: Mapped[str] = mapped_column(String(8), default="daily")  # daily | weekly
    weekly_day: Mapped[int] = mapped_column(Integer, default=0)  # 0 = Monday
    trending: Mapped[bool] = mapped_column(Boolean, default=False)
    send_time: Mapped[str | None] = mapped_column(String(5))  # HH:MM local; None = settings.send_time
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())     # when status last changed
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # asked to receive it (form, or admin add)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # double opt-in confirmed
    # Every link carries a tag of this secret (digest/tokens.py): a new secret kills all old links.
    link_secret: Mapped[str] = mapped_column(String(64), default=new_link_secret)
    # Created before links were bound: its old (version 1) unsubscribe links still unsubscribe.
    legacy_links: Mapped[bool] = mapped_column(Boolean, default=False)


# Digests a sender or the scheduler still has to act on. Only these are in the (status, id)
# index: the sent ones (nearly all rows) never need it. SQLite uses a partial index only for a
# query that repeats its condition word for word, hence one text for both (``open_digest()``).
OPEN_STATUSES = ("planned", "sending", "deferred")
_OPEN_SQL = "digests.status IN ('planned', 'sending', 'deferred')"


def open_digest():
    """The partial index's condition, to AND into every query on open digests by status."""
    return text(_OPEN_SQL)


class Digest(Base):
    """The send ledger: exactly one row per (subscriber, edition)."""

    __tablename__ = "digests"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "edition", name="uq_digest_subscriber_edition"),
        Index("ix_digests_edition_status", "edition", "status"),
        # the claim query: status = ? ORDER BY id LIMIT n, over open digests only
        Index("ix_digests_open", "status", "id", sqlite_where=text(_OPEN_SQL.replace("digests.", "")),
              postgresql_where=text(_OPEN_SQL.replace("digests.", ""))),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # no index of its own: the unique (subscriber_id, edition) one serves lookups by subscriber
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    edition: Mapped[date] = mapped_column(Date)
    # planned|sending|sent|deferred|failed|skipped|expired|exhausted (attempts used up)|
    # unconfirmed (sent, the server never answered; not sent again)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # sends whose outcome is unknown: message data sent and no reply, or the sender died with
    # the message in flight (see digest/delivery/send.py); bounds the copies a reader can get
    unconfirmed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    in_flight: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    last_error: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    paper_count: Mapped[int] = mapped_column(Integer, default=0)
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # what it carried: ledger_sections ids in order ("12,7,431"); None once compacted
    sections: Mapped[str | None] = mapped_column(Text)


class LedgerSection(Base):
    """One distinct section some digest carried (digest/store/ledger.py): its papers in order,
    space-separated, the first ``shown`` of them shown, the rest counted as "N more"."""

    __tablename__ = "ledger_sections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary(16), unique=True)  # of (section, shown, papers)
    section: Mapped[str] = mapped_column(String(64))
    shown: Mapped[int] = mapped_column(Integer)
    papers: Mapped[str] = mapped_column(Text)
    used_on: Mapped[date] = mapped_column(Date)  # last planned into a digest: compaction keeps it


class Lock(Base):
    """A named lock held in the database with an expiry (scheduler, sender)."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AppState(Base):
    """Small key/value facts: last valid topics config, last errors, scheduler status."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Vote(Base):
    """A reader's word on a paper in a section: relevant or not (one per subscriber, paper and
    topic; a new vote replaces the old one). ``other_topic``: "this belongs in <other topic>"."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("subscriber_id", "paper_id", "topic_id", name="uq_vote"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), index=True)
    topic_id: Mapped[str] = mapped_column(String(64), index=True)
    relevant: Mapped[bool] = mapped_column(Boolean)
    other_topic: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TopicModel(Base):
    """A learned relevance model (digest/topics/learn.py), one row per version; the newest is used."""

    __tablename__ = "topic_models"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    config_version: Mapped[str] = mapped_column(String(64))
    matcher: Mapped[str] = mapped_column(String(32), default="lexical")
    labels_hash: Mapped[str] = mapped_column(String(64))
    labels: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[dict | None] = mapped_column(JSON)  # None: too few labels, the plain matcher


class NearMatch(Base):
    """A paper's best topic just below the threshold: the planner may ask readers "Is this
    <topic>?" about it (at most one paper per section), so recall can be learned too."""

    __tablename__ = "near_matches"

    paper_id: Mapped[str] = mapped_column(ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True)
    topic_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    score: Mapped[float] = mapped_column(Float)
    matched: Mapped[list] = mapped_column(JSON, default=list)
