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

Security: links carry HMAC tokens bound to subscriber and purpose (digest/tokens.py); confirm
tokens expire. Every form carries a CSRF token that is an HMAC of a random cookie (double
submit); the one-click POST is the only form-less write. The subscribe response is the same
whatever the address's state (no enumeration); subscribing is rate-limited per address and per
client IP in memory. Pages are Jinja2 with autoescape, no inline script (only the optional
external /tz.js that preselects the browser's time zone), and strict headers.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import lru_cache
from zoneinfo import available_timezones

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from digest import clock
from digest import tokens
from digest.store.db import session_scope
from digest.email.message import recipient_address
from digest.store.models import Subscriber
from digest.store.settings import Settings
from digest.subscribers import WEEKDAYS, SubscriberError, check_timezone, get_by_email, normalise_email
from digest.web import prefs as prefs_form

log = logging.getLogger("digest.web")

CONFIRM_TTL = 3 * 86400          # confirmation links are valid for three days
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
TOKEN_ERRORS = {
    "malformed": ("This link is not valid", "The link is incomplete or was changed. Copy the whole link from the email, or use the link in a newer email.", 400),
    "tampered": ("This link is not valid", "The link was changed or was not issued by us. Use the link from the email as it is.", 400),
    "wrong-purpose": ("This link is not valid here", "This link was made for another page. Use the matching link from the email.", 400),
    "expired": ("This link has expired", "Confirmation links are valid for a few days. Subscribe again to get a new one.", 410),
    "unknown": ("This link is no longer valid", "We have no subscription for this link any more. You can subscribe again.", 404),
}


class RateLimiter:
    """A sliding-window counter per key, in memory (one process)."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> bool:
        """Count one request for ``key``; False when it is over the limit (not counted then)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._hits[key]
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.limit:
                return False
            q.append(now)
            if len(self._hits) > 100_000:  # drop idle keys so memory stays bounded
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                    del self._hits[k]
            return True


class SecurityHeaders:
    """ASGI middleware: the same strict headers on every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() not in dict(SECURITY_HEADERS)]
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    names = {n for n in available_timezones() if "/" in n and not n.startswith(("Etc/", "SystemV/", "posix/", "right/"))}
    return tuple(["UTC"] + sorted(names))


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

    def page(request: Request, template: str, status: int = 200, *, token_page: bool = False, **ctx) -> HTMLResponse:
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        new_cookie = None
        if len(cookie) < 32 or len(cookie) > 64 or not cookie.isascii():
            cookie = new_cookie = secrets.token_urlsafe(32)
        html = env.get_template(template).render(csrf_token=csrf_for(cookie), csrf_field=CSRF_FIELD,
                                                 site_name=sender_name, **ctx)
        response = HTMLResponse(html, status_code=status)
        response.headers["Cache-Control"] = "no-store" if token_page or request.method == "POST" else "no-cache"
        if new_cookie:
            response.set_cookie(CSRF_COOKIE, new_cookie, httponly=True, samesite="lax", secure=secure_cookie, path="/")
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

    def verify(token: str, purpose: str) -> int:
        return tokens.verify_token(settings.secret_key, token, purpose,
                                   max_age=confirm_ttl if purpose == "confirm" else None)

    def load(session, token: str, purpose: str) -> Subscriber:
        sub = session.get(Subscriber, verify(token, purpose))
        if sub is None:
            raise tokens.TokenError("unknown")
        return sub

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

    def send_mail(msg: EmailMessage) -> None:
        from digest.delivery.backends import open_backend

        try:
            with open_backend(settings) as backend:
                result = backend.send(msg)
            if not result.ok:
                log.warning("confirmation mail to %s not sent: %s", msg["To"], result.error)
        except Exception:  # noqa: BLE001 - the page must look the same whatever happened
            log.exception("confirmation mail to %s failed", msg["To"])

    def transactional(sub: Subscriber, subject: str, kind: str) -> EmailMessage:
        """Headers of the one-off mails the pages send (not digests: no list headers)."""
        msg = EmailMessage()
        msg["From"] = settings.from_addr
        msg["To"] = recipient_address(sub.email, sub.name)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(clock.now())
        domain = parseaddr(settings.from_addr)[1].rpartition("@")[2] or "localhost"
        msg["Message-ID"] = make_msgid(kind, domain=domain)
        msg["Auto-Submitted"] = "auto-generated"
        return msg

    def confirm_message(sub: Subscriber, names: dict[str, str]) -> EmailMessage:
        msg = transactional(sub, f"Confirm your subscription to {sender_name}", "confirm")
        topic_list = "\n".join(f"  - {names.get(t, t)}" for t in sub.topics or [])
        days = max(1, round(confirm_ttl / 86400))
        url = tokens.confirm_url(settings, sub.id, ttl_seconds=confirm_ttl)
        msg.set_content(
            f"Hello{(' ' + sub.name) if sub.name else ''},\n\n"
            f"someone (hopefully you) asked to receive the {sender_name} for {sub.email} with these topics:\n\n"
            f"{topic_list}\n\n"
            f"To start receiving it, open this link and press the confirm button:\n\n{url}\n\n"
            f"The link is valid for {days} day{'s' if days != 1 else ''}. If you did not ask for this, ignore this "
            f"email: nothing will be sent to you.\n")
        return msg

    def already_message(sub: Subscriber) -> EmailMessage:
        msg = transactional(sub, f"You are already subscribed to {sender_name}", "subscribe")
        msg.set_content(
            f"Hello{(' ' + sub.name) if sub.name else ''},\n\n"
            f"someone (hopefully you) asked to subscribe {sub.email} to the {sender_name}. This address is already "
            f"subscribed, so nothing changed.\n\nTo change your topics, time zone, or to pause the digest:\n\n"
            f"{tokens.preferences_url(settings, sub.id)}\n\nIf you did not ask for this, ignore this email.\n")
        return msg

    # ---------------------------------------------------------------- routes
    async def index(request: Request) -> Response:
        return RedirectResponse("/subscribe", status_code=303)

    async def subscribe(request: Request) -> Response:
        known = await run_in_threadpool(topics)
        ctx = {"topics": known, "timezones": timezone_names()}
        if request.method == "GET":
            return page(request, "subscribe.html", **ctx, values={"timezone": "UTC", "topics": []}, errors=[],
                        prefill_tz=True)
        form, ok = await form_with_csrf(request)
        if not ok:
            return csrf_failed(request)
        ip = request.client.host if request.client else "unknown"
        if not by_ip.hit(ip):
            return message(request, "Too many requests", "Please wait an hour and try again.", 429)
        values, errors = clean_form(form, known)
        raw_email = str(form.get("email") or "").strip()[:320]
        name = " ".join(str(form.get("name") or "").split())[:MAX_NAME] or None
        values.update(email=raw_email, name=name or "")
        try:
            email = normalise_email(raw_email)
        except SubscriberError:
            errors.insert(0, prefs_form.FieldError("Enter a valid email address, like ada@example.org.", "email"))
            email = None
        if errors:
            return page(request, "subscribe.html", 400, **ctx, values=values, errors=errors, prefill_tz=False)
        if not by_address.hit(email):
            return message(request, "Too many requests", "Please wait an hour and try again.", 429)
        names = {t.id: t.name for t in known}
        await run_in_threadpool(_subscribe, email, name, values["topics"], values["timezone"], names)
        return page(request, "check_inbox.html", email=email)

    def _subscribe(email: str, name: str | None, topic_ids: list[str], tz: str, names: dict[str, str]) -> None:
        now = clock.now()
        with session_scope(settings) as session:
            sub = get_by_email(session, email)
            if sub is not None and sub.status in ("active", "paused"):
                # Never touch a live subscription from an unauthenticated form: tell its owner.
                msg = already_message(sub)
            else:
                if sub is None:
                    sub = Subscriber(email=email, created_at=now)
                    session.add(sub)
                sub.name, sub.topics, sub.timezone = name, topic_ids, tz
                sub.status, sub.updated_at = "pending", now
                session.flush()
                msg = confirm_message(sub, names)
        send_mail(msg)

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

    def _confirm(token: str, act: bool) -> tuple[str, str, str]:
        with session_scope(settings) as session:
            sub = load(session, token, "confirm")
            if act and sub.status == "pending":
                sub.status, sub.consecutive_failures = "active", 0
                sub.updated_at = clock.now()
            return sub.status, sub.email, _prefs_path(sub.id), list(sub.topics or [])

    def _prefs_path(sid: int) -> str:
        return "/preferences/" + tokens.make_token(settings.secret_key, "preferences", sid)

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
            try:
                state = await run_in_threadpool(_prefs_save, token, values)
            except tokens.TokenError as exc:
                return token_failed(request, exc.reason)
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

    def _prefs_save(token: str, values: dict) -> dict:
        with session_scope(settings) as session:
            sub = load(session, token, "preferences")
            prefs_form.apply(sub, values, clock.now())
            return _state(sub)

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
                    text=f"{state['email']} will get no more digests.", preferences_url=state["preferences_url"],
                    resubscribe=True)

    def _prefs_or_unsub(token: str, act: bool) -> dict:
        with session_scope(settings) as session:
            sub = load(session, token, "unsubscribe")
            if act and sub.status != "unsubscribed":
                sub.status = "unsubscribed"
                sub.updated_at = clock.now()
                log.info("subscriber %s unsubscribed", sub.id)
            state = _state(sub)
            state["preferences_url"] = _prefs_path(sub.id)
            return state

    async def not_found(request: Request, exc: HTTPException) -> Response:
        status = exc.status_code if 400 <= exc.status_code < 600 else 500
        return message(request, "Page not found" if status == 404 else "Request not allowed",
                       "There is nothing here." if status == 404 else "This request is not allowed.", status,
                       show_subscribe=True)

    async def tz_script(request: Request) -> Response:
        return Response(TZ_SCRIPT, media_type="text/javascript", headers={"cache-control": "public, max-age=86400"})

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/tz.js", tz_script, methods=["GET"]),
        Route("/subscribe", subscribe, methods=["GET", "POST"]),
        Route("/confirm/{token}", confirm, methods=["GET", "POST"]),
        Route("/preferences/{token}", preferences, methods=["GET", "POST"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
    ]
    from digest.web.pages import page_routes

    routes += page_routes(settings, topics)     # reading pages: a digest, a topic, its feed
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.add_middleware(SecurityHeaders)
    app.state.settings = settings
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=True)
