"""Execution history retention (dispatcher/retention.py) on a real database."""
from sqlalchemy import func, select

from common.models import Execution
from dispatcher import retention
from dispatcher.retention import DAY_MS, RetentionPurger, purge_executions

NOW = 1_900_000_000_000


def add_attempts(sessions, job_id, finished):
    with sessions() as session, session.begin():
        for at in finished:
            session.add(Execution(execution_id=f"{job_id}:{at}", job_id=job_id, attempt=1,
                                  redelivered=False, scheduled_at_ms=at, started_at_ms=at,
                                  finished_at_ms=at, status="SUCCESS", duration_ms=0))


def remaining(sessions) -> dict[str, list[int]]:
    with sessions() as session:
        rows = session.execute(select(Execution.job_id, Execution.scheduled_at_ms)
                               .order_by(Execution.id)).all()
    out: dict[str, list[int]] = {}
    for job_id, at in rows:
        out.setdefault(job_id, []).append(at)
    return out


def test_old_attempts_go_in_batches_and_each_jobs_newest_stays(sessions, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 7)   # several batches
    cutoff = NOW - 30 * DAY_MS
    old = [cutoff - 1000 * i for i in range(40, 0, -1)]          # 40 old, oldest first
    add_attempts(sessions, "busy", old)
    add_attempts(sessions, "yearly", [cutoff - 300 * DAY_MS])     # only ever one, long ago
    recent = [cutoff + 1000 * i for i in range(1, 21)]
    add_attempts(sessions, "busy", recent)
    pauses = []
    deleted = purge_executions(sessions, cutoff, pause=pauses.append)
    assert deleted == 40
    assert remaining(sessions) == {"busy": recent, "yearly": [cutoff - 300 * DAY_MS]}
    assert len(pauses) >= 40 // 7   # paused between batches
    assert purge_executions(sessions, cutoff) == 0   # nothing more; stops at new rows


def test_only_the_leader_purges(sessions):
    add_attempts(sessions, "a", [NOW - 40 * DAY_MS, NOW - 35 * DAY_MS, NOW])
    follower = RetentionPurger(sessions, 30, is_leader=lambda: False)
    assert follower.run_once(NOW) == 0
    leader = RetentionPurger(sessions, 30, is_leader=lambda: True)
    assert leader.run_once(NOW) == 2
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Execution)) == 1


def test_old_alerts_go_too(sessions, monkeypatch):
    from common.models import Alert
    from dispatcher.retention import purge_alerts
    monkeypatch.setattr(retention, "BATCH", 3)
    cutoff = NOW - 30 * DAY_MS
    with sessions() as session, session.begin():
        for i, at in enumerate([cutoff - 5000, cutoff - 4000, cutoff - 3000, cutoff - 2000,
                                cutoff + 1000]):
            session.add(Alert(job_id="j", execution_id=f"j:{i}", kind="execution_failed",
                              message="m", created_at_ms=at, acknowledged=False))
    assert purge_alerts(sessions, cutoff) == 4
    with sessions() as session:
        assert session.scalars(select(Alert.created_at_ms)).all() == [cutoff + 1000]
