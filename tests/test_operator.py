"""What an operator relies on: `digest check`, an honest `digest status`, dry runs that record
nothing, distinct exit codes for deferred and failed sends, output scripts can read."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime, time as dtime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from digest import clock as app_clock
from digest.check import run_checks, smtp_probe
from digest.scheduler import DigestScheduler
from digest.store import locks
from digest.store.db import session_factory
from digest.store.delivery_url import SMTPConfig
from digest.store.models import Digest
from digest.store.settings import Settings, reset_settings_cache
from tests.factories import add_paper, add_subscriber
from tests.smtp_server import free_port, smtp_sink

DIGEST = Path(sys.executable).parent / "digest"


def digest(*args, env=None, cwd=None):
    out = subprocess.run([str(DIGEST), *args], capture_output=True, text=True, env=env or os.environ.copy(),
                         cwd=cwd, timeout=120)
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    return out


@pytest.fixture
def sink():
    yield from smtp_sink()


def _use(monkeypatch, **env) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings_cache()
    return Settings()


def _seed(settings, n_subscribers=1, *, seen=None):
    seen = seen or app_clock.now() - timedelta(hours=1)
    with session_factory(settings)() as s:
        for i in range(n_subscribers):
            add_subscriber(s, f"reader{i}@example.org", ["medical-segmentation"])
        add_paper(s, "2611.05000", seen=seen, title="Tumor segmentation in CT with a U-Net",
                  abstract="We study medical image segmentation of tumours in CT scans.")
        s.commit()


def _digest_count(settings) -> int:
    with session_factory(settings)() as s:
        return s.scalar(select(func.count()).select_from(Digest))


# ------------------------------------------------------------------ digest check

def test_check_against_a_real_smtp_server_sends_nothing(settings, sink, monkeypatch):
    s = _use(monkeypatch, DIGEST_DELIVERY=sink.url)
    out = digest("check", "--format", "json")
    rows = {r["check"]: r for r in json.loads(out.stdout)}
    assert out.returncode == 0, out.stdout
    assert rows["smtp"]["result"] == "OK" and "connect, EHLO, QUIT" in rows["smtp"]["detail"], rows["smtp"]
    assert rows["settings"]["result"] == "OK"
    assert rows["topics.yaml"]["result"] == "OK" and "3 topics" in rows["topics.yaml"]["detail"]
    assert rows["secret key"]["result"] == "OK"
    assert rows["public URL"]["result"] == "OK"          # https
    assert rows["database"]["result"] in ("OK", "WARN")  # an empty SQLite file is created on first use
    assert sink.messages == []                           # nothing was sent
    assert s.delivery == sink.url


def test_check_fails_when_smtp_is_down_and_exits_1(settings, monkeypatch):
    _use(monkeypatch, DIGEST_DELIVERY=f"smtp://127.0.0.1:{free_port()}")
    out = digest("check")
    assert out.returncode == 1
    line = next(line for line in out.stdout.splitlines() if "smtp" in line and "FAIL" in line)
    assert "127.0.0.1" in line


def test_smtp_probe_with_auth(settings):
    """AUTH as configured: a wrong password is a FAIL naming the step; a right one an OK with a
    warning that the password travels unencrypted (no STARTTLS configured)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"digest" and auth_data.password == b"right"
        return AuthResult(success=ok)

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # pragma: no cover - never reached
            raise AssertionError("the probe must not send")

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False, ready_timeout=10)
    controller.start()
    try:
        good = smtp_probe(SMTPConfig("127.0.0.1", port, "digest", "right"))
        bad = smtp_probe(SMTPConfig("127.0.0.1", port, "digest", "wrong"))
    finally:
        controller.stop()
    assert good.status == "WARN" and "AUTH" in good.detail and "unencrypted" in good.detail, good
    assert bad.status == "FAIL" and "after connect, EHLO" in bad.detail, bad


def test_check_with_bad_topics_dev_key_and_plain_http(settings, config_dir, monkeypatch):
    (config_dir / "topics.yaml").write_text("topics:\n  - id: Bad Id\n", encoding="utf-8")
    monkeypatch.delenv("DIGEST_SECRET_KEY")
    s = _use(monkeypatch, DIGEST_PUBLIC_URL="http://digest.example.org", DIGEST_FROM="Digest <digest@localhost>")
    results = {r.name: r for r in run_checks(s)}
    assert results["topics.yaml"].status == "FAIL" and "topics.yaml" in results["topics.yaml"].detail
    assert results["secret key"].status == "WARN"      # fine for the file outbox
    assert results["public URL"].status == "WARN" and "https" in results["public URL"].detail
    assert results["From domain"].status == "WARN"
    out = digest("check")
    assert out.returncode == 1 and "FAIL" in out.stdout


def test_scheduler_logs_the_checks_at_start(settings, monkeypatch, caplog):
    s = _use(monkeypatch, DIGEST_PUBLIC_URL="http://digest.example.org")
    with caplog.at_level(logging.INFO, logger="digest.scheduler"):
        DigestScheduler(s).log_checks()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=check")]
    assert any("name=public-URL result=WARN" in line for line in lines), lines
    assert any("name=topics.yaml result=OK" in line for line in lines), lines
    assert len(lines) == len(run_checks(s))


# ------------------------------------------------------------------ digest status

def test_status_says_no_scheduler_runs_without_a_live_lease(settings):
    out = digest("status")
    assert "no scheduler is running" in out.stdout and "next" not in out.stdout
    sched = DigestScheduler(settings)
    with session_factory(settings)() as s:
        assert locks.acquire(s, "scheduler", sched.holder, 60)
    sched.add_jobs()
    sched.scheduler.start(paused=True)
    try:
        sched._safe(sched.record_status)()
        live = digest("status").stdout
        assert f"scheduler {sched.holder} is running" in live and "next send-tick" in live, live

        def send_tick():
            raise RuntimeError("hour must be in 0..23")
        sched._safe(send_tick)()          # the first failure is recorded at once
        assert "job send_tick failing since" in digest("status").stdout
        sched._safe(send_tick)()
        sched._safe(sched.record_status)()  # the rest with the status job, every minute
        failing = digest("status").stdout
        assert "(2 runs in a row)" in failing and "hour must be in 0..23" in failing, failing
        assert "last successful send tick: never" in failing
    finally:
        sched.scheduler.shutdown(wait=False)
    with session_factory(settings)() as s:   # the process died: its lease lapses
        locks.release(s, "scheduler", sched.holder)
    dead = digest("status").stdout
    assert f"no scheduler is running (the last one, {sched.holder}" in dead and "next send-tick" not in dead


def test_a_failed_adhoc_ingest_does_not_stay_a_source(settings, tmp_path, monkeypatch):
    missing = tmp_path / "missing.xml"
    assert digest("ingest", "--from", str(missing)).returncode == 1
    assert f"{missing} (ad hoc)" in digest("status").stdout
    later = dict(os.environ, DIGEST_NOW=(app_clock.now() + timedelta(days=2)).isoformat())
    assert str(missing) not in digest("status", env=later).stdout


# ------------------------------------------------------------------ dry runs, exit codes

def test_dry_run_delivery_records_nothing_and_loses_no_paper(settings, monkeypatch):
    _seed(settings)
    dry = digest("send-now", "--no-ingest", env=dict(os.environ, DIGEST_DELIVERY="dry-run"))
    assert dry.returncode == 0 and "[dry-run] reader0@example.org" in dry.stdout, dry.stdout + dry.stderr
    assert _digest_count(settings) == 0
    real = digest("send-now", "--no-ingest")
    assert real.returncode == 0
    with session_factory(settings)() as s:
        assert [d.status for d in s.scalars(select(Digest))] == ["sent"]


def test_scheduler_with_dry_run_delivery_records_nothing(settings, monkeypatch, caplog, clock):
    s = _use(monkeypatch, DIGEST_DELIVERY="dry-run")
    midnight = datetime.combine(clock.date(), dtime(0), tzinfo=timezone.utc)
    _seed(s, seen=midnight + timedelta(hours=2))
    sched = DigestScheduler(s, clock=lambda: midnight + timedelta(hours=8, minutes=5))
    with caplog.at_level(logging.INFO, logger="digest.scheduler"):
        sched.send_tick()
        sched.send_tick()
    assert _digest_count(s) == 0
    logged = [r.getMessage() for r in caplog.records if "event=dry-run" in r.getMessage()]
    assert len(logged) == 1 and "would_send=1" in logged[0], logged


def test_send_now_exit_codes_deferred_and_failed(settings, sink, monkeypatch):
    _seed(settings, 2)
    down = dict(os.environ, DIGEST_DELIVERY=f"smtp://127.0.0.1:{free_port()}", DIGEST_SMTP_RETRIES="0")
    deferred = digest("send-now", "--no-ingest", env=down)
    assert deferred.returncode == 3, deferred.stdout + deferred.stderr
    assert "deferred 2:" in deferred.stderr
    sink.refuse_rcpt("reader0@example.org", "550 5.1.1 <reader0@example.org>: user unknown")
    up = dict(os.environ, DIGEST_DELIVERY=sink.url, DIGEST_SMTP_RETRIES="0")
    # deferred digests wait a little before their retry: move the clock past it
    up["DIGEST_NOW"] = (app_clock.now() + timedelta(minutes=10)).isoformat()
    failed = digest("send-now", "--no-ingest", env=up)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "failed 1" in failed.stderr
    assert sink.delivered_to() == ["reader1@example.org"]
    help_text = digest("send-now", "--help").stdout
    assert "3 nothing failed but some digests were" in " ".join(help_text.split())


def test_secret_prints_a_fresh_key_that_web_accepts(settings):
    import urllib.request

    from tests.factories import wait_for

    first, second = digest("secret").stdout.strip(), digest("secret").stdout.strip()
    assert len(first) >= 40 and first != second
    assert "\n" not in first
    port = free_port()
    env = dict(os.environ, DIGEST_SECRET_KEY=first)
    web = subprocess.Popen([sys.executable, "-m", "digest.cli", "web", "--port", str(port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/subscribe", timeout=5) as r:
                return r.status == 200
        except OSError:
            return web.poll() is not None   # stop waiting if it exited

    try:
        assert wait_for(answers, 60) and web.poll() is None, web.stderr.read() if web.poll() is not None else ""
    finally:
        web.terminate()
        web.wait(timeout=30)


# ------------------------------------------------------------------ output for people and scripts

def test_no_alembic_lines_and_full_width_when_piped(settings, monkeypatch):
    long_name = "Professor " + "Averylongname " * 8
    env = dict(os.environ, COLUMNS="80")
    worker = digest("worker", "--once", env=env)   # first use of a fresh database: migrations run
    assert worker.returncode == 0 and "alembic" not in worker.stderr.lower(), worker.stderr
    assert digest("subscribers", "add", "someone.with.a.long.address@example.org", "--topics",
                  "medical-segmentation,vision-language,efficient-attention", "--name", long_name,
                  "--tz", "America/Argentina/Buenos_Aires").returncode == 0
    listed = digest("subscribers", "list", env=env).stdout
    row = next(line for line in listed.splitlines() if "someone.with" in line)
    assert "someone.with.a.long.address@example.org" in row and long_name.strip() in row
    assert "medical-segmentation, vision-language, efficient-attention" in row
    assert "America/Argentina/Buenos_Aires" in row


def test_history_and_ingest_for_scripts(settings, monkeypatch):
    _seed(settings)
    assert digest("send-now", "--no-ingest").returncode == 0
    tsv = digest("history", "--subscriber", "reader0@example.org", "--format", "tsv").stdout.splitlines()
    assert tsv[0].split("\t") == ["edition", "status", "sent_at", "subject", "section", "paper", "shown", "title"]
    fields = tsv[1].split("\t")
    assert fields[1] == "sent" and fields[5] == "2611.05000" and fields[7] == "Tumor segmentation in CT with a U-Net"
    rows = json.loads(digest("history", "--subscriber", "reader0@example.org", "--format", "json").stdout)
    assert rows[0]["paper"] == "2611.05000" and rows[0]["shown"] is True
    feed = Path(__file__).resolve().parent.parent / "samples" / "arxiv-cs.CV+eess.IV-rss-day1.xml"
    report = json.loads(digest("ingest", "--from", str(feed), "--format", "json").stdout)
    assert report[0]["source"] == str(feed) and report[0]["status"] in ("ok", "warning") and report[0]["new"] > 0


def test_discard_delivery_records_as_sent_for_benchmarks(settings, tmp_path):
    _seed(settings)
    out = digest("send-now", "--no-ingest", env=dict(os.environ, DIGEST_DELIVERY="discard"))
    assert out.returncode == 0, out.stderr
    with session_factory(settings)() as s:
        assert [d.status for d in s.scalars(select(Digest))] == ["sent"]
    assert not (tmp_path / "outbox").exists()
