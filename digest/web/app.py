"""The subscriber web pages (`digest web`): subscribe with double opt-in, confirm, preferences,
unsubscribe (a page with a button, and RFC 8058 one-click POST).

    app = create_app(settings)          # a Starlette app; `digest web` serves it with uvicorn

Routes:

    GET  /subscribe                 the form: email, name, topics, timezone
    POST /subscribe                 creates/updates a `pending` subscriber, mails a confirm link
    GET  /confirm/{token}           a page with a confirm button (GET changes nothing)
    POST /confirm/{token}           pending -> active
    GET  /preferences/{token}       topics, timezone, receive/pause/unsubscribe
    POST /preferences/{token}       applies to the next edition
    GET  /unsubscribe/{token}       the footer link: a page with a button
    POST /unsubscribe/{token}       the button (with CSRF), or `List-Unsubscribe=One-Click`

and the reading pages of digest/web/pages.py (a digest's page, whose vote buttons POST with
the same CSRF tokens, given to it as ``Forms``; topic pages and feeds).

Security: links carry HMAC tokens bound to purpose, subscriber id and the subscriber's random
link secret (digest/tokens.py), so a deleted, re-created or rotated subscriber's links die;
confirm tokens expire and are bound to the request they answer. Coming back after an
unsubscribe always takes a new confirmation (double opt-in). Every form carries a CSRF token
that is an HMAC of a random cookie (double submit); the one-click POST is the only form-less
write. The subscribe response is the same whatever the address's state (no enumeration);
subscribing is rate-limited per mailbox (ada+1@ and ada+2@ count as one) and per client in
memory (digest/web/ratelimit.py; X-Forwarded-For only from DIGEST_TRUSTED_PROXIES). Pages are
Jinja2 with autoescape, no inline script (only the optional external /tz.js that preselects
the browser's time zone), and strict headers, on every response including a 500.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache
from typing import Callable
from zoneinfo import available_timezones

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from sqlalchemy.exc import IntegrityError

from digest import clock
from digest import tokens
from digest.store.db import session_scope
from digest.store.models import Subscriber
from digest.store.settings import Settings, SettingsError
from digest.subscribers import (WEEKDAYS, SubscriberError, check_text, check_timezone, get_by_email, mailbox_key,
                                normalise_email)
from digest.web import prefs as prefs_form
from digest.web.mails import CONFIRM_TTL, already_email, confirm_bind, confirmation_email, send_mail
from digest.web.ratelimit import RateLimiter, client_key, parse_proxies

log = logging.getLogger("digest.web")

MAX_SUBSCRIBER_ID = 2**31 - 1    # subscribers.id is an INTEGER: PostgreSQL refuses to even look beyond
ADDRESS_LIMIT = 5                # subscribe requests per address per window
IP_LIMIT = 20                    # subscribe requests per client IP per window
RATE_WINDOW = 3600               # seconds
CSRF_COOKIE = "digest_csrf"
CSRF_FIELD = "csrf_token"
MAX_NAME = 200

CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Progressive enhancement (the form works without it): preselect the browser's time zone on a
# fresh subscribe form. Served as a file because the CSP allows no inline script.
TZ_SCRIPT = """document.addEventListener("DOMContentLoaded", function () {
  var select = document.getElementById("timezone");
  if (!select || select.dataset.prefill !== "1") return;
  var zone = (Intl.DateTimeFormat().resolvedOptions() || {}).timeZone;
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) { select.value = zone; return; }
  }
});
"""
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
]
ERROR_PAGE = (b"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Something went wrong</title>"
              b"<h1>Something went wrong</h1><p>Please try again in a few minutes.</p></html>")
TOKEN_ERRORS = {
    "malformed": ("This link is not valid", "The link is incomplete or was changed. Copy the whole link from the email, or use the link in a newer email.", 400),
    "tampered": ("This link is not valid", "The link was changed or was not issued by us. Use the link from the email as it is.", 400),
    "wrong-purpose": ("This link is not valid here", "This link was made for another page. Use the matching link from the email.", 400),
    "expired": ("This link has expired", "Confirmation links are valid for a few days. Subscribe again to get a new one.", 410),
    "unknown": ("This link is no longer valid", "We have no subscription for this link any more. You can subscribe again.", 404),
}


class SecurityHeaders:
    """ASGI middleware: the same strict headers on every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [h for h in message.get("headers", []) if h[0].lower() not in dict(SECURITY_HEADERS)]
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Answered here, inside this middleware, so a 500 carries the same headers as any page
            # (Starlette's own error page is sent from outside every user middleware).
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            await send_with_headers({"type": "http.response.start", "status": 500,
                                     "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                                 (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": ERROR_PAGE})


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    names = {n for n in available_timezones() if "/" in n and not n.startswith(("Etc/", "SystemV/", "posix/", "right/"))}
    return tuple(["UTC"] + sorted(names))


@dataclass
class Forms:
    """What the reading pages need to carry forms (digest/web/pages.py): the CSRF field name,
    ``token(request) -> (token, new cookie or None)``, ``set_cookie(response, new cookie)`` and
    ``await check(request) -> (form, ok)``."""
    field: str
    token: Callable
    set_cookie: Callable
    check: Callable


@dataclass
class TopicChoice:
    id: str
    name: str
    description: str


def create_app(settings: Settings, *, confirm_ttl: int = CONFIRM_TTL, address_limit: int = ADDRESS_LIMIT,
               ip_limit: int = IP_LIMIT, rate_window: float = RATE_WINDOW) -> Starlette:
    """The web app for ``settings``; serve it with uvicorn (``digest web``)."""
    env = Environment(loader=FileSystemLoader(str(settings.templates_dir / "web")),
                      autoescape=select_autoescape(["html"], default=True), trim_blocks=True, lstrip_blocks=True)
    by_address = RateLimiter(address_limit, rate_window)
    by_ip = RateLimiter(ip_limit, rate_window)
    try:
        proxies = parse_proxies(settings.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    secure_cookie = settings.public_url.startswith("https://")
    sender_name = parseaddr(settings.from_addr)[0] or "Paper Digest"
    topics_cache: dict = {}

    # ---------------------------------------------------------------- helpers
    def topics() -> list[TopicChoice]:
        path = settings.topics_file
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = None
        if topics_cache.get("stamp") != stamp or "list" not in topics_cache:
            from digest.topics.current import current_topics

            config, _ = current_topics(settings)
            topics_cache["list"] = [TopicChoice(t.id, t.name, t.description) for t in config.topics]
            topics_cache["stamp"] = stamp
        return topics_cache["list"]

    def csrf_for(cookie: str) -> str:
        return hmac.new(settings.secret_key.encode("utf-8"), b"csrf\x00" + cookie.encode("ascii", "replace"),
                        hashlib.sha256).hexdigest()

    def csrf_token(request: Request) -> tuple[str, str | None]:
        """The CSRF token a form on this response carries, and the new cookie to set (or None)."""
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        new_cookie = None
        if len(cookie) < 32 or len(cookie) > 64 or not cookie.isascii():
            cookie = new_cookie = secrets.token_urlsafe(32)
        return csrf_for(cookie), new_cookie

    def set_csrf_cookie(response: Response, new_cookie: str | None) -> None:
        if new_cookie:
            response.set_cookie(CSRF_COOKIE, new_cookie, httponly=True, samesite="lax", secure=secure_cookie, path="/")

    def page(request: Request, template: str, status: int = 200, *, token_page: bool = False, **ctx) -> HTMLResponse:
        token, new_cookie = csrf_token(request)
        html = env.get_template(template).render(csrf_token=token, csrf_field=CSRF_FIELD,
                                                 site_name=sender_name, **ctx)
        response = HTMLResponse(html, status_code=status)
        response.headers["Cache-Control"] = "no-store" if token_page or request.method == "POST" else "no-cache"
        set_csrf_cookie(response, new_cookie)
        return response

    def message(request: Request, title: str, text: str, status: int = 200, **ctx) -> HTMLResponse:
        return page(request, "message.html", status, token_page=True, title=title, text=text, **ctx)

    async def form_with_csrf(request: Request):
        """The submitted form, or None when its CSRF token does not match the cookie."""
        form = await request.form()
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        sent = str(form.get(CSRF_FIELD) or "")
        if not cookie or not sent or not hmac.compare_digest(sent, csrf_for(cookie)):
            return form, False
        return form, True

    def csrf_failed(request: Request) -> HTMLResponse:
        return message(request, "This form has expired",
                       "The page was open too long, or cookies are blocked. Go back, reload the page and try again.", 403)

    def token_failed(request: Request, reason: str) -> HTMLResponse:
        title, text, status = TOKEN_ERRORS.get(reason, TOKEN_ERRORS["tampered"])
        return message(request, title, text, status, show_subscribe=True)

    def verify(token: str, purpose: str) -> tokens.Token:
        return tokens.read_token(settings.secret_key, token, purpose,
                                 max_age=confirm_ttl if purpose == "confirm" else None)

    def load(session, token: str, purpose: str) -> Subscriber:
        """The subscriber a link is for; TokenError("unknown") when the link is signed but its
        subscriber is gone, was re-created, or has a new link secret."""
        t = verify(token, purpose)
        sub = session.get(Subscriber, t.subject_id) if t.subject_id <= MAX_SUBSCRIBER_ID else None
        if sub is None:
            raise tokens.TokenError("unknown")
        # Links sent before links were bound still unsubscribe (mail programs keep them for years);
        # they do nothing else.
        legacy_ok = t.legacy and purpose == "unsubscribe" and sub.legacy_links
        if not (legacy_ok or t.bound_to(confirm_bind(sub) if purpose == "confirm" else sub.link_secret)):
            raise tokens.TokenError("unknown")
        return sub

    def client(request: Request) -> str:
        peer = request.client.host if request.client else None
        return client_key(peer, request.headers.getlist("x-forwarded-for"), proxies)

    def clean_form(form, known: list[TopicChoice]) -> tuple[dict, list[str]]:
        errors: list[str] = []
        ids = {t.id for t in known}
        chosen = list(dict.fromkeys(str(v) for v in form.getlist("topics")))
        if not chosen:
            errors.append(prefs_form.FieldError("Choose at least one topic.", "topics"))
        elif any(t not in ids for t in chosen):
            errors.append(prefs_form.FieldError("Choose topics from the list.", "topics"))
            chosen = [t for t in chosen if t in ids]
        tz = str(form.get("timezone") or "UTC")
        try:
            tz = check_timezone(tz)
        except SubscriberError:
            errors.append(prefs_form.FieldError("Choose a time zone from the list (an IANA name such as Europe/Berlin).",
                                           "timezone"))
            tz = "UTC"
        return {"topics": chosen, "timezone": tz}, errors

    # ---------------------------------------------------------------- routes
    async def index(request: Request) -> Response:
        return RedirectResponse("/subscribe", status_code=303)

    async def subscribe(request: Request) -> Response:
        known = await run_in_threadpool(topics)
        ctx = {"topics": known, "timezones": timezone_names()}
        if request.method in ("GET", "HEAD"):
            return page(request, "subscribe.html", **ctx, values={"timezone": "UTC", "topics": []}, errors=[],
                        prefill_tz=True)
        form, ok = await form_with_csrf(request)
        if not ok:
            return csrf_failed(request)
        if not by_ip.hit(client(request)):
            return message(request, "Too many requests", "Please wait an hour and try again.", 429)
        values, errors = clean_form(form, known)
        raw_email = str(form.get("email") or "").strip()[:320]
        raw_name = str(form.get("name") or "")
        try:
            check_text(raw_name, "name")
        except SubscriberError:
            errors.append(prefs_form.FieldError("Names cannot contain control characters.", "name"))
            raw_name = ""
        name = " ".join(raw_name.split())[:MAX_NAME] or None
        values.update(email=raw_email, name=name or "")
        try:
            email = normalise_email(raw_email)
        except SubscriberError:
            errors.insert(0, prefs_form.FieldError("Enter a valid email address, like ada@example.org.", "email"))
            email = None
        if errors:
            return page(request, "subscribe.html", 400, **ctx, values=values, errors=errors, prefill_tz=False)
        if not by_address.hit(mailbox_key(email)):
            return message(request, "Too many requests", "Please wait an hour and try again.", 429)
        names = {t.id: t.name for t in known}
        await run_in_threadpool(_subscribe, email, name, values["topics"], values["timezone"], names)
        return page(request, "check_inbox.html", email=email)

    def _subscribe(email: str, name: str | None, topic_ids: list[str], tz: str, names: dict[str, str]) -> None:
        try:
            msg = _subscribe_row(email, name, topic_ids, tz, names)
        except IntegrityError:
            # Another request created this address a moment ago: go again, it is an update now.
            msg = _subscribe_row(email, name, topic_ids, tz, names)
        send_mail(settings, msg)

    def _subscribe_row(email: str, name: str | None, topic_ids: list[str], tz: str, names: dict[str, str]):
        now = clock.now()
        with session_scope(settings) as session:
            sub = get_by_email(session, email)
            if sub is not None and sub.status in ("active", "paused"):
                # Never touch a live subscription from an unauthenticated form: tell its owner.
                return already_email(settings, sub)
            if sub is None:
                sub = Subscriber(email=email, created_at=now)
                session.add(sub)
            sub.name, sub.topics, sub.timezone = name, topic_ids, tz
            sub.status, sub.status_at, sub.consented_at, sub.updated_at = "pending", now, now, now
            session.flush()
            return confirmation_email(settings, sub, names, confirm_ttl)

    async def confirm(request: Request) -> Response:
        token = request.path_params["token"]
        form_ok = True
        if request.method == "POST":
            _, form_ok = await form_with_csrf(request)
        try:
            result = await run_in_threadpool(_confirm, token, request.method == "POST" and form_ok)
        except tokens.TokenError as exc:
            return token_failed(request, exc.reason)
        if not form_ok:
            return csrf_failed(request)
        status, email, prefs, topic_ids = result
        if status == "pending":
            names = {t.id: t.name for t in await run_in_threadpool(topics)}
            return page(request, "confirm.html", token_page=True, email=email, token=token,
                        topic_names=[names.get(t, t) for t in topic_ids])
        if status == "active":
            return page(request, "done.html", token_page=True, title="You are subscribed",
                        text=f"The next digest goes to {email}.", preferences_url=prefs)
        return message(request, "This link is no longer valid",
                       "This subscription was changed after the link was sent. Subscribe again to get a new link.",
                       409, show_subscribe=True)

    def _confirm(token: str, act: bool) -> tuple[str, str, str, list[str]]:
        with session_scope(settings) as session:
            sub = load(session, token, "confirm")
            if act and sub.status == "pending":
                now = clock.now()
                sub.status, sub.consecutive_failures = "active", 0
                sub.updated_at = sub.status_at = sub.confirmed_at = now
            return sub.status, sub.email, _prefs_path(sub), list(sub.topics or [])

    def _prefs_path(sub: Subscriber) -> str:
        return "/preferences/" + tokens.make_token(settings.secret_key, "preferences", sub.id, bind=sub.link_secret)

    async def preferences(request: Request) -> Response:
        token = request.path_params["token"]
        known = await run_in_threadpool(topics)
        try:
            state = await run_in_threadpool(_prefs_load, token)
        except tokens.TokenError as exc:
            return token_failed(request, exc.reason)
        saved, errors = False, []
        if request.method == "POST":
            form, ok = await form_with_csrf(request)
            if not ok:
                return csrf_failed(request)
            values, errors = prefs_form.read_form(form, known, state["topics"])
            if errors:
                state.update(values)
                return prefs_page(request, 400, known, state, errors, False, token)
            names = {t.id: t.name for t in known}
            try:
                state, mail = await run_in_threadpool(_prefs_save, token, values, names)
            except tokens.TokenError as exc:
                return token_failed(request, exc.reason)
            if mail is not None:   # coming back after unsubscribing: their own confirmation first
                await run_in_threadpool(send_mail, settings, mail)
                return page(request, "check_inbox.html", token_page=True, email=state["email"])
            saved = True
        return prefs_page(request, 200, known, state, errors, saved, token)

    def prefs_page(request, status, known, state, errors, saved, token) -> HTMLResponse:
        rank = {t: i for i, t in enumerate(state["topics"])}
        ordered = sorted(known, key=lambda t: (rank.get(t.id, len(rank)), [k.id for k in known].index(t.id)))
        names = {t.id: t.name for t in known}
        upcoming = prefs_form.next_delivery(state, names, clock.now())
        return page(request, "preferences.html", status, token_page=True, topics=ordered, timezones=timezone_names(),
                    state=state, errors=errors, saved=saved, token=token, next_delivery=upcoming,
                    weekdays=[d.capitalize() for d in WEEKDAYS], order={t: i + 1 for t, i in rank.items()})

    def _state(sub: Subscriber) -> dict:
        return prefs_form.state(sub, settings.send_time)

    def _prefs_load(token: str) -> dict:
        with session_scope(settings) as session:
            return _state(load(session, token, "preferences"))

    def _prefs_save(token: str, values: dict, names: dict[str, str]):
        """Apply the form; returns the new state and, for someone coming back after unsubscribing,
        the confirmation mail to send (they stay pending until they confirm: double opt-in)."""
        mail = None
        with session_scope(settings) as session:
            sub = load(session, token, "preferences")
            if prefs_form.apply(sub, values, clock.now()):
                session.flush()
                mail = confirmation_email(settings, sub, names, confirm_ttl)
            return _state(sub), mail

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":
            try:
                state = await run_in_threadpool(_prefs_or_unsub, token, False)
            except tokens.TokenError as exc:
                return token_failed(request, exc.reason)
            return page(request, "unsubscribe.html", token_page=True, state=state, token=token)
        form, ok = await form_with_csrf(request)
        one_click = form.get("List-Unsubscribe") == "One-Click"
        try:
            if not (ok or one_click):
                await run_in_threadpool(verify, token, "unsubscribe")  # a bad token says so first
                return csrf_failed(request)
            state = await run_in_threadpool(_prefs_or_unsub, token, True)
        except tokens.TokenError as exc:
            return token_failed(request, exc.reason)
        return page(request, "done.html", token_page=True, title="You are unsubscribed",
                    text=f"{state['email']} will get no more digests.", preferences_url="/subscribe",
                    resubscribe=True)

    def _prefs_or_unsub(token: str, act: bool) -> dict:
        with session_scope(settings) as session:
            sub = load(session, token, "unsubscribe")
            if act and sub.status != "unsubscribed":
                sub.status = "unsubscribed"
                sub.updated_at = sub.status_at = clock.now()
                log.info("subscriber %s unsubscribed", sub.id)
            state = _state(sub)
            # Only a live subscription is offered its preferences ("pause instead"); whoever holds
            # just the unsubscribe link of a stopped one can subscribe again through the form.
            state["preferences_url"] = _prefs_path(sub) if sub.status in ("active", "paused") else ""
            return state

    async def not_found(request: Request, exc: HTTPException) -> Response:
        status = exc.status_code if 400 <= exc.status_code < 600 else 500
        return message(request, "Page not found" if status == 404 else "Request not allowed",
                       "There is nothing here." if status == 404 else "This request is not allowed.", status,
                       show_subscribe=True)

    async def tz_script(request: Request) -> Response:
        return Response(TZ_SCRIPT, media_type="text/javascript", headers={"cache-control": "public, max-age=86400"})

    routes = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/tz.js", tz_script, methods=["GET"]),
        Route("/subscribe", subscribe, methods=["GET", "POST"]),
        Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
        Route("/preferences/{token}", preferences, methods=["GET", "POST"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
    ]
    from digest.web.pages import page_routes

    # reading pages: a digest (with its vote forms), a topic, its feed
    routes += page_routes(settings, topics, Forms(CSRF_FIELD, csrf_token, set_csrf_cookie, form_with_csrf))
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.add_middleware(SecurityHeaders)
    app.state.settings = settings
    return app


def server_config(settings: Settings, host: str = "127.0.0.1", port: int = 8000, **kw):
    """The uvicorn config `digest web` runs with. Proxy headers are read by the app itself
    (DIGEST_TRUSTED_PROXIES), never by uvicorn, which would believe any X-Forwarded-For from
    127.0.0.1."""
    import uvicorn

    return uvicorn.Config(create_app(settings), host=host, port=port, proxy_headers=False, **kw)


def listen(host: str, port: int):
    """The listening socket, bound before uvicorn starts, so a port in use or a bad host is
    one OSError here instead of uvicorn's start-up log and its own exit code."""
    import socket

    # IPv4 unless the host is an IPv6 address, as uvicorn does ("localhost" may list ::1 first)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    family, kind, proto, _, address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, sock=None) -> None:
    import uvicorn

    sock = sock or listen(host, port)   # OSError: the port is taken, or the host is not this machine's
    config = server_config(settings, host, port, log_level="info")   # (sets up uvicorn's logging)
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("uvicorn.error").info("digest web listening on http://%s:%d", shown, port)
    uvicorn.Server(config).run(sockets=[sock])
