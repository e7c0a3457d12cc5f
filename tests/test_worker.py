"""The worker in-process: ``Worker.run_once(now)`` against the real Redis and
database and a local HTTP target, with the time injected. Each test queues
fire messages as the dispatcher would and checks what reached the target,
what was recorded and what was left in Redis."""
import json

import pytest
from sqlalchemy import select

from common.message import FireMessage, JobSpec
from common.models import Alert, Execution
from common.redis_worker import WorkerShards
from common.settings import Settings
from common.timeutil import now_ms
from worker.runner import CLOCK_SLACK_MS, Worker

FIRE = 1_764_700_000_000   # fires in the past: sent as soon as they pass the gate


@pytest.fixture
def worker(store, engine):
    store.client.set(store.keys.initialized, 1)
    w = Worker(Settings(worker_id="w1", webhook_attempts=1), WorkerShards([store]), engine)
    w.start()
    yield w
    w.stop()


def queue(store, spec: JobSpec, fire_ms: int = FIRE, copies: int = 1) -> bytes:
    """Publish the job's spec and queue its fire message (``copies`` times)."""
    store.publish_job(spec.id, spec.to_json(), spec.version, None, spec.enabled)
    raw = FireMessage.encode(spec.id, spec.to_json(), fire_ms)
    store.client.rpush(store.keys.ready, *[raw] * copies)
    return raw.encode()


def job(target, job_id: str, path: str = "/ok", version: int = 1, **fields) -> JobSpec:
    return JobSpec(id=job_id, version=version, schedule="* * * * * *", timezone="UTC",
                   url=target.url(f"{path}/{job_id}"), **fields)


def executions(sessions) -> dict[str, list[Execution]]:
    out: dict[str, list[Execution]] = {}
    with sessions() as session:
        for row in session.scalars(select(Execution).order_by(Execution.attempt)):
            out.setdefault(row.job_id, []).append(row)
    return out


def test_a_due_fire_is_called_once_recorded_then_acknowledged(worker, store, sessions, target):
    queue(store, job(target, "a", method="POST", body='{"n": 1}',
                     content_type="application/json"))
    assert worker.run_once(FIRE) == 1
    (call,) = target.received()
    assert (call.method, call.path, call.json()) == ("POST", "/ok/a", {"n": 1})
    assert call.headers["X-Jobsched-Execution-Id"] == f"a:{FIRE}"
    (row,) = executions(sessions)["a"]
    assert (row.status, row.attempt, row.http_status, row.final) == ("SUCCESS", 1, 200, False)
    assert store.client.llen(store.keys.inflight("w1")) == 0
    assert store.client.get(store.keys.fire_mark(f"a:{FIRE}", 1)) == b"done"
    assert worker.run_once(FIRE + 1000) == 0   # nothing else was queued


def test_a_fire_waits_for_its_time_but_never_longer_than_dispatch_ahead(worker, store,
                                                                        target):
    """Queued early, a fire is sent at its time; a fire whose time is far
    after ``now`` (a clock running ahead) is held at most the dispatch-ahead
    time plus the slack past ``now``, then sent."""
    soon = now_ms() + 300
    queue(store, job(target, "soon"), fire_ms=soon)
    worker.run_once(now_ms())
    assert target.received("/ok/soon")[0].arrived_ms >= soon
    now = now_ms()
    hold_ms = worker.settings.dispatch_ahead_ms + CLOCK_SLACK_MS
    queue(store, job(target, "ahead"), fire_ms=now + 3_600_000)
    worker.run_once(now)
    (call,) = target.received("/ok/ahead")
    assert now + hold_ms - 50 <= call.arrived_ms <= now + hold_ms + 1_000
    # The hold counts from the ``now`` given: 10 s ago, so already over.
    now, started = now_ms() - 10_000, now_ms()
    queue(store, job(target, "behind"), fire_ms=now + 3_600_000)
    worker.run_once(now)
    assert target.received("/ok/behind")[0].arrived_ms < started + 1_000


def test_copies_of_one_fire_make_one_call(worker, store, sessions, target):
    """Three copies of one fire (a redelivery racing the original): its mark
    lets one through; the others are dropped unrecorded."""
    for job_type in ("ATLEAST_ONCE", "ATMOST_ONCE"):
        queue(store, job(target, job_type, type=job_type), copies=3)
    assert worker.run_once(FIRE) == 6
    assert sorted(r.path for r in target.received()) == ["/ok/ATLEAST_ONCE", "/ok/ATMOST_ONCE"]
    rows = executions(sessions)
    assert {k: len(v) for k, v in rows.items()} == {"ATLEAST_ONCE": 1, "ATMOST_ONCE": 1}
    assert store.client.llen(store.keys.inflight("w1")) == 0


def test_a_deleted_or_paused_job_is_recorded_skipped_and_not_called(worker, store, sessions,
                                                                   target):
    gone = job(target, "gone")
    queue(store, gone)
    store.remove_job("gone", now_ms())
    paused = job(target, "paused")
    queue(store, paused)
    store.publish_job("paused", job(target, "paused", version=2, enabled=False).to_json(), 2,
                      None, False)
    assert worker.run_once(FIRE) == 2
    assert target.received() == []
    rows = executions(sessions)
    assert [(r.status, r.error) for r in rows["gone"]] == \
        [("SKIPPED", "skipped: the job was deleted before the call")]
    assert [(r.status, r.error) for r in rows["paused"]] == \
        [("SKIPPED", "skipped: the job was paused before the call")]


def test_an_edit_after_queueing_is_called_as_the_job_is_now(worker, store, target):
    queue(store, job(target, "e"))
    edited = job(target, "e", path="/status/204", version=2, headers={"X-New": "1"})
    store.publish_job("e", edited.to_json(), 2, None, True)
    worker.run_once(FIRE)
    (call,) = target.received()
    assert call.path == "/status/204/e" and call.headers["X-New"] == "1"


def test_a_failure_schedules_its_retry_and_the_last_one_raises_an_alert(worker, store,
                                                                       sessions, target):
    queue(store, job(target, "f", path="/status/500", max_retries=1, retry_backoff_ms=2000))
    queue(store, job(target, "m", path="/status/500", type="ATMOST_ONCE", max_retries=3))
    worker.run_once(FIRE)
    rows = executions(sessions)
    assert [(r.status, r.http_status, r.final) for r in rows["f"]] == [("FAILED", 500, False)]
    assert [(r.status, r.final) for r in rows["m"]] == [("FAILED", True)]  # never retried
    ((retry, due),) = store.client.zrange(store.keys.retry, 0, -1, withscores=True)
    next_attempt = FireMessage.decode(retry)
    assert (next_attempt.execution_id, next_attempt.attempt) == (f"f:{FIRE}", 2)
    finished = rows["f"][0].finished_at_ms
    assert finished + 1000 <= due <= finished + 2000   # backoff 2 s with jitter in [0.5, 1)
    with sessions() as session:
        assert [a.job_id for a in session.scalars(select(Alert))] == ["m"]
    # The retry, once due, is the second attempt: it fails for good.
    store.client.zrem(store.keys.retry, retry)
    store.client.rpush(store.keys.ready, retry)
    worker.run_once(int(due))
    assert [(r.attempt, r.final) for r in executions(sessions)["f"]] == [(1, False), (2, True)]
    assert len(target.received("/status/500/f")) == 2


def test_a_malformed_message_is_dropped_and_costs_only_itself(worker, store, sessions, target):
    store.client.rpush(store.keys.ready, b"not a message", json.dumps({"v": 9}))
    queue(store, job(target, "fine"))
    assert worker.run_once(FIRE) == 3
    assert [r.path for r in target.received()] == ["/ok/fine"]
    assert list(executions(sessions)) == ["fine"]
    assert store.client.llen(store.keys.inflight("w1")) == 0
