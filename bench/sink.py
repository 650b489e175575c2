"""A counting SMTP sink that runs in its own process: aiosmtpd (default) or a lean one of our own.

``SinkProcess`` starts it on 127.0.0.1, and answers ``stats()`` (messages received, per
recipient) and ``reset()`` over a pipe. Messages are accepted and dropped.
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import threading
from collections import Counter
from types import SimpleNamespace


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _CountingHandler:
    def __init__(self):
        self.lock = threading.Lock()
        self.per_rcpt: Counter = Counter()
        self.sizes: list[int] = []          # bytes of each message, in order
        self.messages = 0
        self.bytes = 0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages += 1
            self.bytes += len(envelope.content or b"")
            self.sizes.append(len(envelope.content or b""))
            for rcpt in envelope.rcpt_tos:
                self.per_rcpt[rcpt.lower()] += 1
        return "250 2.0.0 Ok: queued"


def _sink_main(conn, port: int) -> None:
    from aiosmtpd.controller import Controller

    handler = _CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port, data_size_limit=50_000_000)
    controller.start()
    conn.send(("ready", port))
    try:
        _serve_pipe(conn, handler)
    finally:
        controller.stop()
        conn.send("stopped")


def _serve_pipe(conn, handler: _CountingHandler) -> None:
    """Answer the bench's stats / reset / stop commands until stop."""
    while True:
        cmd = conn.recv()
        if cmd == "stats":
            with handler.lock:
                conn.send({"messages": handler.messages, "bytes": handler.bytes,
                           "per_rcpt": dict(handler.per_rcpt), "sizes": list(handler.sizes)})
        elif cmd == "reset":
            with handler.lock:
                handler.per_rcpt.clear()
                handler.sizes.clear()
                handler.messages = handler.bytes = 0
            conn.send("ok")
        elif cmd == "stop":
            break


# -- the lean sink: a minimal SMTP server of our own (asyncio streams). aiosmtpd reads DATA line
# by line in Python, ~4.7 ms of CPU for a 114 KB digest on the two cores the senders use; a relay
# would do that work on its own machine. This one reads DATA in bulk up to the terminator.

async def _lean_session(reader, writer, handler: _CountingHandler) -> None:
    env = SimpleNamespace(rcpt_tos=[], content=b"")      # what aiosmtpd's handler is given
    writer.write(b"220 127.0.0.1 lean sink ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-127.0.0.1\r\n250-SIZE 50000000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb == b"HELO":
                writer.write(b"250 127.0.0.1\r\n")
            elif verb == b"MAIL":
                env.rcpt_tos = []
                writer.write(b"250 2.1.0 Ok\r\n")
            elif verb == b"RCPT":
                start, end = line.find(b"<"), line.find(b">")
                if start < 0 or end < start:
                    writer.write(b"501 5.5.4 Syntax: RCPT TO:<address>\r\n")
                else:
                    env.rcpt_tos.append(line[start + 1:end].decode("utf-8", "replace"))
                    writer.write(b"250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                if not env.rcpt_tos:
                    writer.write(b"503 5.5.1 Error: need RCPT command\r\n")
                else:
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    data = await reader.readuntil(b"\r\n.\r\n")
                    # the message: without the terminator's ".\r\n", dot-stuffing undone
                    body = data[:-3]
                    env.content = body.replace(b"\r\n..", b"\r\n.")
                    if env.content.startswith(b".."):
                        env.content = env.content[1:]
                    reply = await handler.handle_DATA(None, None, env)
                    writer.write(reply.encode("ascii") + b"\r\n")
                    env.rcpt_tos = []
            elif verb == b"RSET":
                env.rcpt_tos = []
                writer.write(b"250 2.0.0 Ok\r\n")
            elif verb == b"NOOP":
                writer.write(b"250 2.0.0 Ok\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"502 5.5.2 Error: command not recognized\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def _lean_main(conn, port: int) -> None:
    handler = _CountingHandler()
    loop = asyncio.new_event_loop()

    async def serve():
        return await asyncio.start_server(lambda r, w: _lean_session(r, w, handler), "127.0.0.1", port,
                                          limit=64 * 1024 * 1024)

    server = loop.run_until_complete(serve())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    conn.send(("ready", port))
    try:
        _serve_pipe(conn, handler)
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        conn.send("stopped")


SINKS = {"lean": _lean_main, "aiosmtpd": _sink_main}
DEFAULT_KIND = "aiosmtpd"      # python -m bench --sink KIND sets it (the edition stage: --edition-sink)


class SinkProcess:
    """The sink in its own process: ``kind`` "lean" (bench/sink.py's own minimal server) or
    "aiosmtpd"; by default DEFAULT_KIND."""

    def __init__(self, kind: str | None = None):
        self.port = free_port()
        self.kind = kind = kind or DEFAULT_KIND
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=SINKS[kind], args=(child, self.port), daemon=True, name="smtp-sink")

    def __enter__(self) -> "SinkProcess":
        self.proc.start()
        if not self.conn.poll(60):
            raise RuntimeError("SMTP sink did not start")
        msg = self.conn.recv()
        assert msg[0] == "ready", msg
        return self

    def stats(self) -> dict:
        self.conn.send("stats")
        return self.conn.recv()

    def reset(self) -> None:
        self.conn.send("reset")
        self.conn.recv()

    def __exit__(self, *exc) -> None:
        try:
            self.conn.send("stop")
            self.conn.poll(10) and self.conn.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
