"""A real SMTP server for tests (aiosmtpd on 127.0.0.1, a free port) that records what it
receives and can be scripted:

    sink = SMTPSink().start()
    sink.script_rcpt("a@example.org", "451 4.3.0 try again later")   # then accepts
    sink.refuse_rcpt("b@example.org", "550 5.1.1 <b@example.org>: user unknown")
    sink.drop_after = 3          # close each connection after 3 accepted messages
    sink.drop_in_data_ratio = 0.3  # keep 30 % of messages, then close without a reply (seeded)
    sink.reply_delay = 8.0       # wait 8 s before answering the message data (a slow relay)
    ...
    sink.messages               # [Received(mail_from, rcpt_tos, data, ...)]
    sink.stop()

Use it from a fixture in a test module: ``yield from smtp_sink()``.
"""
from __future__ import annotations

import asyncio
import random
import email
import email.policy
import socket
import threading
from dataclasses import dataclass

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes                   # the raw message as received (CRLF line ends)
    connection: int               # which connection carried it (1, 2, ...)

    def parsed(self):
        return email.message_from_bytes(self.data, policy=email.policy.default)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, sink: "SMTPSink"):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        sink = self.sink
        with sink.lock:
            sink.rcpt_attempts[address.lower()] = sink.rcpt_attempts.get(address.lower(), 0) + 1
            queue = sink._rcpt_script.get(address.lower())
            reply = queue.pop(0) if queue else sink._rcpt_refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        conn = getattr(session, "sink_conn", None)
        if conn is None:
            with sink.lock:
                sink.connections += 1
                conn = session.sink_conn = sink.connections
                session.sink_count = 0
        with sink.lock:
            drop_in_data = sink.drop_in_data_once or (
                sink.drop_in_data_ratio > 0 and sink.rng.random() < sink.drop_in_data_ratio)
            sink.drop_in_data_once = False
            sink.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or envelope.content), conn))
        session.sink_count += 1
        if sink.reply_delay:
            await asyncio.sleep(sink.reply_delay)
        if drop_in_data:
            # Accepted, but the client never hears so: the connection closes before the reply.
            server.transport.close()
            return "250 OK"
        if sink.drop_after and session.sink_count >= sink.drop_after:
            # Reply 250, then close the connection (the reply is flushed first).
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 OK"


class SMTPSink:
    def __init__(self, *, starttls=None, implicit_tls=None, login: tuple[str, str] | None = None) -> None:
        """``starttls``/``implicit_tls``: an ssl server context, for STARTTLS (required) or TLS
        from the first byte; ``login``: (user, password) AUTH requires (over TLS only)."""
        self.host = "127.0.0.1"
        self.port = free_port()
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.rcpt_attempts: dict[str, int] = {}
        self.connections = 0
        self.drop_after = 0
        self.drop_in_data_once = False
        self.drop_in_data_ratio = 0.0
        self.rng = random.Random(17)
        self.reply_delay = 0.0
        self._rcpt_script: dict[str, list[str]] = {}
        self._rcpt_refuse: dict[str, str] = {}
        self.logins: list[str] = []
        extra = {}
        if starttls is not None:
            extra.update(tls_context=starttls, require_starttls=True)
        if login is not None:
            # (aiosmtpd does not see its own implicit TLS as TLS; the socket is TLS there anyway)
            extra.update(authenticator=self._authenticator(login), auth_require_tls=implicit_tls is None)
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port, ready_timeout=10,
                                     ssl_context=implicit_tls, server_hostname="127.0.0.1", **extra)

    def _authenticator(self, login: tuple[str, str]):
        from aiosmtpd.smtp import AuthResult

        def check(server, session, envelope, mechanism, auth_data):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            ok = (user, password) == login
            if ok:
                with self.lock:
                    self.logins.append(user)
            return AuthResult(success=ok, handled=False)
        return check

    # scripting --------------------------------------------------------------------------------
    def script_rcpt(self, address: str, *replies: str) -> None:
        """Answer RCPT TO for ``address`` with ``replies`` in turn (one per attempt), then 250."""
        with self.lock:
            self._rcpt_script[address.lower()] = list(replies)

    def refuse_rcpt(self, address: str, reply: str = "550 5.1.1 user unknown") -> None:
        """Always answer RCPT TO for ``address`` with ``reply``."""
        with self.lock:
            self._rcpt_refuse[address.lower()] = reply

    # lifecycle ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> "SMTPSink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def delivered_to(self) -> list[str]:
        return [r for m in self.messages for r in m.rcpt_tos]


def smtp_sink():
    """Generator for a pytest fixture: ``yield from smtp_sink()``."""
    sink = SMTPSink().start()
    try:
        yield sink
    finally:
        sink.stop()
