"""Reading pages of `digest web`: every paper of one digest, and what a topic caught.

    GET /digest/{token}        one digest, every section in full (also the papers the email
                               only counted in "+ N more"), from its ledger rows: what it
                               carried, never re-planned. The token (purpose "digest") names
                               the digests row; the page shows no subscriber data. Each paper
                               of a topic section has "Relevant" / "Not for me" buttons (the
                               reader's vote pressed). ?vote=<paper>&topic=<section>&v=yes|no
                               (the email's vote links) adds a box with one button to confirm:
                               a GET never records anything (mail scanners open every link).
                               A paper of a topic section also has "Belongs in: <other topic>
                               [Move]" (also in a "Not for me" box); the reader's move is shown.
    POST /digest/{token}       records a vote (paper, topic, v, optional other: the topic the
                               paper belongs in; CSRF checked, rate-limited per digest), then
                               redirects (303) to ?noted=...#vote: the page with "Thanks,
                               noted" at that paper.
    GET /topics/{id}           public: a topic's papers of the last TOPIC_DAYS days, by day
    GET /topics/{id}.atom      the same as an Atom feed (digest/web/feeds.py)

Responses carry an ETag (hash of the body) and Last-Modified (newest paper or digest change)
and answer a matching If-None-Match / If-Modified-Since with 304. Token pages are
`private, no-cache` (revalidated, never shared); topic pages are public for a few minutes.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from email.utils import parseaddr
from typing import Callable
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digest import clock, tokens
from digest.email.builder import section_name, section_order
from digest.plan import ASK
from digest.email.display import clean_text, format_date, safe_url
from digest.email.views import section_anchor as anchor
from digest.email.why import why_line
from digest.store.db import session_scope
from digest.store.ledger import items_of
from digest.store.models import Digest, Paper, Subscriber, TopicMatch
from digest.store.settings import Settings
from digest.email.vote_links import ANCHOR, PAPER, TOPIC, VALUE, labels as vote_labels, votable
from digest.web.ratelimit import RateLimiter
from digest.web.votes import VoteRefused, cast_vote, reader_votes, topic_of

TOPIC_DAYS = 14            # how far back a topic page and feed look
TOPIC_MAX = 200            # papers on a topic page / entries in its feed
ABSTRACT_MAX = 6000        # characters of abstract on a page (the email trims to 360)
AUTHORS_SHOWN = 12
VOTE_LIMIT = 300           # votes per digest per VOTE_WINDOW (a reader rarely rates 50)
VOTE_WINDOW = 3600


@dataclass
class PaperRow:
    """One paper as the pages show it: cleaned text, checked links."""
    paper_id: str
    title: str
    url: str | None
    authors: str
    category: str
    date: str
    upvotes: int | None
    abstract: str
    why: str
    pdf_url: str | None
    hf_url: str | None
    code_url: str | None
    author_names: list[str] = field(default_factory=list)
    # the digest page's vote buttons (empty labels: none)
    section: str = ""
    topic_name: str = ""
    vote_labels: tuple = ()
    vote: bool | None = None    # the reader's vote on this paper in this topic
    ask: str = ""               # "yes" / "no": the email link asks to confirm this vote
    noted: bool = False         # the vote was just recorded
    # "Belongs in <other topic>": the select's options (HTML; empty: no move form), its element
    # id, and the reader's move (the other topic's name)
    move_options: str = ""
    move_id: str = ""
    moved: str = ""


@dataclass
class PageSection:
    anchor: str
    name: str
    papers: list[PaperRow] = field(default_factory=list)
    shown_in_email: int = 0


def paper_row(item, matched: list[str] | None = None) -> PaperRow:
    authors = [a for a in (clean_text(a, 80) for a in (item.authors or [])[:AUTHORS_SHOWN]) if a]
    text = ", ".join(authors)
    if len(item.authors or []) > AUTHORS_SHOWN:
        text += " et al."
    up = item.hf_upvotes
    return PaperRow(
        paper_id=item.paper_id, title=clean_text(item.title, 300) or "(untitled)", url=safe_url(item.url),
        authors=text, category=clean_text(item.primary_category, 32), date=format_date(item.published),
        upvotes=up if type(up) is int and up >= 0 else None, abstract=clean_text(item.abstract, ABSTRACT_MAX),
        why=why_line([clean_text(m, 60) for m in (matched if matched is not None else item.matched)[:5]]),
        pdf_url=safe_url(item.pdf_url), hf_url=safe_url(item.hf_url), code_url=safe_url(item.code_url),
        author_names=authors)


def _aware(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


# ------------------------------------------------------------------------------ data


def digest_page(settings: Settings, digest_id: int, names: dict[str, str]) -> dict | None:
    """What the page of digest ``digest_id`` shows, or None when there is no such digest: its
    ledger rows with their papers and match reasons (one query, no ORM objects: a page holds
    hundreds of papers), in the email's order: the reader's topics, Trending last."""
    with session_scope(settings) as session:
        row = session.execute(select(Digest.id, Digest.subscriber_id, Digest.edition)
                              .where(Digest.id == digest_id)).first()
        if row is None:
            return None
        sub = session.execute(select(Subscriber.topics, Subscriber.frequency)
                              .where(Subscriber.id == row.subscriber_id)).first()
        items = items_of(session, [digest_id]).get(digest_id, [])
        ids = sorted({it.paper_id for it in items})
        papers, matched = {}, {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            papers.update((p.id, p) for p in session.execute(
                select(Paper.id, Paper.title, Paper.abs_url, Paper.hf_url, Paper.authors, Paper.abstract,
                       Paper.primary_category, Paper.published_at, Paper.first_seen_at, Paper.hf_upvotes,
                       Paper.pdf_url, Paper.code_url).where(Paper.id.in_(chunk))))
            matched.update(((m.paper_id, m.topic_id), m.matched) for m in session.execute(
                select(TopicMatch.paper_id, TopicMatch.topic_id, TopicMatch.matched).where(TopicMatch.paper_id.in_(chunk))))
    order = list(sub.topics or []) if sub is not None and isinstance(sub.topics, list) else []
    rank = {t: i for i, t in enumerate(dict.fromkeys(order))}
    items = sorted((it for it in items if it.paper_id in papers),   # the email's order
                   key=lambda it: section_order(it.section, it.position, it.paper_id, rank))
    sections: dict[str, PageSection] = {}
    for it in items:
        sec = sections.get(it.section)
        if sec is None:
            name = section_name(it.section, names)
            sec = sections[it.section] = PageSection(anchor(it.section), clean_text(name, 80) or "Papers")
        sec.shown_in_email += bool(it.shown)
        r = papers[it.paper_id]
        item = _Item(r.id, r.title, r.abs_url or r.hf_url, r.authors, r.abstract, r.primary_category,
                     r.published_at or r.first_seen_at, r.hf_upvotes, r.pdf_url, r.hf_url, r.code_url)
        why = matched.get((it.paper_id, it.section))
        shown = paper_row(item, list(why or []) if isinstance(why, list) else [])
        if votable(it.section):
            shown.section, shown.vote_labels = it.section, vote_labels(it.section)
            shown.topic_name = clean_text(names.get(topic_of(it.section), topic_of(it.section)), 80)
        sec.papers.append(shown)
    weekly = sub is not None and sub.frequency == "weekly"
    return {"sections": list(sections.values()), "edition": row.edition, "weekly": weekly,
            # "Is this <topic>?" papers are questions, not part of the count (as in the email)
            "total": sum(len(s.papers) for t, s in sections.items() if not t.startswith(ASK))}


@dataclass
class _Item:
    """The fields of a paper paper_row reads (as digest.email.content.PaperItem names them)."""
    paper_id: str
    title: str
    url: str | None
    authors: list | None
    abstract: str | None
    primary_category: str | None
    published: datetime | None
    hf_upvotes: int | None
    pdf_url: str | None
    hf_url: str | None
    code_url: str | None
    matched: list = field(default_factory=list)


_BOOT = secrets.token_hex(6)     # a new process may serve new templates: its ETags differ


def digest_stamp(settings: Settings, digest_id: int, names: dict[str, str],
                 token: tokens.Token | None = None) -> tuple[str, datetime | None] | None | bool:
    """The page's ETag and Last-Modified from what it is made of (the digest row, its papers'
    last change, the reader's topic order, the topic names), without building it; None when
    there is no such digest, False when ``token`` was not made for its subscriber (an old link
    of a deleted or rotated subscriber). Lets a revalidation be answered 304 for the price of
    two queries."""
    with session_scope(settings) as session:
        row = session.execute(select(Digest.planned_at, Digest.sent_at, Subscriber.topics, Subscriber.frequency,
                                     Subscriber.link_secret)
                              .join(Subscriber, Subscriber.id == Digest.subscriber_id, isouter=True)
                              .where(Digest.id == digest_id)).first()
        if row is None:
            return None
        if token is not None and not token.bound_to(row.link_secret):
            return False
        ids = sorted({it.paper_id for it in items_of(session, [digest_id]).get(digest_id, [])})
        changed = max((_aware(t) for k in range(0, len(ids), 500) for t in session.scalars(
            select(Paper.updated_at).where(Paper.id.in_(ids[k:k + 500]))) if t is not None), default=None)
    stamps = [t for t in (_aware(row.planned_at), _aware(row.sent_at), _aware(changed)) if t is not None]
    seed = repr((_BOOT, digest_id, stamps, row.topics, row.frequency, sorted(names.items())))
    return '"' + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32] + '"', max(stamps) if stamps else None


def topic_papers(settings: Settings, topic_id: str, *, days: int = TOPIC_DAYS,
                 limit: int = TOPIC_MAX) -> tuple[list[tuple[datetime, datetime, PaperRow]], datetime | None]:
    """The topic's announced papers first seen in the last ``days`` days, newest first:
    (first seen, last updated, row) each, and the newest change."""
    since = clock.now() - timedelta(days=days)
    with session_scope(settings) as session:
        rows = session.execute(
            select(Paper.id, Paper.title, Paper.abs_url, Paper.hf_url, Paper.authors, Paper.abstract,
                   Paper.primary_category, Paper.published_at, Paper.first_seen_at, Paper.updated_at,
                   Paper.hf_upvotes, Paper.pdf_url, Paper.code_url, TopicMatch.matched)
            .join(TopicMatch, TopicMatch.paper_id == Paper.id)
            .where(TopicMatch.topic_id == topic_id, Paper.is_new.is_(True), Paper.first_seen_at > since)
            .order_by(Paper.first_seen_at.desc(), Paper.id).limit(limit)).all()
    out = []
    for p in rows:
        item = _Item(p.id, p.title, p.abs_url or p.hf_url, p.authors, p.abstract, p.primary_category,
                     p.published_at or p.first_seen_at, p.hf_upvotes, p.pdf_url, p.hf_url, p.code_url)
        matched = list(p.matched) if isinstance(p.matched, list) else []
        out.append((_aware(p.first_seen_at), _aware(p.updated_at) or _aware(p.first_seen_at), paper_row(item, matched)))
    newest = max((u for _, u, _ in out), default=None)
    return out, newest


def add_moves(sections: list[PageSection], names: dict[str, str], moves: dict[tuple[str, str], str]) -> None:
    """The "Belongs in" options of every paper in a topic section (the config's other topics, by
    name) and the reader's moves. The options are escaped HTML made once per section and shared
    by its papers: 200 papers x 50 topics would be 10,000 template loop turns."""
    shown = {tid: clean_text(name, 80) or tid for tid, name in names.items() if tid != "trending"}

    def options(choices, selected=None) -> Markup:
        return Markup("".join(f'<option value="{escape(tid)}"{" selected" if tid == selected else ""}>{escape(name)}</option>'
                              for tid, name in choices))

    for n, sec in enumerate(sections):
        choices = plain = None
        for k, p in enumerate(sec.papers):
            if not p.section or p.section.startswith(ASK):
                continue
            if choices is None:
                choices = [(tid, name) for tid, name in shown.items() if tid != p.section]
                plain = options(choices)
            if not choices:
                continue
            p.move_options, p.move_id = plain, f"mv-{n}-{k}"
            other = moves.get((p.paper_id, p.section))
            if other:
                p.moved = shown.get(other) or clean_text(other, 80)
                p.move_options = options(choices, other)


# ------------------------------------------------------------------------------ HTTP


def validators(etag: str, last_modified: datetime | None, cache_control: str) -> dict:
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if last_modified is not None:
        last_modified = last_modified.replace(microsecond=0)
        headers["Last-Modified"] = format_datetime(last_modified.astimezone(timezone.utc), usegmt=True)
    return headers


def not_modified(request: Request, etag: str, last_modified: datetime | None) -> bool:
    """True when the client's copy (If-None-Match, else If-Modified-Since) is current."""
    match = request.headers.get("if-none-match")
    if match is not None:
        tags = [t.strip().removeprefix("W/") for t in match.split(",")]
        return etag in tags or "*" in tags
    if last_modified is not None and request.headers.get("if-modified-since"):
        try:
            since = parsedate_to_datetime(request.headers["if-modified-since"])
        except (TypeError, ValueError, IndexError):
            return False
        return since is not None and since.tzinfo is not None and last_modified.replace(microsecond=0) <= since
    return False


def cached(request: Request, body: bytes, media_type: str, last_modified: datetime | None,
           cache_control: str, status: int = 200, etag: str | None = None) -> Response:
    """``body`` with validators (ETag: ``etag``, or a hash of the body), or 304 when the
    client's copy is current."""
    etag = etag or '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = validators(etag, last_modified, cache_control)
    if status == 200 and not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def page_routes(settings: Settings, topics: Callable[[], list], forms=None) -> list[Route]:
    """The routes of the reading pages; ``topics()`` gives the current topics (id, name, description).
    ``forms`` (digest.web.app.Forms: CSRF token and check) lets the digest page take votes."""
    from digest.web.feeds import topic_feed

    env = Environment(loader=FileSystemLoader(str(settings.templates_dir / "web")),
                      autoescape=select_autoescape(["html"], default=True), trim_blocks=True, lstrip_blocks=True)
    site_name = parseaddr(settings.from_addr)[0] or "Paper Digest"
    vote_limit = RateLimiter(VOTE_LIMIT, VOTE_WINDOW)

    def names() -> dict[str, str]:
        found = {t.id: t.name for t in topics()}
        found["trending"] = "Trending on Hugging Face"
        return found

    def topic_ids() -> set[str]:
        return {t.id for t in topics()}

    def html(request: Request, template: str, last_modified, cache_control: str, status: int = 200,
             etag: str | None = None, **ctx):
        body = env.get_template(template).render(site_name=site_name, **ctx).encode("utf-8")
        return cached(request, body, "text/html; charset=utf-8", last_modified, cache_control, status, etag)

    def not_found(request: Request, title: str, text: str, status: int = 404) -> Response:
        return html(request, "message.html", None, "no-store", status, title=title, text=text, show_subscribe=True)

    async def digest_view(request: Request) -> Response:
        try:
            token = tokens.read_token(settings.secret_key, request.path_params["token"], "digest")
        except tokens.TokenError:
            token = None
        if token is None or token.legacy:
            return not_found(request, "This link is not valid",
                             "Use the View in browser link of the email as it is.", 400)
        if request.method == "POST":
            return await digest_vote(request, token)
        digest_id = token.subject_id
        query = request.query_params
        asked = (query.get(PAPER), query.get(TOPIC), query.get(VALUE)) if PAPER in query else None
        noted = (query.get("noted"), query.get(TOPIC)) if "noted" in query else None
        topic_names = await run_in_threadpool(names)
        stamp = await run_in_threadpool(digest_stamp, settings, digest_id, topic_names, token)
        if stamp is False:
            return not_found(request, "This link is not valid",
                             "Use the View in browser link of the email as it is.", 400)
        if stamp is None:
            return not_found(request, "This digest is no longer here", "It was deleted, or never existed.")
        etag, last_modified = stamp
        csrf, new_cookie = forms.token(request) if forms is not None else ("", None)
        votes, moves = await run_in_threadpool(reader_votes, settings, digest_id) if forms is not None else ({}, {})
        # the body also holds the form's CSRF token and the reader's votes and moves
        seed = repr((etag, csrf, sorted(votes.items()), sorted(moves.items()), request.url.query))
        etag = '"' + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32] + '"'
        cache = "private, no-cache"
        if asked or noted:
            cache = "no-store"      # a confirmation or a thank-you: never from a cache
        elif not_modified(request, etag, last_modified):
            return Response(status_code=304, headers=validators(etag, last_modified, cache))
        data = await run_in_threadpool(digest_page, settings, digest_id, topic_names)
        if data is None:
            return not_found(request, "This digest is no longer here", "It was deleted, or never existed.")
        rows = {(p.paper_id, p.section): p for s in data["sections"] for p in s.papers if p.section}
        for (paper_id, section), p in rows.items():
            p.vote = votes.get((paper_id, topic_of(section)))
        if forms is not None:
            add_moves(data["sections"], topic_names, moves)
        if asked:
            paper_id, section, value = (str(x or "") for x in asked)
            p = rows.get((paper_id, section))
            if p is None or value not in ("yes", "no"):
                return not_found(request, "This vote link is not valid",
                                 "This digest did not carry that paper in that topic: use the link of the email as it is.",
                                 400)
            p.ask = value
        if noted:
            p = rows.get((str(noted[0] or ""), str(noted[1] or "")))
            if p is not None and p.vote is not None:    # only a vote that is really stored
                p.noted = True
        kind = "Weekly digest" if data["weekly"] else "Daily digest"
        f = {"action": request.url.path, "field": forms.field, "csrf": csrf} if forms is not None else None
        response = html(request, "digest.html", last_modified, cache, etag=etag, kind=kind,
                        date=format_date(data["edition"]), sections=data["sections"], total=data["total"], f=f)
        if forms is not None:
            forms.set_cookie(response, new_cookie)
        return response

    async def digest_vote(request: Request, token: tokens.Token) -> Response:
        """The vote buttons' POST: record, then show the page with "Thanks, noted" (303)."""
        if forms is None:
            return not_found(request, "Request not allowed", "This request is not allowed.", 405)
        form, ok = await forms.check(request)
        if not ok:
            return not_found(request, "This form has expired",
                             "The page was open too long, or cookies are blocked. Go back, reload the page and try again.",
                             403)
        if not vote_limit.hit(str(token.subject_id)):
            return not_found(request, "Too many requests", "Please wait an hour and try again.", 429)
        try:
            known_ids = await run_in_threadpool(topic_ids) if form.get("other") is not None else set()
            paper_id, section = await run_in_threadpool(cast_vote, settings, token, form.get("paper"),
                                                        form.get("topic"), form.get("v"), form.get("other"), known_ids)
        except VoteRefused as exc:
            return not_found(request, "This vote was not recorded", str(exc), exc.status)
        back = f"{request.url.path}?{urlencode({'noted': paper_id, TOPIC: section}, quote_via=quote)}#{ANCHOR}"
        return RedirectResponse(back, status_code=303, headers={"Cache-Control": "no-store"})

    def known(topic_id: str):
        return next((t for t in topics() if t.id == topic_id), None)

    async def topic_view(request: Request) -> Response:
        topic = await run_in_threadpool(known, request.path_params["topic_id"])
        if topic is None:
            return not_found(request, "No such topic", "There is no topic with this name.")
        rows, newest = await run_in_threadpool(topic_papers, settings, topic.id)
        days: list[tuple[str, list[PaperRow]]] = []
        for seen, _, row in rows:
            label = format_date(seen.date() if seen else None)
            if not days or days[-1][0] != label:
                days.append((label, []))
            days[-1][1].append(row)
        return html(request, "topic.html", newest, "public, max-age=300", topic=topic, days=days,
                    count=len(rows), window=TOPIC_DAYS, feed_url=f"/topics/{topic.id}.atom")

    async def topic_atom(request: Request) -> Response:
        topic = await run_in_threadpool(known, request.path_params["topic_id"])
        if topic is None:
            return not_found(request, "No such topic", "There is no topic with this name.")
        rows, newest = await run_in_threadpool(topic_papers, settings, topic.id)
        body = topic_feed(settings, topic, rows, newest, site_name)
        return cached(request, body, "application/atom+xml; charset=utf-8", newest, "public, max-age=300")

    return [
        Route("/digest/{token}", digest_view, methods=["GET", "POST"]),
        Route("/topics/{topic_id}.atom", topic_atom, methods=["GET"]),
        Route("/topics/{topic_id}", topic_view, methods=["GET"]),
    ]
