"""History retention: the leader deletes attempts and alerts older than
JOBSCHED_RETENTION_DAYS, oldest first, in small batches.

Each batch is one short transaction deleting at most ``BATCH`` rows by
primary key, so no lock is held for long, with a pause between batches so
the purge never competes with the workers' INSERTs for long. Rows are read
in id order (ids grow with time), so a pass stops at the first page of rows
newer than the cut-off instead of reading the whole table.

The newest attempt of each job is kept, however old: after Redis loses its
data the reconciler resumes ATLEAST_ONCE jobs after their last recorded
fire, and a yearly job must not run its last fire again.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from common.models import Alert, Execution
from common.timeutil import now_ms

log = logging.getLogger(__name__)

BATCH = 1000
PAUSE_S = 0.05
INTERVAL_S = 600.0
DAY_MS = 24 * 3600 * 1000


def purge_executions(sessions: sessionmaker, cutoff_ms: int,
                     keep_going: Callable[[], bool] = lambda: True,
                     pause: Callable[[float], object] = lambda s: None) -> int:
    """Delete attempts that finished before ``cutoff_ms`` (but each job's
    newest); returns how many were deleted."""
    deleted, after_id = 0, 0
    while keep_going():
        with sessions() as session:
            page = session.execute(
                select(Execution.id, Execution.job_id, Execution.scheduled_at_ms,
                       Execution.finished_at_ms)
                .where(Execution.id > after_id).order_by(Execution.id).limit(BATCH)).all()
        if not page:
            break
        after_id = page[-1].id
        old = [row for row in page if row.finished_at_ms < cutoff_ms]
        if old:
            with sessions() as session, session.begin():
                newest = dict(session.execute(
                    select(Execution.job_id, func.max(Execution.scheduled_at_ms))
                    .where(Execution.job_id.in_({row.job_id for row in old}))
                    .group_by(Execution.job_id)).all())
                doomed = [row.id for row in old if row.scheduled_at_ms < newest[row.job_id]]
                if doomed:
                    session.execute(delete(Execution).where(Execution.id.in_(doomed)))
            deleted += len(doomed)
        if page[-1].finished_at_ms >= cutoff_ms or len(page) < BATCH:
            break   # the rest is newer (ids grow with time)
        pause(PAUSE_S)
    return deleted


def purge_alerts(sessions: sessionmaker, cutoff_ms: int,
                 keep_going: Callable[[], bool] = lambda: True,
                 pause: Callable[[float], object] = lambda s: None) -> int:
    """Delete alerts raised before ``cutoff_ms``, oldest first (ids grow with
    time: each batch is the first rows by id); returns how many."""
    deleted = 0
    while keep_going():
        with sessions() as session, session.begin():
            doomed = session.scalars(select(Alert.id).where(Alert.created_at_ms < cutoff_ms)
                                     .order_by(Alert.id).limit(BATCH)).all()
            if doomed:
                session.execute(delete(Alert).where(Alert.id.in_(doomed)))
        deleted += len(doomed)
        if len(doomed) < BATCH:
            break
        pause(PAUSE_S)
    return deleted


class RetentionPurger(threading.Thread):
    """Runs the purge on the leader every ``INTERVAL_S``."""

    def __init__(self, sessions: sessionmaker, retention_days: int,
                 is_leader: Callable[[], bool], interval_s: float = INTERVAL_S):
        super().__init__(name="retention", daemon=True)
        self.sessions = sessions
        self.retention_ms = retention_days * DAY_MS
        self.is_leader = is_leader
        self.interval_s = interval_s
        self.stopping = threading.Event()

    def run_once(self, now: int) -> int:
        if not self.is_leader():
            return 0
        going = (lambda: self.is_leader() and not self.stopping.is_set())
        try:
            deleted = purge_executions(self.sessions, now - self.retention_ms, going,
                                       self.stopping.wait)
            alerts = purge_alerts(self.sessions, now - self.retention_ms, going,
                                  self.stopping.wait)
        except SQLAlchemyError as e:
            log.warning("retention purge postponed: %s", type(e).__name__)
            return 0
        if deleted or alerts:
            log.info("retention: deleted %d executions and %d alerts older than %d days",
                     deleted, alerts, self.retention_ms // DAY_MS)
        return deleted

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.run_once(now_ms())

    def stop(self) -> None:
        self.stopping.set()
