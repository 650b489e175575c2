"""The topics config in use now: the file on disk when it is valid, else the last valid one
remembered in the database, so a bad edit never stops the morning email."""
from __future__ import annotations

import logging

from sqlalchemy import delete

from digest import clock
from digest.store.db import session_scope
from digest.store.models import AppState
from digest.store.settings import Settings
from digest.store.state import get_state, put_state
from digest.topics.config import TopicConfig, TopicConfigError, load_topics, parse_topics

log = logging.getLogger("digest.pipeline")


class NoValidTopicsError(Exception):
    """topics.yaml is invalid and no earlier valid config is known (one clear line)."""


def current_topics(settings: Settings) -> tuple[TopicConfig, str | None]:
    """The topics to use now and, when the file on disk is invalid, why it was not used.

    A valid file is remembered in the database; an invalid edit is reported and the last
    valid config keeps being used, so a typo never stops the morning email.
    """
    path = settings.topics_file
    try:
        config = load_topics(path)
    except TopicConfigError as exc:
        error = str(exc)
        with session_scope(settings) as session:
            put_state(session, "topics_error", {"error": error, "file": str(path),
                                                 "at": clock.now().isoformat()})
            last = get_state(session, "topics_valid")
            saved = dict(last.value) if last else None
        if not saved:
            more = f" (and {len(exc.errors) - 1} more; see digest topics check)" if len(exc.errors) > 1 else ""
            raise NoValidTopicsError(f"topics config is invalid and no earlier valid config is known: "
                                     f"{exc.errors[0] if exc.errors else error}{more}") from None
        log.error("topics config %s is invalid; using the last valid one (%s): %s", path, saved.get("at"), error)
        return parse_topics(saved["text"], f"{path} (last valid, {saved.get('at')})"), error
    with session_scope(settings) as session:
        put_state(session, "topics_valid", {"text": path.read_text(encoding="utf-8-sig"), "version": config.version,
                                             "at": clock.now().isoformat()})
        session.execute(delete(AppState).where(AppState.key == "topics_error"))
    return config, None
