"""Fetch a listing from http(s)://, file:// or a local path.

HTTP: timeouts, bounded retries with backoff on 5xx/timeouts/connection errors, conditional GET
(ETag / Last-Modified), a response-size cap and an honest User-Agent. The read timeout bounds
each read; ``settings.http_deadline`` bounds the whole fetch, retries included, so a server
that drip-feeds a byte at a time (never idle long enough for a timeout) is given up too.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from digest.store.settings import Settings

XML_TYPES = ("xml", "rss", "atom")
JSON_TYPES = ("json",)


class FetchError(Exception):
    """A one-line, user-facing reason why a source could not be fetched."""


@dataclass
class FetchResult:
    body: bytes
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    status: int = 200


def is_remote(location: str) -> bool:
    return location.lower().startswith(("http://", "https://"))


def local_path(location: str, base: Path | None = None) -> Path:
    if location.lower().startswith("file://"):
        parsed = urlparse(location)
        path = Path(unquote(parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else unquote(parsed.path))
    else:
        path = Path(location).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def fetch(location: str, settings: Settings, *, etag: str | None = None, last_modified: str | None = None,
          expect: str | None = None, base: Path | None = None) -> FetchResult:
    if is_remote(location):
        return _fetch_http(location, settings, etag=etag, last_modified=last_modified, expect=expect)
    if "://" in location and not location.lower().startswith("file://"):
        raise FetchError(f"unsupported URL scheme in {location!r} (use http(s)://, file:// or a path)")
    path = local_path(location, base)
    try:
        size = path.stat().st_size
        if size > settings.max_feed_bytes:
            raise FetchError(f"{path}: {size} bytes is over the {settings.max_feed_bytes}-byte limit")
        return FetchResult(body=path.read_bytes())
    except FileNotFoundError:
        raise FetchError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FetchError(f"{path}: is a directory, not a listing file") from None
    except PermissionError:
        raise FetchError(f"{path}: permission denied") from None


def _check_type(content_type: str | None, expect: str | None, url: str) -> None:
    if not content_type or expect not in ("arxiv", "hf-daily"):
        return
    ct = content_type.split(";")[0].strip().lower()
    wanted = XML_TYPES if expect == "arxiv" else JSON_TYPES
    if ct == "text/plain" or any(w in ct for w in wanted):
        return
    raise FetchError(f"{url}: wrong content type {ct!r} for a {expect} source (expected {'XML' if expect == 'arxiv' else 'JSON'})")


def _fetch_http(url: str, settings: Settings, *, etag, last_modified, expect) -> FetchResult:
    headers = {"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    attempts = settings.http_retries + 1
    delay = settings.http_backoff
    last_error = "unknown error"
    deadline = time.monotonic() + settings.http_deadline
    for attempt in range(1, attempts + 1):
        left = deadline - time.monotonic()
        client = httpx.Client(timeout=min(settings.http_timeout, max(left, 0.01)), follow_redirects=True,
                              headers=headers)
        # the read timeout cannot catch a byte now and then: past the deadline the client is
        # closed under the request, which then fails at once
        watchdog = threading.Timer(max(left, 0.0), client.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            return _one_request(client, url, settings, expect, deadline)
        except _Retryable as exc:
            last_error = str(exc)
        except (httpx.HTTPError, RuntimeError, OSError) as exc:
            if time.monotonic() < deadline:
                raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
            last_error = "deadline"
        finally:
            watchdog.cancel()
            client.close()
        if last_error == "deadline":
            raise FetchError(f"{url}: not fetched within {settings.http_deadline:g} s (DIGEST_HTTP_DEADLINE); "
                             "the server is too slow")
        if attempt == attempts:
            break
        if time.monotonic() + delay >= deadline:
            raise FetchError(f"{url}: {last_error}; no time left for a retry within {settings.http_deadline:g} s "
                             "(DIGEST_HTTP_DEADLINE)")
        time.sleep(delay)
        delay *= 2
    raise FetchError(f"{url}: {last_error} (gave up after {attempts} attempts)")


class _Retryable(Exception):
    pass


def _one_request(client: httpx.Client, url: str, settings: Settings, expect, deadline: float) -> FetchResult:
    try:
        with client.stream("GET", url) as response:
            if response.status_code == 304:
                return FetchResult(body=b"", not_modified=True, status=304,
                                   etag=response.headers.get("etag"),
                                   last_modified=response.headers.get("last-modified"))
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retryable(f"HTTP {response.status_code} {response.reason_phrase}")
            if response.status_code >= 400:
                raise FetchError(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > settings.max_feed_bytes:
                raise FetchError(f"{url}: response of {declared} bytes is over the {settings.max_feed_bytes}-byte limit")
            content_type = response.headers.get("content-type")
            _check_type(content_type, expect, url)
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                if time.monotonic() >= deadline:
                    raise FetchError(f"{url}: not fetched within {settings.http_deadline:g} s (DIGEST_HTTP_DEADLINE); "
                                     f"the server is too slow ({total} bytes so far)")
                total += len(chunk)
                if total > settings.max_feed_bytes:
                    raise FetchError(f"{url}: response is over the {settings.max_feed_bytes}-byte limit")
                chunks.append(chunk)
            return FetchResult(body=b"".join(chunks), etag=response.headers.get("etag"),
                               last_modified=response.headers.get("last-modified"),
                               content_type=content_type, status=response.status_code)
    except httpx.TimeoutException:
        if time.monotonic() >= deadline:
            raise
        raise _Retryable(f"timed out after {settings.http_timeout:g} s") from None
    except httpx.ConnectError as exc:
        msg = str(exc) or "connection failed"
        if "name" in msg.lower() and ("resolution" in msg.lower() or "known" in msg.lower()):
            raise FetchError(f"{url}: DNS lookup failed ({msg})") from None
        raise _Retryable(f"connection failed ({msg})") from None
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        if time.monotonic() >= deadline:      # the watchdog closed the connection
            raise
        raise _Retryable(f"connection dropped ({exc})") from None
