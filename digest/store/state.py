"""Small named values kept in the database (`app_state`): the last valid topics config, the
scheduler's last tick, the last send. Two processes may write the same key at once."""
from __future__ import annotations

from digest import clock
from digest.store.models import AppState


def get_state(session, key: str) -> AppState | None:
    return session.get(AppState, key)


def put_state(session, key: str, value: dict) -> None:
    """Upsert one app_state row (two processes may write the same key at once)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    values = {"key": key, "value": value, "updated_at": clock.now()}
    if dialect in ("sqlite", "postgresql"):
        ins = (sqlite if dialect == "sqlite" else postgresql).insert(AppState).values(**values)
        session.execute(ins.on_conflict_do_update(index_elements=["key"],
                                                  set_={"value": ins.excluded.value,
                                                        "updated_at": ins.excluded.updated_at}))
        return
    row = session.get(AppState, key) or AppState(key=key)
    row.value, row.updated_at = value, values["updated_at"]
    session.add(row)
