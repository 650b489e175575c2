"""The bench's lean SMTP sink (bench/sink.py) counts what smtplib sends as aiosmtpd does."""
from __future__ import annotations

import smtplib

from bench.sink import SinkProcess

MESSAGE = (b"Subject: x\r\n\r\n" + b"=3D" + b"x" * 71 + b"=\r\n" + b".a line with a leading dot\r\n"
           + b"..two dots\r\n.\r\nend")


def _send(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("a@bench.example", ["One@bench.example", "two@bench.example"], MESSAGE)
        assert smtp.noop()[0] == 250 and smtp.rset()[0] == 250
        smtp.sendmail("a@bench.example", ["one@bench.example"], b"Subject: y\r\n\r\nbody\r\n")


def test_lean_sink_counts_like_aiosmtpd():
    seen = {}
    for kind in ("lean", "aiosmtpd"):
        with SinkProcess(kind) as sink:
            _send(sink.port)
            seen[kind] = sink.stats()
            sink.reset()
            assert sink.stats()["messages"] == 0
    lean, ref = seen["lean"], seen["aiosmtpd"]
    assert lean["messages"] == 2
    assert lean["per_rcpt"] == {"one@bench.example": 2, "two@bench.example": 1}
    assert (lean["sizes"], lean["per_rcpt"]) == (ref["sizes"], ref["per_rcpt"])


def test_lean_sink_refuses_what_it_cannot_take():
    with SinkProcess("lean") as sink, smtplib.SMTP("127.0.0.1", sink.port, timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.docmd("RCPT", "TO:no-brackets")[0] == 501
        assert smtp.docmd("DATA")[0] == 503              # no recipient yet
        assert smtp.docmd("VRFY", "x")[0] == 502
        assert sink.stats()["messages"] == 0
