"""After a batch of results is recorded: one log line per attempt, alert
webhooks, metrics, and the failure streaks. One failing step must not skip
the others."""
from __future__ import annotations

import logging
from functools import partial

from common.jobs import SKIPPED
from common.metrics import MetricsRecorder
from common.redisstore import RedisError
from common.redis_worker import WorkerShards
from common.settings import Settings
from common.timeutil import now_ms
from worker import streaks
from worker.alerts import payload
from worker.decision import Recorded, alert_webhook
from worker.outcome import DEFERRED, DROPPED, Outcome
from worker.records import Records
from worker.webhooks import WebhookSender

log = logging.getLogger(__name__)


class Reporter:
    def __init__(self, store: WorkerShards, records: Records, settings: Settings,
                 webhooks: WebhookSender, metrics: MetricsRecorder):
        self.store = store
        self.records = records
        self.webhook_for = partial(alert_webhook, settings=settings)
        self.webhooks = webhooks
        self.metrics = metrics

    def report(self, recorded: list[Recorded]) -> None:
        alerts = [(a, r.outcome) for r in recorded for a in r.alerts]
        for step, args in ((self._notify, (recorded, alerts)), (self._measure, (recorded,)),
                           (self._follow_streaks, (recorded,))):
            try:
                step(*args)
            except Exception:
                log.exception("reporting a recorded batch failed in %s", step.__name__)

    def _measure(self, batch: list[Recorded]) -> None:
        m = self.metrics
        for recorded in batch:
            outcome, msg = recorded.outcome, recorded.outcome.message
            if outcome.status in (DEFERRED, DROPPED):
                continue
            m.inc("jobsched_executions", status=outcome.status, type=msg.spec.type)
            if recorded.retry_at_ms is not None:
                m.inc("jobsched_retries")
            if outcome.status == SKIPPED:
                if not msg.skip:  # misfire skips are counted by the dispatcher
                    m.inc("jobsched_skipped_fires", reason="overlap")
                continue
            if msg.attempt == 1 and not msg.redeliveries:
                # Later attempts start late on purpose (backoff), redeliveries
                # after a crash: lateness measures the scheduler, not those.
                m.observe("jobsched_lateness_seconds",
                          max(0, outcome.started_ms - msg.fire_ms) / 1000)
            m.observe("jobsched_call_duration_seconds",
                      (outcome.finished_ms - outcome.started_ms) / 1000)
        try:
            self.store.add_metrics(m)
        except RedisError:
            log.debug("metrics not flushed; kept for the next flush")

    def _follow_streaks(self, batch: list[Recorded]) -> None:
        alerts = streaks.follow(self.store, self.records.engine, batch, self.webhook_for,
                                now_ms())
        if alerts:
            self.records.add_alerts(alerts)
            for alert in alerts:
                self.webhooks.send(alert, payload(alert))

    def _notify(self, batch: list[Recorded], alerts: list[tuple[dict, Outcome]]) -> None:
        for alert, outcome in alerts:
            self.webhooks.send(alert, payload(alert, outcome))
        for recorded in batch:
            outcome = recorded.outcome
            if outcome.status in (DEFERRED, DROPPED):
                continue
            msg = outcome.message
            fields = {"job": msg.spec.id, "execution": msg.execution_id,
                      "attempt": msg.attempt, "status": outcome.status,
                      "httpStatus": outcome.http_status,
                      "latenessMs": outcome.started_ms - msg.fire_ms,
                      "durationMs": outcome.finished_ms - outcome.started_ms,
                      "redelivered": msg.redeliveries > 0, "error": outcome.error}
            log.info("job=%s execution=%s attempt=%d status=%s http=%s lateness_ms=%d "
                     "duration_ms=%d%s", msg.spec.id, msg.execution_id, msg.attempt,
                     outcome.status, outcome.http_status, fields["latenessMs"],
                     fields["durationMs"], f" error={outcome.error!r}" if outcome.error else "",
                     extra={"fields": fields})
