"""Alert webhook deliveries (worker/webhooks.py) on a real database and Redis,
to the recording target: pending alerts are picked up (after a shutdown, a
full queue, a dead worker) and delivered once however many workers look, and
system alerts never wait behind job alerts."""
import uuid

from sqlalchemy import select

from common.metrics import MetricsRecorder
from common.models import Alert
from common.targets import DEFAULT_DENY, DenyList
from common.timeutil import now_ms
from tests.support import wait_until
from worker.alerts import alert_row, payload
from worker.webhooks import WebhookSender

ALLOW = DenyList.build(DEFAULT_DENY, deny_loopback=False)


def sender(engine, store, threads=2):
    return WebhookSender(engine, store, ALLOW, MetricsRecorder(), None, attempts=2,
                         backoff_s=0.05, threads=threads)


def add_alert(sessions, url, job_id="j", status="pending") -> str:
    ref = str(uuid.uuid4())
    with sessions() as session, session.begin():
        session.add(Alert(job_id=job_id, execution_id=f"{job_id}:1", kind="execution_failed",
                          message="m", created_at_ms=now_ms(), acknowledged=False, ref=ref,
                          webhook_url=url, delivery_status=status, delivery_attempts=0))
    return ref


def status_of(sessions, ref) -> str:
    with sessions() as session:
        return session.scalar(select(Alert.delivery_status).where(Alert.ref == ref))


def test_pending_alerts_are_picked_up_once_by_however_many_workers(engine, store, sessions,
                                                                   target):
    refs = [add_alert(sessions, target.url(f"/hook/{i}")) for i in range(3)]
    done = add_alert(sessions, target.url("/hook/done"), status="delivered")
    senders = [sender(engine, store) for _ in range(3)]   # three workers starting
    try:
        wait_until(lambda: all(status_of(sessions, r) == "delivered" for r in refs), 15,
                   message="the pending alerts delivered")
    finally:
        for s in senders:
            s.close()
    paths = sorted(r.path for r in target.received("/hook/"))
    assert paths == ["/hook/0", "/hook/1", "/hook/2"]   # once each; not the delivered one
    assert status_of(sessions, done) == "delivered"


def test_system_alerts_go_before_queued_job_alerts(engine, store, sessions, target):
    one = sender(engine, store, threads=1)
    try:
        slow = alert_row("execution_failed", "j", "j:1", "slow", now_ms(),
                         target.url("/sleep/500/first"))
        queued = [alert_row("execution_failed", "j", f"j:{i}", "m", now_ms(),
                            target.url(f"/ok/job/{i}")) for i in range(3)]
        system = alert_row("no_leader", None, None, "m", now_ms(), target.url("/ok/system"))
        for alert in [slow, *queued, system]:
            one.send(alert, payload(alert))
        wait_until(lambda: len(target.received()) == 5, 15, message="all delivered")
    finally:
        one.close()
    order = [r.path for r in target.received()]
    # Queued after three job alerts, delivered before them (at most the one
    # already on its way goes first).
    assert order.index("/ok/system") < min(order.index(f"/ok/job/{i}") for i in range(3))
    assert order.index("/ok/system") <= 1, order


def test_alerts_left_queued_at_shutdown_are_delivered_by_the_next_worker(engine, store,
                                                                          sessions, target):
    slow = add_alert(sessions, target.url("/sleep/1000/slow"))
    first = sender(engine, store, threads=1)   # picks the slow one up at start
    wait_until(lambda: target.in_progress(), 10, message="the first worker busy delivering")
    left = [add_alert(sessions, target.url(f"/ok/left/{i}")) for i in range(2)]
    with sessions() as session:
        rows = session.scalars(select(Alert).where(Alert.ref.in_(left))).all()
    from worker.alerts import alert_of
    for row in rows:   # queued behind the slow one when the worker stops
        first.send(alert_of(row), payload(alert_of(row)))
    first.close()
    assert [status_of(sessions, r) for r in left] == ["pending", "pending"]
    second = sender(engine, store)
    try:
        wait_until(lambda: all(status_of(sessions, r) == "delivered" for r in left), 15,
                   message="delivered by the next worker")
    finally:
        second.close()
    assert sorted(r.path for r in target.received("/ok/left/")) == ["/ok/left/0",
                                                                     "/ok/left/1"]
    assert status_of(sessions, slow) in ("delivered", "pending")
