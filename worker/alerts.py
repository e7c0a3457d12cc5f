"""Alert rows for failed attempts, and their webhook delivery."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import requests

from common.metrics import MetricsRecorder
from common.targets import DenyList
from common.timeutil import iso_ms
from worker.http import Outcome, make_session

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 5.0


def alert_row(outcome: Outcome) -> dict:
    """The alert of a fire that failed for good (its last attempt failed)."""
    msg = outcome.message
    return {
        "job_id": msg.spec.id, "execution_id": msg.execution_id, "kind": "execution_failed",
        "message": f"{msg.spec.method} {msg.spec.url} failed for good after attempt "
                   f"{msg.attempt}: {outcome.error}",
        "created_at_ms": outcome.finished_ms, "acknowledged": False,
    }


def webhook_payload(outcome: Outcome, alert: dict) -> dict:
    msg = outcome.message
    return {
        "event": alert["kind"], "jobId": msg.spec.id, "executionId": msg.execution_id,
        "attempt": msg.attempt, "scheduledAt": iso_ms(msg.fire_ms), "status": outcome.status,
        "httpStatus": outcome.http_status, "error": outcome.error, "message": alert["message"],
        "target": msg.spec.url, "createdAt": iso_ms(alert["created_at_ms"]),
    }


class WebhookSender:
    """Posts alert webhooks off the hot path, once the alert row is committed."""

    def __init__(self, deny: DenyList, metrics: MetricsRecorder, threads: int = 4):
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="webhook")
        self._session = make_session(threads, deny)
        self._metrics = metrics

    def send(self, url: str, payload: dict) -> None:
        self._pool.submit(self._post, url, payload)

    def _post(self, url: str, payload: dict) -> None:
        try:
            response = self._session.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S,
                                          allow_redirects=False)
            if response.status_code >= 300:
                log.warning("alert webhook for job %s answered HTTP %d", payload["jobId"],
                            response.status_code)
                self._metrics.inc("jobsched_alert_webhooks", outcome="failed")
            else:
                self._metrics.inc("jobsched_alert_webhooks", outcome="sent")
        except requests.RequestException as e:
            log.warning("alert webhook for job %s failed: %s", payload["jobId"],
                        type(e).__name__)
            self._metrics.inc("jobsched_alert_webhooks", outcome="failed")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
