"""What the result writer decides for an outcome (pure, no server), and how
it records a batch in which one result cannot be recorded (real database
and Redis)."""
from common.jobs import FAILED, SKIPPED, SUCCESS
from common.message import FireMessage, JobSpec
from common.settings import Settings
from worker.outcome import DEFERRED, Outcome
from worker.decision import DEFER_MS, decide

SETTINGS = Settings()


def outcome(status, attempt=1, type="ATLEAST_ONCE", max_retries=2, skip=None, job_id="j"):
    spec = JobSpec(id=job_id, version=1, schedule="* * * * * *", timezone="UTC",
                   url="http://127.0.0.1:1/", type=type, max_retries=max_retries,
                   retry_backoff_ms=1000)
    raw = FireMessage.encode(spec.id, spec.to_json(), 5000, attempt).encode()
    msg = FireMessage.decode(raw)
    if skip:
        msg = FireMessage(raw, msg.spec, msg.fire_ms, msg.attempt, 0, skip)
    return Outcome(msg, 10_000, 10_100, status, None, None, None)


def test_a_failure_within_the_budget_is_retried_not_final():
    r = decide(outcome(FAILED, attempt=1), SETTINGS, rand=lambda: 0.0)
    assert (r.final, r.retry_at_ms) == (False, 10_100 + 500)


def test_the_last_failure_is_final_and_not_retried():
    r = decide(outcome(FAILED, attempt=3), SETTINGS)
    assert (r.final, r.retry_at_ms) == (True, None)


def test_atmost_once_failures_are_final_at_once():
    r = decide(outcome(FAILED, type="ATMOST_ONCE"), SETTINGS)
    assert (r.final, r.retry_at_ms) == (True, None)


def test_success_and_skips_are_neither_final_nor_retried():
    for o in (outcome(SUCCESS), outcome(SKIPPED, skip={"reason": "misfire", "count": 2,
                                                       "last": 6000})):
        r = decide(o, SETTINGS)
        assert (r.final, r.retry_at_ms) == (False, None)


def test_a_deferred_retry_comes_back_later_as_the_same_attempt():
    r = decide(outcome(DEFERRED, attempt=2), SETTINGS)
    assert (r.final, r.retry_at_ms) == (False, 10_100 + DEFER_MS)


def test_a_backlog_is_read_only_from_first_attempts():
    from common.message import waiting_since
    spec = JobSpec(id="j", version=1, schedule="* * * * * *", timezone="UTC",
                   url="http://127.0.0.1:1/").to_json()
    assert waiting_since(FireMessage.encode("j", spec, 5000).encode()) == 5000
    assert waiting_since(FireMessage.encode("j", spec, 5000, attempt=2).encode()) is None
    assert waiting_since(FireMessage.encode("j", spec, 5000, redeliveries=1).encode()) is None
    assert waiting_since(FireMessage.encode_skip("j", spec, 5000, 9000, 5, "misfire").encode()) is None


def test_a_result_that_cannot_be_recorded_costs_only_itself(engine, store, sessions):
    """One outcome whose deciding raises (a spec no code path expects) and one
    that is fine, in one batch: the bad fire gets a FAILED row naming the
    error and an alert; the other is recorded as it is; both are
    acknowledged, and neither is handed back to be called again."""
    from sqlalchemy import select

    from common.metrics import MetricsRecorder
    from common.models import Alert, Execution
    from common.redis_worker import WorkerShards
    from worker.results import ResultWriter

    class NoWebhooks:
        def send(self, alert, body):
            pass
    settings = Settings(worker_id="w1")
    writer = ResultWriter(engine, WorkerShards([store]), settings, NoWebhooks(),
                          MetricsRecorder())
    good = outcome(SUCCESS)
    # will_retry() compares the attempt with None: a TypeError while deciding.
    bad = outcome(FAILED, max_retries=None, job_id="bad")
    for o in (good, bad):
        store.client.rpush(store.keys.inflight("w1"), o.message.raw)
    writer._handle([good, bad])
    with sessions() as session:
        rows = {r.job_id: r for r in session.scalars(select(Execution))}
        alerts = session.scalars(select(Alert)).all()
    assert rows["j"].status == "SUCCESS"
    assert rows["bad"].status == "FAILED" and rows["bad"].final
    assert rows["bad"].error.startswith("the result could not be recorded: TypeError")
    assert [a.job_id for a in alerts] == ["bad"] and "could not be recorded" in alerts[0].message
    assert store.client.llen(store.keys.inflight("w1")) == 0
    assert store.client.llen(store.keys.ready) == 0
