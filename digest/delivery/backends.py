"""Delivery backends behind one small interface, chosen by ``settings.delivery``:

    smtp://[user:pass@]host:port[?starttls=1|ssl=1]   a real SMTP server (one reused connection)
    file://DIR                                         DIR/<edition>/<recipient>.eml + .html preview
    dry-run                                            sends nothing, counts (callers record nothing)
    discard                                            sends nothing, counts (recorded as sent: benchmarks)

    with open_backend(settings) as backend:
        result = backend.send(out)        # -> SendResult; never raises for a per-message failure

``out`` is a ``digest.email.message.Outgoing`` (wire bytes plus envelope, from ``compose``); an
``email.message.EmailMessage`` is accepted too (serialised first; the web pages' mails).

A ``SendResult`` says whether the server accepted the message (``ok``), and if not, whether
retrying later can help (``permanent`` False: 4xx replies, dropped connections, timeouts, after
``settings.smtp_retries`` retries with exponential backoff) or not (``permanent`` True: 5xx,
e.g. "550 5.1.1 user unknown"), with the server's reply in ``error``.

What an unrecorded acceptance means: if the connection drops after the message data was sent
but before the server's "250", the message may or may not have been accepted. It is retried,
so a recipient can get at most one duplicate (with the same Message-ID, which lets clients
collapse it) — never a loss.
"""
from __future__ import annotations

import hashlib
import os
import re
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Callable

from digest.email.message import Outgoing, from_email_message
from digest.store.delivery_url import (DeliveryConfigError, SMTPConfig, mask_delivery,  # noqa: F401 (re-exported)
                                       parse_delivery)
from digest.store.settings import require_real_secret


@dataclass
class SendResult:
    ok: bool
    permanent: bool = False
    error: str | None = None          # the server's reply or the local error, when not ok
    attempts: int = 1
    refused: dict[str, str] = field(default_factory=dict)  # some recipients refused, others accepted
    path: str | None = None           # file backend: where the .eml went


def outgoing(msg: Outgoing | EmailMessage) -> Outgoing:
    return msg if isinstance(msg, Outgoing) else from_email_message(msg)


class Backend:
    """Base class: a context manager with ``send(msg) -> SendResult``."""

    name = "backend"
    # True when send() mostly waits on a network peer: the send loop then renders the next
    # messages in a second thread meanwhile (the wait releases the GIL)
    waits_on_network = False

    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0

    def send(self, msg: Outgoing | EmailMessage) -> SendResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _count(self, result: SendResult) -> SendResult:
        if result.ok:
            self.sent += 1
        else:
            self.failed += 1
        return result


def open_backend(settings, **options) -> Backend:
    """The backend ``settings.delivery`` names. SMTP options (tests): backoff_base, sleep."""
    kind, config = parse_delivery(settings.delivery)
    if kind in ("dry-run", "discard"):  # the caller decides whether anything is recorded
        return DryRunBackend()
    if kind == "file":
        return FileBackend(config)
    require_real_secret(settings, "sending through smtp://")
    return SMTPBackend(config, timeout=settings.smtp_timeout, rate=settings.smtp_rate,
                       retries=settings.smtp_retries, **options)


# ------------------------------------------------------------------------------------------------
# dry run


class DryRunBackend(Backend):
    """Sends nothing; counts messages and bytes."""

    name = "dry-run"

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.recipients: dict[str, int] = {}

    def send(self, msg: Outgoing | EmailMessage) -> SendResult:
        out = outgoing(msg)
        self.bytes += len(out.raw)
        for addr in out.recipients:
            self.recipients[addr] = self.recipients.get(addr, 0) + 1
        return self._count(SendResult(ok=True))


# ------------------------------------------------------------------------------------------------
# file outbox

_SAFE = re.compile(r"[^A-Za-z0-9._+@-]+")
_EDITION_OK = re.compile(r"\d{4}-\d{2}-\d{2}")


def safe_file_stem(address: str) -> str:
    """A file name for a recipient: only [A-Za-z0-9._+@-], no leading dot, bounded, plus a short
    hash of the full address so two hostile addresses never share a file."""
    cleaned = _SAFE.sub("_", address or "").strip("._") or "recipient"
    digest = hashlib.sha256((address or "").encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{cleaned[:80]}-{digest}"


class FileBackend(Backend):
    """Writes ``<dir>/<edition>/<recipient>.eml`` (wire format) and a ``.html`` preview."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = Path(os.path.abspath(directory))   # relative: against the cwd, now

    def send(self, msg: Outgoing | EmailMessage) -> SendResult:
        try:
            out = outgoing(msg)
            edition = out.edition
            if not _EDITION_OK.fullmatch(edition):
                edition = "no-edition"
            folder = self.directory / edition
            folder.mkdir(parents=True, exist_ok=True)
            stem = safe_file_stem(out.recipient or "recipient")
            eml = folder / f"{stem}.eml"
            _write_atomic(eml, out.raw)
            html = out.html
            if html is not None:
                _write_atomic(folder / f"{stem}.html", html.encode("utf-8"))
            return self._count(SendResult(ok=True, path=str(eml)))
        except OSError as exc:
            return self._count(SendResult(ok=False, permanent=False, error=f"write failed: {exc}"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------
# SMTP


def _reply(code, message) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {message}".strip()


class _Temporary(Exception):
    def __init__(self, error: str, reconnect: bool):
        super().__init__(error)
        self.error = error
        self.reconnect = reconnect


class _Permanent(Exception):
    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


class SMTPBackend(Backend):
    """One SMTP connection reused for many messages; reconnects when it drops; throttles to
    ``rate`` messages/second; retries temporary failures with exponential backoff."""

    waits_on_network = True

    name = "smtp"

    def __init__(self, config: SMTPConfig, *, timeout: float = 30.0, rate: float = 0.0, retries: int = 3,
                 backoff_base: float = 0.2, backoff_max: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.config = config
        self.timeout = timeout
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self.retries = max(0, int(retries))
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.sleep = sleep
        self.clock = clock
        self._smtp: smtplib.SMTP | None = None
        self._used = 0                 # messages sent on the current connection
        self._next_slot = 0.0
        self.connections = 0           # connections opened (for tests and stats)

    # connection -------------------------------------------------------------------------------
    def _connect(self) -> smtplib.SMTP:
        c = self.config
        try:
            if c.ssl:
                smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=self.timeout)
            try:
                smtp.ehlo()
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if c.username:
                    smtp.login(c.username, c.password or "")
            except BaseException:
                _close_quietly(smtp)
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise _Permanent(f"login failed: {_reply(exc.smtp_code, exc.smtp_error)}") from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise _Temporary(f"connect: {_reply(exc.smtp_code, exc.smtp_error)}", True) from None
            raise _Permanent(f"connect: {_reply(exc.smtp_code, exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _Temporary(f"connect to {c.host}:{c.port} failed: {exc or type(exc).__name__}", True) from None
        self.connections += 1
        self._used = 0
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            _close_quietly(self._smtp)
        self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()

    # sending ------------------------------------------------------------------------------------
    def _throttle(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if now < self._next_slot:
            self.sleep(self._next_slot - now)
            now = self._next_slot
        self._next_slot = now + self.interval

    def _attempt(self, out: Outgoing) -> dict:
        """One try. Returns the refused-recipients dict of a (partly) accepted message."""
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            # the bytes are CRLF already; smtplib dot-stuffs lines that start with "."
            refused = self._smtp.sendmail(out.envelope_from, list(out.recipients), out.raw,
                                          mail_options=_UTF8_OPTIONS if out.smtputf8 else ())
        except smtplib.SMTPNotSupportedError as exc:      # SMTPUTF8 needed, not offered
            raise _Permanent(f"server does not support SMTPUTF8: {exc}") from None
        except smtplib.SMTPRecipientsRefused as exc:       # every recipient refused
            replies = {rcpt: _reply(code, text) for rcpt, (code, text) in exc.recipients.items()}
            error = "; ".join(replies.values()) or "recipients refused"
            if any(400 <= code < 500 for code, _ in exc.recipients.values()):
                raise _Temporary(error, False) from None
            raise _Permanent(error) from None
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise _Temporary(f"connection lost: {exc or 'server disconnected'}", True) from None
        except smtplib.SMTPResponseException as exc:      # sender refused, data error, 421 ...
            error = _reply(exc.smtp_code, exc.smtp_error)
            if exc.smtp_code == 421 or exc.smtp_code < 400:   # 421: the server is closing the channel
                self._drop()
                raise _Temporary(error, True) from None
            if exc.smtp_code < 500:
                raise _Temporary(error, False) from None
            raise _Permanent(error) from None
        except (socket.timeout, TimeoutError) as exc:
            self._drop()
            raise _Temporary(f"timeout: {exc or 'timed out'}", True) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise _Temporary(f"{type(exc).__name__}: {exc}", True) from None
        self._used += 1
        return refused

    def send(self, msg: Outgoing | EmailMessage) -> SendResult:
        try:
            out = outgoing(msg)
        except (ValueError, TypeError, UnicodeError) as exc:  # a message that cannot be serialised
            return self._count(SendResult(ok=False, permanent=True, error=f"unusable message: {exc}", attempts=0))
        self._throttle()
        attempts = 0
        free_reconnect = True
        error = ""
        while True:
            attempts += 1
            reused = self._smtp is not None and self._used > 0
            try:
                refused = self._attempt(out)
            except _Permanent as exc:
                return self._count(SendResult(ok=False, permanent=True, error=exc.error, attempts=attempts))
            except _Temporary as exc:
                error = exc.error
                # A reused connection the server closed while idle: reconnect at once, once,
                # without counting it as a retry.
                if exc.reconnect and reused and free_reconnect:
                    free_reconnect = False
                    attempts -= 1
                    continue
                if attempts > self.retries:
                    return self._count(SendResult(ok=False, permanent=False, error=error, attempts=attempts))
                self.sleep(min(self.backoff_max, self.backoff_base * (2 ** (attempts - 1))))
                continue
            replies = {rcpt: _reply(code, text) for rcpt, (code, text) in (refused or {}).items()}
            # Accepted for at least one recipient (a digest has exactly one); any refusals are
            # reported alongside.
            return self._count(SendResult(ok=True, attempts=attempts, refused=replies,
                                           error="; ".join(replies.values()) or None))


_UTF8_OPTIONS = ("SMTPUTF8", "BODY=8BITMIME")


def _close_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.close()
    except Exception:  # noqa: BLE001 - closing a broken socket
        pass
