"""Alerts: rows for fires that failed for good, recoveries and automatic
disables, and what their webhook receives (delivered by worker/webhooks.py).

A webhook is the job's ``alertWebhook``, else the global
``JOBSCHED_ALERT_WEBHOOK``; its body has a ``text`` field, so a Slack
incoming webhook takes it as it is.
"""
from __future__ import annotations

import uuid

from common.jobs import DELIVERY_NONE, DELIVERY_PENDING, EXECUTION_FAILED
from common.logs import target_for_log
from common.models import Alert
from common.timeutil import iso_ms
from worker.outcome import Outcome

WEBHOOK_TIMEOUT_S = 5.0


def alert_row(kind: str, job_id: str | None, execution_id: str | None, message: str,
              created_ms: int, webhook_url: str | None) -> dict:
    return {"job_id": job_id, "execution_id": execution_id, "kind": kind, "message": message,
            "created_at_ms": created_ms, "acknowledged": False, "ref": str(uuid.uuid4()),
            "webhook_url": webhook_url,
            "delivery_status": DELIVERY_PENDING if webhook_url else DELIVERY_NONE,
            "delivery_attempts": 0}


def failure_alert(outcome: Outcome, webhook_url: str | None) -> dict:
    """The alert of a fire that failed for good (its last attempt failed)."""
    msg = outcome.message
    return alert_row(
        EXECUTION_FAILED, msg.spec.id, msg.execution_id,
        f"{msg.spec.method} {target_for_log(msg.spec.url)} failed for good after attempt "
        f"{msg.attempt}: "
        f"{outcome.error}", outcome.finished_ms, webhook_url)


def alert_of(row: Alert) -> dict:
    """An alert row as alert_row() gives it (to deliver it again)."""
    return {"job_id": row.job_id, "execution_id": row.execution_id, "kind": row.kind,
            "message": row.message, "created_at_ms": row.created_at_ms,
            "acknowledged": row.acknowledged, "ref": row.ref, "webhook_url": row.webhook_url,
            "delivery_status": row.delivery_status, "delivery_attempts": row.delivery_attempts}


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
