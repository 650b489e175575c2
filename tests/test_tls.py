"""SMTP over TLS as operators run it: STARTTLS on 587 with AUTH, and TLS from the first byte
on 465, against a real aiosmtpd server with a certificate from a throw-away CA (trustme).
The client trusts the system store only, so the test CA is given through SSL_CERT_FILE,
the way an operator with a private CA would."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trustme

from digest.delivery.backends import open_backend
from digest.email.message import compose
from digest.email.render import Renderer
from digest.store.settings import Settings
from tests.digest_samples import realistic
from tests.smtp_server import SMTPSink


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, str(path)


def _server_context(authority):
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(params=["starttls", "implicit"])
def tls_sink(request, ca):
    ctx = _server_context(ca[0])
    kind = request.param
    sink = SMTPSink(starttls=ctx if kind == "starttls" else None, implicit_tls=ctx if kind == "implicit" else None,
                    login=("mailer", "s3cret:pass")).start()
    query = "starttls=1" if kind == "starttls" else "ssl=1"
    yield sink, f"smtp://mailer:s3cret%3Apass@127.0.0.1:{sink.port}?{query}"
    sink.stop()


def _message(settings):
    content = realistic(3, subscriber_id=1, email="reader@example.org", name="Reader")
    return compose(settings, content, Renderer(settings).render(content))


def _settings(delivery: str) -> Settings:
    return Settings(database_url="sqlite://", delivery=delivery, DIGEST_FROM="Paper Digest <digest@example.org>",
                    secret_key="test-secret", smtp_retries=1)


def test_delivers_over_tls_with_auth_when_the_ca_is_trusted(tls_sink, ca, monkeypatch):
    sink, url = tls_sink
    monkeypatch.setenv("SSL_CERT_FILE", ca[1])
    s = _settings(url)
    with open_backend(s, backoff_base=0.01, sleep=lambda _: None) as backend:
        result = backend.send(_message(s))
    assert result.ok, result
    assert sink.logins == ["mailer"]
    assert [m.rcpt_tos for m in sink.messages] == [["reader@example.org"]]


def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(tls_sink, tmp_path, monkeypatch):
    sink, url = tls_sink
    empty = tmp_path / "none.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))   # trust nothing: the server's CA is unknown
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    s = _settings(url)
    with open_backend(s, backoff_base=0.01, sleep=lambda _: None) as backend:
        result = backend.send(_message(s))
    assert not result.ok
    assert "certificate" in (result.error or "").lower()
    assert sink.messages == [] and sink.logins == []


def _check(env_extra: dict, url: str, tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update({"DIGEST_DELIVERY": url, "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path}/d.db",
                "DIGEST_SECRET_KEY": "test-secret", "DIGEST_FROM": "Paper Digest <digest@example.org>",
                "DIGEST_PUBLIC_URL": "https://digest.example.org"}, **env_extra)
    return subprocess.run([sys.executable, "-m", "digest.cli", "check"], env=env, text=True,
                          capture_output=True, timeout=120)


def test_digest_check_walks_tls_and_auth_and_names_a_bad_certificate(tls_sink, ca, tmp_path):
    sink, url = tls_sink
    ok = _check({"SSL_CERT_FILE": ca[1]}, url, tmp_path)
    line = next(ln for ln in ok.stdout.splitlines() if "smtp://127.0.0.1" in ln)
    assert "AUTH" in line and "nothing sent" in line, ok.stdout
    if "starttls" in url:
        assert "STARTTLS" in line
    assert sink.messages == []
    empty = tmp_path / "none.pem"
    empty.write_text("")
    bad = _check({"SSL_CERT_FILE": str(empty), "SSL_CERT_DIR": str(tmp_path)}, url, tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stdout + bad.stderr
    line = next(ln for ln in bad.stdout.splitlines() if "smtp://127.0.0.1" in ln)
    assert "certificate" in line.lower() and "s3cret" not in bad.stdout + bad.stderr
