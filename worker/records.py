"""Writing decided results to the database: one execution row per attempt,
with the alerts it raises, in one transaction per batch. A result the
database refuses (bad data) costs only itself."""
from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from common.models import Alert, Execution
from common.settings import Settings
from worker.decision import Recorded, unrecordable
from worker.outcome import DEFERRED, DROPPED

log = logging.getLogger(__name__)


class DatabaseDown(Exception):
    """The database did not take a write (unreachable, not a bad row)."""


def execution_row(recorded: Recorded, worker_id: str) -> dict:
    outcome = recorded.outcome
    msg = outcome.message
    return {
        "execution_id": msg.execution_id, "job_id": msg.spec.id, "attempt": msg.attempt,
        "redelivered": msg.redeliveries > 0, "scheduled_at_ms": msg.fire_ms,
        "started_at_ms": outcome.started_ms, "finished_at_ms": outcome.finished_ms,
        "status": outcome.status, "http_status": outcome.http_status,
        "duration_ms": outcome.finished_ms - outcome.started_ms, "error": outcome.error,
        "response_snippet": outcome.response_snippet, "worker_id": worker_id,
        "final": recorded.final,
    }


class Records:
    """The executions table as the result writer uses it."""

    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings

    def write(self, recorded: list[Recorded]) -> list[Recorded]:
        """Write decided results; returns them as written. One the database
        refuses gets a FAILED row naming the error, and an alert, instead.
        Raises DatabaseDown while the database does not answer."""
        try:
            self._write(recorded)
            return recorded
        except DatabaseDown:
            raise
        except Exception as e:
            if len(recorded) > 1:   # one at a time, to find the bad one
                return [x for r in recorded for x in self.write([r])]
            msg = recorded[0].outcome.message
            log.exception("the result of execution %s attempt %d cannot be recorded",
                          msg.execution_id, msg.attempt)
            return [self._write_failure(recorded[0].outcome, e)]

    def probe(self) -> None:
        """Raises unless the database answers."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def add_alerts(self, alerts: list[dict]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(Alert), alerts)

    def _write_failure(self, outcome, error: Exception) -> Recorded:
        """Write ``unrecordable``; if even that fails, the result is
        acknowledged without a row (it must not be called again in a loop)."""
        recorded = unrecordable(outcome, error, self.settings)
        try:
            self._write([recorded])
            return recorded
        except DatabaseDown:
            raise
        except Exception:
            log.exception("execution %s attempt %d: not even its failure could be recorded",
                          outcome.message.execution_id, outcome.message.attempt)
            return Recorded(replace(outcome, status=DROPPED), final=False)

    def _write(self, batch: list[Recorded]) -> None:
        try:
            self._insert(batch)
        except (IntegrityError, DataError):
            # Permanent: retrying cannot help. Rows one by one (in write) so
            # a single bad row does not hold back the others.
            raise
        except SQLAlchemyError as e:
            log.warning("cannot record %d results (%s)", len(batch), type(e).__name__)
            raise DatabaseDown() from e

    def _insert(self, batch: list[Recorded]) -> None:
        rows = [execution_row(r, r.worker_id or self.settings.worker_id) for r in batch
                if r.outcome.status not in (DEFERRED, DROPPED)]
        alerts = [a for r in batch for a in r.alerts]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(Execution), rows)
            if alerts:
                conn.execute(insert(Alert), alerts)
