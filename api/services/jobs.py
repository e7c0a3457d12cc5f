"""Job use cases: create (one or a batch), read, list, replace, patch,
delete, pause, resume, run now, preview the next fires."""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import pagination
from api.schemas import JobIn, parse_job, status_ranges
from api.services import Services
from api.serializers import job_as_input, job_view
from common.errors import DependencyUnavailable, NotFound, ValidationError
from common.logs import target_for_log
from common.jobs import MISFIRE_FIRE_ONCE, SKIPPED
from common.message import FireMessage, JobSpec, execution_id
from common.models import Execution, Job
from common.publish import publish, unpublish
from common.redisstore import RedisError
from common.schedule import first_fire, fires_between, next_fire, timing_of, upcoming
from common.timeutil import iso_ms, now_ms

log = logging.getLogger(__name__)

MAX_PREVIEW = 100


def _apply(job: Job, data: JobIn, services: Services, now: int) -> None:
    settings = services.settings
    was = timing_of(job)
    deny = settings.deny_list()
    for field, url in (("api", data.api), ("alertWebhook", data.alertWebhook)):
        if url and deny.denies_literal_host(url):
            raise ValidationError(f"{field}: the target address is denied "
                                  "(JOBSCHED_TARGET_DENY)", field=field)
    timeout = settings.default_timeout_ms if data.timeoutMs is None else data.timeoutMs
    if timeout > settings.max_timeout_ms:
        raise ValidationError(f"timeoutMs must be at most {settings.max_timeout_ms}",
                              field="timeoutMs")
    job.name = data.name
    job.schedule = data.schedule
    job.timezone = data.timezone
    job.url = data.api
    job.method = data.method
    job.headers = data.headers
    job.body = None if data.body is None else json.dumps(data.body)
    job.type = data.type
    job.timeout_ms = timeout
    job.alert_webhook = data.alertWebhook
    job.enabled = data.enabled
    job.max_retries = data.maxRetries
    job.retry_backoff_ms = data.retryBackoffMs
    job.misfire = data.misfire
    job.concurrency = data.concurrency
    job.success_status = status_ranges(data.successStatus)
    job.auto_disable_after = data.autoDisableAfter
    job.start_at_ms = data.start_ms()
    job.end_at_ms = data.end_ms()
    job.run_at_ms = data.run_at_ms()
    job.updated_at_ms = now
    if was != timing_of(job):
        job.finished_at_ms = None   # a new timing may have fires again
    _schedule(job, now)


def _schedule(job: Job, now: int) -> None:
    """The job's first fire from now (None while paused), or finished if it
    has none left."""
    nxt = None if job.finished_at_ms is not None else first_fire(timing_of(job), now)
    if nxt is None and job.enabled and job.finished_at_ms is None:
        job.finished_at_ms = now
    job.next_run_ms = nxt if job.enabled else None


def _publish(services: Services, job: Job) -> None:
    """Second half of a write: put the committed job on the Redis schedule.
    The next fire comes after any fire already claimed (common/publish.py)."""
    try:
        job.next_run_ms = publish(services.store, job, job.next_run_ms)
    except RedisError:
        log.warning("job %s saved but not yet scheduled (Redis unavailable); "
                    "the dispatcher's reconciler will schedule it", job.id, exc_info=True)


def create_job(services: Services, data: JobIn) -> dict:
    return _create(services, [data], batch=False)[0]


def create_jobs(services: Services, batch: list[JobIn]) -> list[dict]:
    """All or nothing: every job is validated, then all are committed in one
    transaction, then published."""
    return _create(services, batch, batch=True)


def _create(services: Services, items: list[JobIn], batch: bool) -> list[dict]:
    now = now_ms()
    jobs = []
    for i, data in enumerate(items):
        job = Job(id=str(uuid.uuid4()), version=1, created_at_ms=now)
        try:
            _apply(job, data, services, now)
        except ValidationError as e:
            if batch:
                e.field = f"jobs[{i}].{e.field}"
            raise
        jobs.append(job)
    with services.unit_of_work() as session:
        session.add_all(jobs)
    for job in jobs:
        _publish(services, job)
        log.info("job %s created: schedule=%r target=%s", job.id, job.schedule,
                 target_for_log(job.url))
    return [job_view(job, job.next_run_ms) for job in jobs]


def replace_job(services: Services, job_id: str, data: JobIn) -> dict:
    return _update(services, job_id, lambda job, now: _apply(job, data, services, now))


def patch_job(services: Services, job_id: str, changes: dict) -> dict:
    """Apply the given fields on top of the job and validate the result whole,
    under the row lock: concurrent patches of other fields are not lost."""
    if not isinstance(changes, dict):
        raise ValidationError("a patch must be a JSON object", field=None)

    def change(job: Job, now: int) -> None:
        _apply(job, parse_job({**job_as_input(job), **changes}), services, now)
    return _update(services, job_id, change)


def set_enabled(services: Services, job_id: str, enabled: bool) -> dict:
    """Pause or resume: only the flag changes (a job stays pausable even if
    settings tightened since it was written); resuming applies the job's
    misfire policy."""
    def change(job: Job, now: int) -> None:
        job.enabled = enabled
        job.updated_at_ms = now
        _schedule(job, now)
    return _update(services, job_id, change)


def _update(services: Services, job_id: str, change) -> dict:
    """One write of an existing job: lock its row, change it, bump its
    version, commit; then publish the new version to Redis."""
    now = now_ms()
    with services.unit_of_work() as session:
        job = find_job(session, job_id, lock=True)
        was_enabled, paused_since = job.enabled, job.updated_at_ms
        was_finished = job.finished_at_ms is not None
        change(job, now)
        job.version += 1
        if job.enabled and not was_enabled and not was_finished:
            _apply_misfire_on_resume(session, job, paused_since, now)
    _publish(services, job)
    log.info("job %s changed (version %d)", job.id, job.version)
    return job_view(job, job.next_run_ms)


def delete_job(services: Services, job_id: str) -> None:
    with services.unit_of_work() as session:
        job = find_job(session, job_id, lock=True)
        stored_id = job.id  # the database may match ids case-insensitively
        session.delete(job)
    try:
        unpublish(services.store, stored_id, now_ms())
    except RedisError:
        log.warning("job %s deleted but still in Redis; the reconciler removes it", stored_id)
    log.info("job %s deleted", stored_id)


def run_now(services: Services, job_id: str) -> dict:
    """Fire the job once, now, outside its schedule (a paused job too)."""
    with services.unit_of_work() as session:
        job = find_job(session, job_id)
        stored_id, spec_json = job.id, JobSpec.from_job(job).to_json()
    fire_ms = now_ms()
    try:
        services.store.enqueue(stored_id, FireMessage.encode(stored_id, spec_json, fire_ms,
                                                             manual=True))
    except RedisError as e:
        raise DependencyUnavailable("Redis unavailable") from e
    log.info("job %s run on request", stored_id)
    return {"executionId": execution_id(stored_id, fire_ms), "jobId": stored_id,
            "attempt": 1, "scheduledAt": iso_ms(fire_ms)}


def next_runs(services: Services, job_id: str, count: int) -> dict:
    with services.unit_of_work() as session:
        job = find_job(session, job_id)
    fires = upcoming(timing_of(job), now_ms(), count)
    return {"jobId": job_id, "nextRuns": [iso_ms(f) for f in fires]}


def get_job(services: Services, job_id: str) -> dict:
    with services.unit_of_work() as session:
        job = find_job(session, job_id)
    return view(job, live_state(services, [job]).get(job.id))


def list_jobs(services: Services, limit: int, cursor: str | None, enabled: bool | None,
              name: str | None) -> dict:
    page = page_of_jobs(services, limit, cursor, enabled, name)
    return {"jobs": [view(job, page.live.get(job.id)) for job in page.jobs],
            "nextCursor": page.next_cursor}


@dataclass
class JobsPage:
    jobs: list[Job]
    live: dict[str, LiveState]
    next_cursor: str | None


def page_of_jobs(services: Services, limit: int, cursor: str | None, enabled: bool | None,
                 name: str | None) -> JobsPage:
    """Jobs newest first, filtered by enabled and by part of the name."""
    after = pagination.decode(cursor, (int, str))
    query = select(Job).order_by(Job.created_at_ms.desc(), Job.id.desc()).limit(limit + 1)
    if enabled is not None:
        query = query.where(Job.enabled == enabled)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Job.name.like(f"%{escaped}%", escape="\\"))
    if after:
        query = query.where(pagination.after([Job.created_at_ms, Job.id], after))
    with services.unit_of_work() as session:
        jobs = session.scalars(query).all()
    page, more = jobs[:limit], len(jobs) > limit
    return JobsPage(page, live_state(services, page),
                    pagination.encode([page[-1].created_at_ms, page[-1].id]) if more else None)


def _apply_misfire_on_resume(session: Session, job: Job, paused_since: int, now: int) -> None:
    """Fires that fell while the job was disabled follow its misfire policy:
    ``skip`` drops them, ``fire_once`` runs the last one now; either way one
    SKIPPED row records what was not run."""
    timing = timing_of(job)
    missed = fires_between(timing, paused_since, now)
    if not missed.count:
        return
    if job.misfire == MISFIRE_FIRE_ONCE:
        job.next_run_ms = missed.last  # due now: the dispatcher runs it as the catch-up
        job.finished_at_ms = None      # (its last fire, when the window has ended)
        missed = fires_between(timing, paused_since, missed.last - 1)
        if not missed.count:
            return
    else:
        # A one-time job's first fire is its instant even when past: here it
        # was missed, and skipped with the others.
        job.next_run_ms = next_fire(timing, now)
        if job.next_run_ms is None:
            job.finished_at_ms = now
    session.add(Execution(
        execution_id=execution_id(job.id, missed.first), job_id=job.id, attempt=0,
        redelivered=False, scheduled_at_ms=missed.first, started_at_ms=now,
        finished_at_ms=now, status=SKIPPED, duration_ms=0, final=False,
        error=f"{missed.describe()} skipped while the job was disabled "
              f"(misfire={job.misfire}), the last at {iso_ms(missed.last)}"))


def find_job(session: Session, job_id: str, lock: bool = False) -> Job:
    """The job's row (locked for update with ``lock``), or a 404."""
    query = select(Job).where(Job.id == job_id)
    job = session.scalars(query.with_for_update() if lock else query).first()
    if job is None:
        raise NotFound(f"job {job_id} not found", field="jobId")
    return job


@dataclass(frozen=True)
class LiveState:
    """What Redis knows ahead of the database: the next fire the dispatcher
    moved the job to, and whether its last fire was claimed."""

    next_run_ms: int | None
    finished_ms: int | None


def live_state(services: Services, jobs: list[Job]) -> dict[str, LiveState]:
    if not jobs:
        return {}
    try:
        live = services.store.live_state([job.id for job in jobs])
    except RedisError:
        return {job.id: LiveState(job.next_run_ms, job.finished_at_ms) for job in jobs}
    state = {}
    for job, (score, done) in zip(jobs, live):
        finished_ms = job.finished_at_ms
        if finished_ms is None and done is not None:
            version, last = map(int, done.decode().split(":"))
            if version == job.version:
                finished_ms = last
        nxt = int(score) if score is not None and job.enabled else None
        state[job.id] = LiveState(nxt, finished_ms)
    return state


def view(job: Job, live: LiveState | None) -> dict:
    if live is None:
        return job_view(job, None)
    return job_view(job, live.next_run_ms, live.finished_ms)
