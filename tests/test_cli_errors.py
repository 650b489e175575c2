"""Every usage mistake and every bad setting, through the installed `digest` entry point:
one line naming the problem, a non-zero exit, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DIGEST = Path(sys.executable).parent / "digest"
SMTP_DOWN = "smtp://127.0.0.1:9"  # nothing listens on the discard port here

# (id, arguments, settings that differ from the test's valid ones, expected exit code, words the line must contain)
USAGE = [
    ("unknown-command", ["foo"], {}, 2, ["No such command", "foo"]),
    ("unknown-option", ["send-now", "--bogus"], {}, 2, ["No such option", "--bogus"]),
    ("history-missing-subscriber", ["history"], {}, 2, ["Missing option", "--subscriber"]),
    ("preview-missing-subscriber", ["preview"], {}, 2, ["Missing option", "--subscriber"]),
    ("add-missing-topics", ["subscribers", "add", "x@example.org"], {}, 2, ["Missing option", "--topics"]),
    ("stats-editions-not-a-number", ["stats", "--editions", "abc"], {}, 2, ["--editions", "abc"]),
    ("edition-not-a-date", ["send-now", "--no-ingest", "--edition", "2026-13-01"], {}, 2, ["--edition", "2026-13-01"]),
    ("ingest-unknown-kind", ["ingest", "--kind", "rss", "--from", "x.xml"], {}, 2, ["--kind", "rss"]),
    ("worker-concurrency-zero", ["worker", "--concurrency", "0"], {}, 2, ["--concurrency", "0"]),
    ("web-port-not-a-number", ["web", "--port", "http"], {"DIGEST_SECRET_KEY": "k" * 32}, 2, ["--port", "http"]),
    ("unknown-db-subcommand", ["db", "nope"], {}, 2, ["No such command", "nope"]),
    ("unknown-topics-subcommand", ["topics", "nope"], {}, 2, ["No such command", "nope"]),
    ("extra-argument", ["send-now", "extra"], {}, 2, ["unexpected extra argument", "extra"]),
    ("import-missing-file", ["subscribers", "import", "missing.csv"], {}, 2, ["missing.csv"]),
    ("history-unknown-subscriber", ["history", "--subscriber", "ghost@example.org"], {}, 2, ["ghost@example.org"]),
    ("send-now-unknown-subscriber", ["send-now", "--no-ingest", "--subscriber", "ghost@example.org"], {}, 2,
     ["ghost@example.org"]),
    ("compact-keep-days-not-a-number", ["db", "compact", "--keep-days", "x"], {}, 2, ["--keep-days", "x"]),
    ("format-unknown", ["history", "--subscriber", "ghost@example.org", "--format", "xml"], {}, 2, ["--format", "xml"]),
    ("web-port-out-of-range", ["web", "--port", "99999"], {"DIGEST_SECRET_KEY": "k" * 32}, 2, ["--port", "99999"]),
    ("list-status-unknown", ["subscribers", "list", "--status", "bogus"], {}, 2, ["--status", "bogus"]),
    ("stats-editions-negative", ["stats", "--editions", "-1"], {}, 2, ["--editions", "-1"]),
    ("compact-keep-days-zero", ["db", "compact", "--keep-days", "0"], {}, 2, ["--keep-days", "0"]),
    ("export-to-missing-folder", ["subscribers", "export", "--out", "/nonexistent/dir/x.csv"], {}, 1,
     ["/nonexistent/dir/x.csv", "No such file"]),
]
SETTINGS = [
    ("delivery-one-slash", ["status"], {"DIGEST_DELIVERY": "smtp:/bad"}, 2, ["DIGEST_DELIVERY", "smtp:/bad", "smtp://"]),
    ("delivery-ftp", ["status"], {"DIGEST_DELIVERY": "ftp://x"}, 2, ["DIGEST_DELIVERY", "ftp://x", "file://"]),
    ("delivery-file-no-dir", ["status"], {"DIGEST_DELIVERY": "file://"}, 2, ["DIGEST_DELIVERY", "directory"]),
    ("delivery-port-not-a-number", ["status"], {"DIGEST_DELIVERY": "smtp://host:notaport"}, 2,
     ["DIGEST_DELIVERY", "notaport", "port"]),
    ("section-cap-not-a-number", ["status"], {"DIGEST_SECTION_CAP": "abc"}, 2, ["DIGEST_SECTION_CAP", "abc", "whole number"]),
    ("lookback-zero", ["stats"], {"DIGEST_LOOKBACK_DAYS": "0"}, 2, ["DIGEST_LOOKBACK_DAYS", "'0'", ">= 1"]),
    ("send-empty-not-a-bool", ["status"], {"DIGEST_SEND_EMPTY": "maybe"}, 2, ["DIGEST_SEND_EMPTY", "maybe", "true or false"]),
    ("smtp-timeout-negative", ["status"], {"DIGEST_SMTP_TIMEOUT": "-1"}, 2, ["DIGEST_SMTP_TIMEOUT", "-1"]),
    ("matcher-unknown", ["status"], {"DIGEST_MATCHER": "fuzzy"}, 2, ["DIGEST_MATCHER", "fuzzy", "lexical"]),
    ("database-url-garbage", ["status"], {"DIGEST_DATABASE_URL": "garbage"}, 2, ["DIGEST_DATABASE_URL", "garbage"]),
    ("database-driver-missing", ["status"], {"DIGEST_DATABASE_URL": "mysql+pymysql://u@127.0.0.1/db"}, 2,
     ["DIGEST_DATABASE_URL", "pymysql"]),
    ("postgres-extra-missing", ["status"], {"DIGEST_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1/db",
                                            "_HIDE_PSYCOPG": "1"}, 2,
     ["DIGEST_DATABASE_URL", "pip install 'digest[postgres]'"]),
    ("database-unreachable", ["status"], {"DIGEST_DATABASE_URL": "postgresql+psycopg://u:pw@127.0.0.1:9/db"}, 1,
     ["127.0.0.1:9", "refused"]),
    ("ingest-cron-bad", ["status"], {"DIGEST_INGEST_CRON": "bad cron"}, 2, ["DIGEST_INGEST_CRON", "bad cron", "cron"]),
    ("send-time-25h-run", ["run", "--no-wait"], {"DIGEST_SEND_TIME": "25:00"}, 2, ["DIGEST_SEND_TIME", "25:00", "HH:MM"]),
    ("send-time-no-colon", ["send-now", "--no-ingest"], {"DIGEST_SEND_TIME": "8am"}, 2, ["DIGEST_SEND_TIME", "8am"]),
    ("trusted-proxies-bad", ["status"], {"DIGEST_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, 2,
     ["DIGEST_TRUSTED_PROXIES", "proxy.local", "networks"]),
    ("from-not-an-address", ["status"], {"DIGEST_FROM": "not-an-address"}, 2, ["DIGEST_FROM", "not-an-address", "address"]),
    ("public-url-not-a-url", ["status"], {"DIGEST_PUBLIC_URL": "not a url"}, 2, ["DIGEST_PUBLIC_URL", "not a url", "http"]),
    ("public-url-ftp", ["status"], {"DIGEST_PUBLIC_URL": "ftp://example.org"}, 2, ["DIGEST_PUBLIC_URL", "ftp://example.org"]),
    ("mailto-not-an-address", ["status"], {"DIGEST_UNSUBSCRIBE_MAILTO": "nobody"}, 2, ["DIGEST_UNSUBSCRIBE_MAILTO", "nobody"]),
    ("now-not-an-instant", ["status"], {"DIGEST_NOW": "yesterday"}, 2, ["DIGEST_NOW", "yesterday"]),
    ("settings-toml-broken", ["status"], {"_SETTINGS_TOML": "send_time = \n"}, 2, ["settings.toml"]),
    ("settings-toml-bad-value", ["status"], {"_SETTINGS_TOML": "section_cap = \"many\"\n"}, 2,
     ["section_cap", "settings.toml", "many"]),
    ("web-dev-secret", ["web"], {"DIGEST_SECRET_KEY": None}, 2, ["DIGEST_SECRET_KEY", "digest secret"]),
    ("smtp-send-dev-secret", ["send-now", "--no-ingest"], {"DIGEST_SECRET_KEY": None, "DIGEST_DELIVERY": SMTP_DOWN}, 2,
     ["DIGEST_SECRET_KEY", "digest secret"]),
    ("smtp-run-dev-secret", ["run", "--no-wait"], {"DIGEST_SECRET_KEY": None, "DIGEST_DELIVERY": SMTP_DOWN}, 2,
     ["DIGEST_SECRET_KEY", "digest secret"]),
    ("worker-dry-run", ["worker", "--once"], {"DIGEST_DELIVERY": "dry-run"}, 2, ["DIGEST_DELIVERY", "dry-run"]),
    ("templates-dir-missing", ["status"], {"DIGEST_TEMPLATES_DIR": "/nonexistent"}, 2,
     ["DIGEST_TEMPLATES_DIR", "digest.mjml.j2"]),
    ("list-id-header-injection", ["status"], {"DIGEST_LIST_ID": "a\nBcc: x@evil.example"}, 2, ["DIGEST_LIST_ID", "dot-atom"]),
    ("list-id-space", ["status"], {"DIGEST_LIST_ID": "a b"}, 2, ["DIGEST_LIST_ID", "dot-atom"]),
    ("user-agent-newline", ["status"], {"DIGEST_USER_AGENT": "x\ny"}, 2, ["DIGEST_USER_AGENT", "printable"]),
]
CASES = USAGE + SETTINGS


def run_case(args: list[str], overrides: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for key, value in overrides.items():
        if key == "_HIDE_PSYCOPG":  # a machine without the postgres extra: psycopg is not importable
            hide = tmp_path / "nopsycopg"
            (hide / "psycopg").mkdir(parents=True)
            (hide / "psycopg" / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n")
            env["PYTHONPATH"] = str(hide)
        elif key == "_SETTINGS_TOML":
            (Path(env["DIGEST_CONFIG_DIR"]) / "settings.toml").write_text(value, encoding="utf-8")
        elif value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([str(DIGEST), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_the_entry_point_is_installed():
    assert DIGEST.is_file(), f"{DIGEST} is missing: pip install -e . in this environment"


@pytest.mark.parametrize("case_id, args, overrides, code, words", CASES, ids=[c[0] for c in CASES])
def test_one_line_and_exit_code(settings, tmp_path, case_id, args, overrides, code, words):
    out = run_case(args, overrides, tmp_path)
    text = out.stdout + out.stderr
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text
    assert out.returncode == code, text
    assert len(lines) == 1, text
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_error_lines_do_not_wrap_at_80_columns(settings, tmp_path):
    long_url = "smtp://" + "a" * 120 + ".example.org:notaport"
    out = run_case(["status"], {"DIGEST_DELIVERY": long_url, "COLUMNS": "80"}, tmp_path)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and len(lines[0]) > 120 and "a" * 120 in lines[0], out.stderr


def test_web_on_a_port_in_use_says_so_in_one_line(settings, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_case(["web", "--port", str(port)], {"DIGEST_SECRET_KEY": "k" * 32}, tmp_path)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert out.returncode == 1 and len(lines) == 1, out.stdout + out.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
