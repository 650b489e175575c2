"""`digest db …`: database maintenance."""
from __future__ import annotations

from typing import Optional

import typer

from digest.cli.common import current_settings
from digest.cli.output import console

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)

@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (they also run automatically on first use).

    Example: DIGEST_DATABASE_URL=sqlite:///./var/digest.db digest db upgrade
    """
    from digest.store.db import current_revision, get_engine

    s = current_settings()
    get_engine(s.database_url)
    console.print(f"database at revision {current_revision(s.database_url)}")


@db_app.command("compact")
def db_compact(keep_days: Optional[int] = typer.Option(None, "--keep-days", min=1, help="Keep this many days of what digests carried (default DIGEST_LEDGER_KEEP_DAYS).")) -> None:
    """Forget what digests older than the history window carried (their rows stay) and delete the ledger sections no digest refers to; old papers still never come back.

    Example: digest db compact --keep-days 14
    """
    from digest.store.db import session_scope
    from digest.delivery.ledger import compact_ledger

    s = current_settings()
    with session_scope(s) as session:
        n = compact_ledger(session, keep_days=keep_days or s.ledger_keep_days, lookback_days=s.lookback_days)
    console.print(f"deleted {n} ledger sections")
