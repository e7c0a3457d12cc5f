"""Alerts: rows for fires that failed for good, recoveries and automatic
disables, and the delivery of each to its webhook.

A webhook is the job's ``alertWebhook``, else the global
``JOBSCHED_ALERT_WEBHOOK``. Deliveries are JSON POSTs (with a ``text`` field,
so a Slack incoming webhook takes them as they are), signed when
``JOBSCHED_WEBHOOK_SECRET`` is set, retried with exponential backoff, and
their outcome is written on the alert row (``delivery_status``), so a
delivery that failed for good is visible, never silently lost.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from common.logs import target_for_log
from common.metrics import MetricsRecorder
from common.models import Alert
from common.signing import HEADER, sign
from common.targets import DenyList
from common.timeutil import iso_ms
from worker.http import USER_AGENT, Outcome, make_session

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 5.0


def alert_row(kind: str, job_id: str | None, execution_id: str | None, message: str,
              created_ms: int, webhook_url: str | None) -> dict:
    return {"job_id": job_id, "execution_id": execution_id, "kind": kind, "message": message,
            "created_at_ms": created_ms, "acknowledged": False, "ref": str(uuid.uuid4()),
            "webhook_url": webhook_url, "delivery_status": "pending" if webhook_url else "none",
            "delivery_attempts": 0}


def failure_alert(outcome: Outcome, webhook_url: str | None) -> dict:
    """The alert of a fire that failed for good (its last attempt failed)."""
    msg = outcome.message
    return alert_row(
        "execution_failed", msg.spec.id, msg.execution_id,
        f"{msg.spec.method} {target_for_log(msg.spec.url)} failed for good after attempt "
        f"{msg.attempt}: "
        f"{outcome.error}", outcome.finished_ms, webhook_url)


def payload(alert: dict, outcome: Outcome | None = None) -> dict:
    """What a webhook receives."""
    body = {"event": alert["kind"], "alertRef": alert["ref"], "jobId": alert["job_id"],
            "executionId": alert["execution_id"], "message": alert["message"],
            "createdAt": iso_ms(alert["created_at_ms"]),
            "history": f"/jobs/{alert['job_id']}/executions" if alert["job_id"] else None,
            "text": f"[jobsched] {alert['kind']}: {alert['message']}"}
    if outcome is not None:
        msg = outcome.message
        body.update({"attempt": msg.attempt, "scheduledAt": iso_ms(msg.fire_ms),
                     "status": outcome.status, "httpStatus": outcome.http_status,
                     "error": outcome.error, "target": target_for_log(msg.spec.url)})
    return body


class WebhookSender:
    """Delivers alerts off the hot path, after their rows are committed."""

    def __init__(self, engine: Engine, deny: DenyList, metrics: MetricsRecorder,
                 secret: str | None, attempts: int = 5, backoff_s: float = 1.0,
                 threads: int = 4):
        self._engine = engine
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="webhook")
        self._session = make_session(threads, deny)
        self._metrics = metrics
        self._secret = secret
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._stopping = threading.Event()

    def send(self, alert: dict, body: dict) -> None:
        if alert["webhook_url"]:
            self._pool.submit(self._deliver, alert["ref"], alert["webhook_url"], body)

    def run(self, fn, *args) -> None:
        """Run other alert work (a system alert's row) on these threads."""
        def logged():
            try:
                fn(*args)
            except Exception:
                log.exception("alert work failed")
        self._pool.submit(logged)

    def _deliver(self, ref: str, url: str, body: dict) -> None:
        raw = json.dumps(body, separators=(",", ":")).encode()
        error = None
        for attempt in range(1, self._attempts + 1):
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                       "X-Jobsched-Event": body["event"]}
            if self._secret:
                headers[HEADER] = sign(self._secret, raw, int(time.time()))
            try:
                response = self._session.post(url, data=raw, headers=headers,
                                              timeout=WEBHOOK_TIMEOUT_S, allow_redirects=False)
                if 200 <= response.status_code < 300:
                    self._record(ref, "delivered", attempt, None)
                    self._metrics.inc("jobsched_alert_webhooks", outcome="sent")
                    return
                error = f"HTTP {response.status_code}"
            except requests.RequestException as e:
                error = type(e).__name__
            if attempt < self._attempts and self._stopping.wait(
                    self._backoff_s * 2 ** (attempt - 1)):
                # Shutting down: the row stays "pending", visibly.
                self._record(ref, "pending", attempt, error)
                return
        log.warning("alert %s: webhook delivery failed for good: %s", ref, error)
        self._record(ref, "failed", attempt, error)
        self._metrics.inc("jobsched_alert_webhooks", outcome="failed")

    def _record(self, ref: str, status: str, attempts: int, error: str | None) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(update(Alert).where(Alert.ref == ref).values(
                    delivery_status=status, delivery_attempts=attempts, delivery_error=error))
        except SQLAlchemyError:
            log.warning("alert %s: could not record its delivery (%s)", ref, status)

    def close(self) -> None:
        self._stopping.set()
        # Deliveries not started stay "pending" on their rows.
        self._pool.shutdown(wait=True, cancel_futures=True)
