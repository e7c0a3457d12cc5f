"""Whether the database and Redis answer, with the time each took."""
from __future__ import annotations

import time

from sqlalchemy import text

from api.services import Services


def _timed(check) -> dict:
    start = time.perf_counter()
    try:
        check()
        state = {"ok": True}
    except Exception as e:  # any failure means "down"; its kind is reported
        state = {"ok": False, "error": type(e).__name__}
    state["latencyMs"] = round((time.perf_counter() - start) * 1000, 1)
    return state


def health(services: Services) -> tuple[bool, dict]:
    def database():
        with services.sessions() as session:
            session.execute(text("SELECT 1"))

    checks = {"database": _timed(database), "redis": _timed(services.store.client.ping)}
    ok = all(c["ok"] for c in checks.values())
    return ok, {"status": "ok" if ok else "unavailable", **checks}
