"""The application clock: DIGEST_NOW moves "now" for every module, and the clock keeps running."""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from digest import clock


def test_system_clock_when_unset():
    before = datetime.now(timezone.utc)
    assert before <= clock.now() <= datetime.now(timezone.utc)
    assert abs(clock.timestamp() - time.time()) < 1


def test_digest_now_starts_the_clock_there_and_it_runs_on(monkeypatch):
    monkeypatch.setenv("DIGEST_NOW", "2027-03-28T00:59:59Z")
    first = clock.now()
    assert first - datetime(2027, 3, 28, 0, 59, 59, tzinfo=timezone.utc) < timedelta(seconds=1)
    time.sleep(0.01)
    assert clock.now() > first
    assert abs(clock.timestamp() - first.timestamp()) < 1


def test_offsets_and_naive_values_are_utc():
    assert clock.parse_instant("2026-11-01T01:30:00-04:00") == datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc)
    assert clock.parse_instant("2026-11-30 23:59:59") == datetime(2026, 11, 30, 23, 59, 59, tzinfo=timezone.utc)


def test_the_cli_subprocess_sees_the_clock(settings, monkeypatch):
    monkeypatch.setenv("DIGEST_NOW", "2031-01-31T23:59:59Z")
    code = "from digest import clock; print(clock.now().date())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() in ("2031-01-31", "2031-02-01")
