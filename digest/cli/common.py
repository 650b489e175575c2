"""What every command group shares: exit codes, the one-line user error, --format, dates."""
from __future__ import annotations

from datetime import date
from typing import Optional

import typer

from digest.cli.output import FORMATS
from digest.store.settings import get_settings

# send-now exit codes (also in its --help and the README)
EXIT_FAILED = 1      # some digest failed for good (a 5xx reply); see `digest status`
EXIT_USAGE = 2       # a usage mistake or an invalid setting: nothing ran
EXIT_DEFERRED = 3    # nothing failed, but some digests were deferred and will be retried


class UserError(Exception):
    """A mistake the user can fix: printed as one line, exit code 2."""


def format_option():
    return typer.Option("table", "--format", help="table (people), tsv or json (scripts).")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"--format must be table, tsv or json, not {fmt!r}")
    return fmt


def delivery_kind(s) -> str:
    from digest.store.delivery_url import parse_delivery

    return parse_delivery(s.delivery)[0]


def current_settings():
    return get_settings()


def parse_date(value: Optional[str], what: str = "--edition") -> Optional[date]:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{what} must be a date like 2026-11-21, not {value!r}") from None
