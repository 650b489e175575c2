"""A counting SMTP sink (aiosmtpd) that runs in its own process.

``SinkProcess`` starts it on 127.0.0.1, and answers ``stats()`` (messages received, per
recipient) and ``reset()`` over a pipe. Messages are accepted and dropped.
"""
from __future__ import annotations

import multiprocessing as mp
import socket
import threading
from collections import Counter


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
    finally:
        controller.stop()
        conn.send("stopped")


class SinkProcess:
    def __init__(self):
        self.port = free_port()
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_sink_main, args=(child, self.port), daemon=True, name="smtp-sink")

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
