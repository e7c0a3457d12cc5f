"""Database rows as the API shows them (camelCase, ISO 8601 UTC with ms)."""
from __future__ import annotations

import json

from common.jobs import DEFAULT_SUCCESS
from common.models import Alert, Execution, Job
from common.timeutil import iso_ms


def _status_ranges(pairs) -> list[str]:
    return [str(low) if low == high else f"{low}-{high}"
            for low, high in (pairs or DEFAULT_SUCCESS)]


def job_view(job: Job, next_run_ms: int | None, finished_ms: int | None = None) -> dict:
    """``finished_ms``: the last fire, when Redis knows the job finished
    before the database does."""
    finished_ms = job.finished_at_ms if finished_ms is None else finished_ms
    state = "finished" if finished_ms is not None else "active" if job.enabled else "paused"
    return {
        "jobId": job.id, "name": job.name, "schedule": job.schedule, "timezone": job.timezone,
        "api": job.url, "method": job.method, "headers": job.headers or {},
        "body": None if job.body is None else json.loads(job.body), "type": job.type,
        "timeoutMs": job.timeout_ms, "alertWebhook": job.alert_webhook, "enabled": job.enabled,
        "maxRetries": job.max_retries, "retryBackoffMs": job.retry_backoff_ms,
        "misfire": job.misfire, "concurrency": job.concurrency,
        "successStatus": _status_ranges(job.success_status),
        "autoDisableAfter": job.auto_disable_after,
        "startAt": iso_ms(job.start_at_ms), "endAt": iso_ms(job.end_at_ms),
        "runAt": iso_ms(job.run_at_ms),
        "createdAt": iso_ms(job.created_at_ms), "updatedAt": iso_ms(job.updated_at_ms),
        "nextRun": None if finished_ms is not None else iso_ms(next_run_ms),
        "state": state, "finishedAt": iso_ms(finished_ms),
    }


def job_as_input(job: Job) -> dict:
    """The job as a client would write it: the base a PATCH is applied to."""
    view = job_view(job, None)
    return {key: view[key] for key in (
        "schedule", "api", "type", "name", "timezone", "method", "headers", "body",
        "timeoutMs", "alertWebhook", "enabled", "maxRetries", "retryBackoffMs", "misfire",
        "concurrency", "successStatus", "autoDisableAfter", "startAt", "endAt", "runAt")}


def execution_view(row: Execution) -> dict:
    return {
        "executionId": row.execution_id, "jobId": row.job_id, "attempt": row.attempt,
        "redelivered": row.redelivered, "scheduledAt": iso_ms(row.scheduled_at_ms),
        "startedAt": iso_ms(row.started_at_ms), "finishedAt": iso_ms(row.finished_at_ms),
        "status": row.status, "httpStatus": row.http_status, "durationMs": row.duration_ms,
        "latenessMs": row.started_at_ms - row.scheduled_at_ms, "error": row.error,
        "response": row.response_snippet, "final": row.final,
    }


def alert_view(row: Alert) -> dict:
    return {
        "alertId": row.id, "jobId": row.job_id, "executionId": row.execution_id,
        "kind": row.kind, "message": row.message, "createdAt": iso_ms(row.created_at_ms),
        "acknowledged": row.acknowledged, "deliveryStatus": row.delivery_status,
        "deliveryAttempts": row.delivery_attempts, "deliveryError": row.delivery_error,
    }
