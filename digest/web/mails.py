"""The one-off mails around a subscription (not digests): the double opt-in confirmation and
"you are already subscribed". Used by the web pages and by `digest subscribers reconfirm`."""
from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from digest import clock, tokens
from digest.email.message import recipient_address
from digest.store.delivery_url import DeliveryConfigError
from digest.store.models import Subscriber
from digest.store.settings import SettingsError

log = logging.getLogger("digest.web")
CONFIRM_TTL = 3 * 86400          # confirmation links are valid for three days


def confirm_bind(sub: Subscriber) -> str:
    """What a confirm link is bound to: the link secret and the moment they last asked to receive
    the digest, so a link from an earlier request (before an unsubscribe, say) is dead."""
    asked = sub.consented_at
    return f"{sub.link_secret}|{int(asked.timestamp() * 1_000_000) if asked else ''}"


def sender_name(settings) -> str:
    return parseaddr(settings.from_addr)[0] or "Paper Digest"


def transactional(settings, sub: Subscriber, subject: str, kind: str) -> EmailMessage:
    """Headers of the one-off mails (no list headers)."""
    msg = EmailMessage()
    msg["From"] = settings.from_addr
    msg["To"] = recipient_address(sub.email, sub.name)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(clock.now())
    domain = parseaddr(settings.from_addr)[1].rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(kind, domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    return msg


def confirmation_email(settings, sub: Subscriber, names: dict[str, str], confirm_ttl: int = CONFIRM_TTL) -> EmailMessage:
    site = sender_name(settings)
    msg = transactional(settings, sub, f"Confirm your subscription to {site}", "confirm")
    topic_list = "\n".join(f"  - {names.get(t, t)}" for t in sub.topics or [])
    days = max(1, round(confirm_ttl / 86400))
    url = tokens.confirm_url(settings, sub.id, confirm_bind(sub), ttl_seconds=confirm_ttl)
    msg.set_content(
        f"Hello{(' ' + sub.name) if sub.name else ''},\n\n"
        f"someone (hopefully you) asked to receive the {site} for {sub.email} with these topics:\n\n"
        f"{topic_list}\n\n"
        f"To start receiving it, open this link and press the confirm button:\n\n{url}\n\n"
        f"The link is valid for {days} day{'s' if days != 1 else ''}. If you did not ask for this, ignore this "
        f"email: nothing will be sent to you.\n")
    return msg


def already_email(settings, sub: Subscriber) -> EmailMessage:
    site = sender_name(settings)
    msg = transactional(settings, sub, f"You are already subscribed to {site}", "subscribe")
    msg.set_content(
        f"Hello{(' ' + sub.name) if sub.name else ''},\n\n"
        f"someone (hopefully you) asked to subscribe {sub.email} to the {site}. This address is already "
        f"subscribed, so nothing changed.\n\nTo change your topics, time zone, or to pause the digest:\n\n"
        f"{tokens.preferences_url(settings, sub.id, sub.link_secret)}\n\nIf you did not ask for this, ignore this email.\n")
    return msg


def send_mail(settings, msg: EmailMessage, *, quiet: bool = False) -> str | None:
    """Send one mail; None when it went out, else why not (never raised; logged unless
    ``quiet``: the CLI prints the reason itself, as its one line)."""
    from digest.delivery.backends import open_backend

    try:
        with open_backend(settings) as backend:
            result = backend.send(msg)
        if not result.ok:
            if not quiet:
                log.warning("mail to %s not sent: %s", msg["To"], result.error)
            return str(result.error or "not sent")
    except (SettingsError, DeliveryConfigError, OSError) as exc:  # a setting or the server: one line
        if not quiet:
            log.warning("mail to %s not sent: %s", msg["To"], exc)
        return str(exc) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a page must look the same whatever happened
        log.exception("mail to %s failed", msg["To"])
        return str(exc) or type(exc).__name__
    return None
