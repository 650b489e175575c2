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

The one ambiguous case: the whole message data reached the server and then no reply came
(the connection dropped, or the reply timed out). The server may well have the message, so
the backend never retries it itself: the result says ``ambiguous`` and the send loop decides,
counting such sends on the digest (at most one more try, DIGEST_AMBIGUOUS_RETRY).
"""
from __future__ import annotations

import hashlib
import os
import re
import smtplib
import socket
import ssl
import tempfile
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
    ambiguous: bool = False           # the message data was sent, no reply came: maybe delivered


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
    """Writes ``<dir>/<edition>/<safe_file_stem(recipient)>.eml`` (wire format) and a ``.html`` preview.

    A file is never overwritten: a second message to one recipient in one folder (two
    confirmation mails, a digest sent again) is written as ``<recipient>-2.eml`` and so on.
    Each write goes through a temporary file of its own (unique per call, so concurrent
    web requests for one address never share one), removed when the write fails."""

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
            html = out.html
            eml = _write_new(folder, stem, ".eml", out.raw)
            if html is not None:
                preview = eml.with_suffix(".html")
                try:
                    try:
                        _write_new(folder, preview.stem, ".html", html.encode("utf-8"), exact=True)
                    except FileExistsError:   # a left-over preview of the same name: replace it
                        _write_atomic(preview, html.encode("utf-8"))
                except OSError:
                    _unlink_quietly(eml)      # all or nothing: the message is retried later
                    raise
            return self._count(SendResult(ok=True, path=str(eml)))
        except OSError as exc:
            return self._count(SendResult(ok=False, permanent=False, error=f"write failed: {exc}"))


def _temp_file(folder: Path, data: bytes) -> Path:
    """``data`` in a new hidden temporary file of ``folder``; nothing is left behind on failure."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        _unlink_quietly(name)
        raise
    return Path(name)


def _write_new(folder: Path, stem: str, suffix: str, data: bytes, *, exact: bool = False) -> Path:
    """Write ``data`` to ``folder/stem<suffix>``, or ``stem-2<suffix>``, ``-3``... whichever is
    free first; the name appears complete or not at all (a hard link never replaces a file).
    ``exact``: only ``stem<suffix>`` (FileExistsError when taken)."""
    tmp = _temp_file(folder, data)
    try:
        n = 1
        while True:
            path = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                if exact:
                    raise
                n += 1
    finally:
        _unlink_quietly(tmp)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _temp_file(path.parent, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


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


class _Ambiguous(Exception):
    def __init__(self, error: str):
        super().__init__(error)
        self.error = error


class _Tracking:
    """An SMTP client that notes when a message's data went out whole: smtplib's ``data()``
    sends the dot-stuffed payload, ending in CRLF.CRLF, in one ``send`` call."""

    payload_sent = False

    def send(self, s):
        super().send(s)
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.payload_sent = True


class _SMTP(_Tracking, smtplib.SMTP):
    pass


class _SMTP_SSL(_Tracking, smtplib.SMTP_SSL):
    pass


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
                smtp = _SMTP_SSL(c.host, c.port, timeout=self.timeout, context=ssl.create_default_context())
            else:
                smtp = _SMTP(c.host, c.port, timeout=self.timeout)
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
        smtp = self._smtp
        smtp.payload_sent = False
        try:
            # the bytes are CRLF already; smtplib dot-stuffs lines that start with "."
            refused = smtp.sendmail(out.envelope_from, list(out.recipients), out.raw,
                                    mail_options=_UTF8_OPTIONS if out.smtputf8 else ())
        except (smtplib.SMTPServerDisconnected, socket.timeout, TimeoutError, OSError) as exc:
            if not smtp.payload_sent:
                return self._raise_failure(exc)
            self._drop()
            raise _Ambiguous(f"no reply after the message data ({exc or type(exc).__name__}); "
                             "the server may have accepted it") from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == -1 and smtp.payload_sent:   # a garbled reply to the data
                self._drop()
                raise _Ambiguous(f"no valid reply after the message data ({_reply(exc.smtp_code, exc.smtp_error)})") from None
            return self._raise_failure(exc)
        except smtplib.SMTPException as exc:
            return self._raise_failure(exc)
        self._used += 1
        return refused

    def _raise_failure(self, error: Exception) -> dict:
        """Classify a failure where the server cannot have taken the message (always raises)."""
        try:
            raise error
        except smtplib.SMTPNotSupportedError as exc:      # SMTPUTF8 needed, not offered
            raise _Permanent(f"server does not support SMTPUTF8: {exc}") from None
        except smtplib.SMTPRecipientsRefused as exc:       # every recipient refused
            replies = {rcpt: _reply(code, text) for rcpt, (code, text) in exc.recipients.items()}
            error = "; ".join(replies.values()) or "recipients refused"
            if any(code == 421 for code, _ in exc.recipients.values()):   # smtplib closed it
                self._drop()
                raise _Temporary(error, True) from None
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
            except _Ambiguous as exc:       # never retried here: the server may have it
                return self._count(SendResult(ok=False, error=exc.error, attempts=attempts, ambiguous=True))
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
