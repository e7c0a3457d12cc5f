"""Alert webhooks on the real processes: signed, retried, their delivery
recorded; recovery alerts; automatic disabling after repeated failures."""
import time

import pytest

from common.signing import HEADER, verify
from tests.conftest import WEBHOOK_SECRET
from tests.support import wait_until

pytestmark = pytest.mark.slow


def alerts(system, job_id, **filters):
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return system.api.get(f"/alerts?jobId={job_id}&limit=100&{query}").json()["alerts"]


def test_webhook_is_signed_and_verifiable_by_the_receiver(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/status/500/signed"),
                            maxRetries=0, alertWebhook=target.url("/hook/signed"))
    hook = wait_until(lambda: target.received("/hook/signed"), 15, message="a webhook")[0]
    assert verify(WEBHOOK_SECRET, hook.body, hook.headers[HEADER], int(time.time()))
    assert not verify("another secret", hook.body, hook.headers[HEADER], int(time.time()))
    tampered = hook.body.replace(b'"FAILED"', b'"SUCCESS"')
    assert tampered != hook.body
    assert not verify(WEBHOOK_SECRET, tampered, hook.headers[HEADER], int(time.time()))
    body = hook.json()
    assert body["event"] == "execution_failed" and body["jobId"] == job["jobId"]
    assert body["text"].startswith("[jobsched] execution_failed")  # Slack-compatible
    assert body["history"] == f"/jobs/{job['jobId']}/executions"
    assert "/status/500/signed" not in hook.body.decode()  # target paths are not sent on
    wait_until(lambda: alerts(system, job["jobId"], delivery="delivered"), 10,
               message="delivery recorded")


def test_delivery_is_retried_against_a_receiver_that_fails_first(system, target):
    job = system.api.create(schedule="@once", api=target.url("/status/500/retried"),
                            runAt=_soon(), maxRetries=0,
                            alertWebhook=target.url("/fail-first/2/hook"))
    alert = wait_until(lambda: alerts(system, job["jobId"], delivery="delivered"), 20,
                       message="delivered on the third try")[0]
    assert alert["deliveryAttempts"] == 3
    assert len(target.received("/fail-first/2/hook")) == 3


def test_a_delivery_that_keeps_failing_is_recorded_as_failed(system, target):
    job = system.api.create(schedule="@once", api=target.url("/status/500/undelivered"),
                            runAt=_soon(), maxRetries=0,
                            alertWebhook=target.url("/status/502/hook"))
    alert = wait_until(lambda: alerts(system, job["jobId"], delivery="failed"), 20,
                       message="failed for good")[0]
    assert (alert["deliveryAttempts"], alert["deliveryError"]) == (3, "HTTP 502")
    # Counted by the sending thread, flushed with the worker's next heartbeat.
    wait_until(lambda: 'jobsched_alert_webhooks_total{outcome="failed"}'
               in system.api.get("/metrics").text, 10, message="the failure counted")


def test_first_success_after_failures_raises_a_recovery_alert(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/fail-first/2/recover"),
                            maxRetries=0)
    recovered = wait_until(lambda: alerts(system, job["jobId"], kind="recovered"), 20,
                           message="a recovery alert")
    assert "after 2 fire(s) failed for good" in recovered[0]["message"]
    assert len(alerts(system, job["jobId"], kind="execution_failed")) == 2


def test_a_job_is_disabled_after_repeated_failures_when_asked(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/status/500/auto"),
                            maxRetries=0, autoDisableAfter=2)
    wait_until(lambda: alerts(system, job["jobId"], kind="auto_disabled"), 20,
               message="auto-disabled")
    current = system.api.get(f"/jobs/{job['jobId']}").json()
    assert current["enabled"] is False and current["nextRun"] is None


def _soon() -> str:
    from common.timeutil import iso_ms, now_ms
    return iso_ms((now_ms() // 1000 + 2) * 1000)


def test_workers_raise_system_alerts_for_a_missing_leader_and_a_backlog(make_system, target):
    system = make_system(workers=1, dispatchers=0,  # nothing leads
                         JOBSCHED_ALERT_WEBHOOK=target.url("/hook/system"),
                         JOBSCHED_READY_AGE_LIMIT_MS=1000, JOBSCHED_WORKER_CONCURRENCY=1)
    no_leader = wait_until(lambda: system.api.get("/alerts?kind=no_leader").json()
                           ["alerts"], 20, message="a no_leader alert")
    assert no_leader[0]["jobId"] is None
    job = system.api.create(schedule="0 0 0 1 1 *", api=target.url("/sleep/2500/slow"))
    for _ in range(3):  # one thread: the second and third wait on the ready list
        system.api.post(f"/jobs/{job['jobId']}/run")
    wait_until(lambda: system.api.get("/alerts?kind=backlog").json()["alerts"], 20,
               message="a backlog alert")
    hooks = wait_until(lambda: len(target.received("/hook/system")) >= 2 and
                       target.received("/hook/system"), 15, message="both webhooks")
    assert {h.json()["event"] for h in hooks} == {"no_leader", "backlog"}
    assert len(system.api.get("/alerts?kind=no_leader").json()["alerts"]) == 1  # once
