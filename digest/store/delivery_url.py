"""What ``DIGEST_DELIVERY`` says: parsed once here, so settings can be checked at start-up
(before anything runs) and the delivery backends use the same reading.

    smtp://[user:pass@]host:port[?starttls=1|ssl=1]   a real SMTP server
    file://DIR                                         a folder of .eml files
    dry-run                                            sends and records nothing
    discard                                            sends nothing, records as sent (benchmarks)
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

EXPECTED = "smtp://[user:pass@]host:port[?starttls=1|ssl=1], file://DIR or dry-run"


class DeliveryConfigError(ValueError):
    """``DIGEST_DELIVERY`` cannot be understood."""


def mask_delivery(value: str) -> str:
    """``value`` with any password replaced by ``***`` (for logs and errors)."""
    return re.sub(r"(://[^:/@\s]*:)[^@/\s]*@", r"\1***@", value or "")


@dataclass
class SMTPConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False


def _flag(value: str, spec: str, key: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise DeliveryConfigError(f"DIGEST_DELIVERY {mask_delivery(spec)!r}: {key}={value!r} is not 0 or 1")


def parse_delivery(spec: str):
    """("smtp", SMTPConfig) | ("file", Path) | ("dry-run" | "discard", None); DeliveryConfigError otherwise."""
    raw = (spec or "").strip()
    shown = mask_delivery(raw)
    if raw.lower() in ("dry-run", "dryrun", "dry_run"):
        return "dry-run", None
    if raw.lower() == "discard":
        return "discard", None
    if raw.lower().startswith("file://"):
        path = raw[len("file://"):]
        if not path or "\x00" in path:
            raise DeliveryConfigError(f"DIGEST_DELIVERY {shown!r}: file:// needs a directory, e.g. file://./var/outbox")
        return "file", Path(path)
    if raw.lower().startswith(("smtp://", "smtps://")):
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError as exc:
            if "Port" in str(exc):  # urllib's wording is about casting; say what is expected
                raise DeliveryConfigError(f"DIGEST_DELIVERY {shown!r}: the port is not a number from 1 to 65535; "
                                          "expected smtp://host:port") from None
            raise DeliveryConfigError(f"DIGEST_DELIVERY {shown!r}: {exc}") from None
        if not parts.hostname:
            raise DeliveryConfigError(f"DIGEST_DELIVERY {shown!r}: no host; expected smtp://[user:pass@]host:port")
        if parts.path not in ("", "/") or parts.fragment:
            raise DeliveryConfigError(f"DIGEST_DELIVERY {shown!r}: unexpected path; expected smtp://[user:pass@]host:port[?starttls=1|ssl=1]")
        options = {"starttls": False, "ssl": parts.scheme.lower() == "smtps"}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in options:
                raise DeliveryConfigError(f"DIGEST_DELIVERY {shown!r}: unknown option {key!r} (starttls, ssl)")
            options[key] = _flag(value, raw, key)
        if options["starttls"] and options["ssl"]:
            raise DeliveryConfigError(f"DIGEST_DELIVERY {shown!r}: choose starttls=1 or ssl=1, not both")
        if port is None:
            port = 465 if options["ssl"] else 25
        return "smtp", SMTPConfig(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            starttls=options["starttls"],
            ssl=options["ssl"],
        )
    raise DeliveryConfigError(f"DIGEST_DELIVERY {shown!r} is not understood; expected {EXPECTED}")
