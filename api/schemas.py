"""Request and response schemas. Requests are validated with these models,
and /openapi.json is generated from the same models (api/openapi.py), so the
documentation cannot drift from what the API accepts."""
from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime, timezone
from typing import Any, Literal, Mapping
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from common import cron
from common.errors import ValidationError
from common.jobs import (CONCURRENCY_POLICIES, DEFAULT_CONCURRENCY, DEFAULT_MAX_RETRIES,
                         DEFAULT_METHOD, DEFAULT_MISFIRE, DEFAULT_RETRY_BACKOFF_MS,
                         DEFAULT_TIMEZONE, DEFAULT_TYPE, DELIVERY_STATES, EXECUTION_STATUSES,
                         JOB_TYPES, METHODS, MISFIRE_POLICIES)
from common.message import reserved_header
from common.schedule import ONCE

MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS = 50
MAX_RETRIES = 20
MAX_BACKOFF_MS = 3_600_000
MAX_BATCH = 1_000
# Fields the API returns that a client may echo back in a PUT; they are ignored.
READ_ONLY_FIELDS = ("jobId", "createdAt", "updatedAt", "nextRun", "state", "finishedAt")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters a header value must not carry (a tab may).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_STATUS_RANGE = re.compile(r"([1-5]\d\d)(?:-([1-5]\d\d))?")
# Instants a job may name: cron arithmetic and ISO formatting stay in range.
EARLIEST_MS = 0                                                       # 1970-01-01
LATEST_MS = int(datetime(8000, 1, 1, tzinfo=timezone.utc).timestamp()) * 1000


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
        return True
    except UnicodeEncodeError:
        return False


def check_http_url(value: str) -> str:
    """An absolute http(s) URL a worker can call: a valid host and port, no
    credentials (they belong in a header), no control characters."""
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in value) or " " in value:
        raise ValueError("must not contain spaces or control characters (percent-encode them)")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@): send them in a header, "
                         "e.g. Authorization")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("has a port that is not a number from 1 to 65535")
    if not _valid_host(parts.hostname):
        raise ValueError(f"has a host that is not a valid name or address: {parts.hostname!r}")
    return value


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _valid_host(host: str) -> bool:
    """An IP address, or a DNS name (international names allowed)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_name = host.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return 0 < len(ascii_name) <= 253 and all(
        _LABEL.fullmatch(label) for label in ascii_name.split("."))


def parse_instant(value: str) -> int:
    """ISO 8601 with a time zone (``2026-11-22T10:00:00Z``) -> epoch ms."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError("must be an ISO 8601 date-time such as 2026-11-22T10:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError("must include a time zone, e.g. Z or +01:00")
    ms = int(moment.timestamp() * 1000)
    if not EARLIEST_MS <= ms <= LATEST_MS:
        raise ValueError("must be between 1970 and the year 8000")
    return ms


def status_ranges(items: list[int | str] | None) -> list[list[int]] | None:
    """``[200, "300-303"]`` -> ``[[200, 200], [300, 303]]``."""
    if items is None:
        return None
    ranges = []
    for item in items:
        if isinstance(item, int):
            ranges.append([item, item])
        else:
            low, high = _STATUS_RANGE.fullmatch(item).groups()
            ranges.append([int(low), int(high or low)])
    return ranges


def check_schedule(v: str) -> str:
    v = v.strip()
    if v != ONCE:
        cron.normalize(v)
    return v


def check_timezone(v: str) -> str:
    cron.zone(v)
    return v


def check_instant(v: str | None) -> str | None:
    if v is not None:
        parse_instant(v)
    return v


class _TimingParsed:
    """Parsed forms of the timing fields (startAt, endAt, runAt), for the
    service layer. No annotations here: pydantic would take them for fields."""

    def start_ms(self) -> int | None:
        return None if self.startAt is None else parse_instant(self.startAt)

    def end_ms(self) -> int | None:
        return None if self.endAt is None else parse_instant(self.endAt)

    def run_at_ms(self) -> int | None:
        return None if self.runAt is None else parse_instant(self.runAt)


class JobIn(_TimingParsed, BaseModel):
    """A job as a client writes it (POST /jobs, PUT /jobs/{jobId})."""

    model_config = ConfigDict(extra="forbid")

    schedule: StrictStr = Field(
        max_length=200, description="cron `sec min hour dom mon dow` (5 fields: second 0), "
                                    "or `@once` with `runAt`")
    api: StrictStr = Field(max_length=2048, description="target URL, http:// or https://")
    type: Literal[JOB_TYPES] = DEFAULT_TYPE
    name: StrictStr | None = Field(default=None, max_length=200)
    timezone: StrictStr = Field(default=DEFAULT_TIMEZONE, max_length=64,
                                description="IANA time zone")
    method: Literal[METHODS] = DEFAULT_METHOD
    headers: dict[StrictStr, StrictStr] = Field(default_factory=dict,
                                                 description=f"at most {MAX_HEADERS}")
    body: Any = Field(default=None, description="JSON value (sent as application/json) or "
                                                "string (sent as is); at most 64 KiB")
    timeoutMs: StrictInt | None = Field(default=None, ge=1)
    alertWebhook: StrictStr | None = Field(default=None, max_length=2048)
    enabled: StrictBool = True
    maxRetries: StrictInt = Field(default=DEFAULT_MAX_RETRIES, ge=0, le=MAX_RETRIES)
    retryBackoffMs: StrictInt = Field(default=DEFAULT_RETRY_BACKOFF_MS, ge=1, le=MAX_BACKOFF_MS)
    misfire: Literal[MISFIRE_POLICIES] = DEFAULT_MISFIRE
    concurrency: Literal[CONCURRENCY_POLICIES] = DEFAULT_CONCURRENCY
    successStatus: list[StrictInt | StrictStr] | None = Field(
        default=None, max_length=20,
        description='HTTP statuses that count as success: codes or ranges, e.g. '
                    '[200, "300-303"]; default 200-299')
    autoDisableAfter: StrictInt | None = Field(
        default=None, ge=1, le=1000,
        description="disable the job after this many fires in a row failed for good")
    startAt: StrictStr | None = Field(default=None, description="no fire before (ISO 8601)")
    endAt: StrictStr | None = Field(default=None, description="no fire after (ISO 8601)")
    runAt: StrictStr | None = Field(default=None,
                                    description='the single fire of an "@once" job (ISO 8601)')

    @pydantic.field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        return check_schedule(v)

    @pydantic.field_validator("api", "alertWebhook")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_http_url(v)

    @pydantic.field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        return check_timezone(v)

    @pydantic.field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        for name, value in v.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if _CONTROL.search(value) or not _latin1(value) or value != value.strip():
                raise ValueError(f"header {name!r} has a value that cannot be sent in HTTP "
                                 "(control characters such as line breaks, leading or "
                                 "trailing spaces, or characters outside Latin-1)")
            if name.lower().startswith("x-jobsched-"):
                raise ValueError("X-Jobsched-* headers are set by jobsched")
            if reserved_header(name):
                raise ValueError(f"header {name!r} belongs to the connection and is set by "
                                 "jobsched")
        return v

    @pydantic.field_validator("body")
    @classmethod
    def _body(cls, v: Any) -> Any:
        if v is not None and len(json.dumps(v).encode()) > MAX_BODY_BYTES:
            raise ValueError(f"body must be at most {MAX_BODY_BYTES} bytes")
        return v

    @pydantic.field_validator("successStatus")
    @classmethod
    def _success(cls, v: list | None) -> list | None:
        for item in v or ():
            if isinstance(item, int) and not 100 <= item <= 599:
                raise ValueError(f"{item} is not an HTTP status")
            if isinstance(item, str):
                match = _STATUS_RANGE.fullmatch(item)
                if not match or int(match.group(1)) > int(match.group(2) or match.group(1)):
                    raise ValueError(f"{item!r} is not a status or range such as \"200-299\"")
        if v is not None and not v:
            raise ValueError("at least one status")
        return v

    @pydantic.field_validator("startAt", "endAt", "runAt")
    @classmethod
    def _instant(cls, v: str | None) -> str | None:
        return check_instant(v)


class ScheduleIn(_TimingParsed, BaseModel):
    """A job's timing alone, to preview it (GET /schedules/preview)."""

    model_config = ConfigDict(extra="forbid")

    schedule: StrictStr = Field(max_length=200, description="as in a job")
    timezone: StrictStr = Field(default=DEFAULT_TIMEZONE, max_length=64,
                                description="IANA time zone")
    startAt: StrictStr | None = None
    endAt: StrictStr | None = None
    runAt: StrictStr | None = None

    _schedule = pydantic.field_validator("schedule")(check_schedule)
    _timezone = pydantic.field_validator("timezone")(check_timezone)
    _instant = pydantic.field_validator("startAt", "endAt", "runAt")(check_instant)


def _check_combination(job: JobIn | ScheduleIn, prefix: str = "") -> None:
    """Rules that involve several fields, each error naming one of them."""
    if job.schedule == ONCE:
        if job.runAt is None:
            raise ValidationError('a schedule of "@once" needs runAt', field=prefix + "runAt")
        for name in ("startAt", "endAt"):
            if getattr(job, name) is not None:
                raise ValidationError(f'{name} does not apply to an "@once" job',
                                      field=prefix + name)
    elif job.runAt is not None:
        raise ValidationError('runAt applies only to a schedule of "@once"',
                              field=prefix + "runAt")
    start, end = job.start_ms(), job.end_ms()
    if start is not None and end is not None and end <= start:
        raise ValidationError("endAt must be after startAt", field=prefix + "endAt")


def parse_job(payload: Any, prefix: str = "") -> JobIn:
    if not isinstance(payload, dict):
        raise ValidationError("a job must be a JSON object", field=prefix.rstrip(".") or None)
    cleaned = {k: v for k, v in payload.items() if k not in READ_ONLY_FIELDS}
    try:
        job = JobIn.model_validate(cleaned)
    except pydantic.ValidationError as e:
        raise _translate(e, prefix) from None
    except ValidationError as e:  # raised as is by the cron and time zone helpers
        raise ValidationError(e.message, field=prefix + (e.field or "")) from None
    _check_combination(job, prefix)
    return job


def parse_schedule(args: Mapping[str, str]) -> ScheduleIn:
    """The timing fields of a query string (other parameters are not ours)."""
    fields = {name: args[name] for name in ScheduleIn.model_fields if name in args}
    try:
        timing = ScheduleIn.model_validate(fields)
    except pydantic.ValidationError as e:
        raise _translate(e, "") from None
    except ValidationError as e:  # raised as is by the cron and time zone helpers
        raise ValidationError(e.message, field=e.field) from None
    _check_combination(timing)
    return timing


def parse_batch(payload: Any) -> list[JobIn]:
    if not isinstance(payload, dict) or set(payload) != {"jobs"}:
        raise ValidationError('the request must be {"jobs": [...]}', field="jobs")
    jobs = payload["jobs"]
    if not isinstance(jobs, list) or not 1 <= len(jobs) <= MAX_BATCH:
        raise ValidationError(f"jobs must be a list of 1 to {MAX_BATCH} jobs", field="jobs")
    return [parse_job(job, prefix=f"jobs[{i}].") for i, job in enumerate(jobs)]


def _translate(error: pydantic.ValidationError, prefix: str) -> ValidationError:
    first = error.errors(include_url=False)[0]
    field = prefix + ".".join(str(p) for p in first["loc"]) if first["loc"] else None
    kind = first["type"]
    if kind == "missing":
        message = f"{field} is required"
    elif kind == "extra_forbidden":
        message = f"unknown field {field}"
    else:
        message = f"{field}: {first['msg'].removeprefix('Value error, ')}"
    return ValidationError(message, field=field)


# -- responses (documentation: api/serializers.py builds them) -----------------

class JobOut(BaseModel):
    jobId: str
    name: str | None
    schedule: str
    timezone: str
    api: str
    method: str
    headers: dict[str, str]
    body: Any = None
    type: str
    timeoutMs: int
    alertWebhook: str | None
    enabled: bool
    maxRetries: int
    retryBackoffMs: int
    misfire: str
    concurrency: str
    successStatus: list[str]
    autoDisableAfter: int | None
    startAt: str | None
    endAt: str | None
    runAt: str | None
    createdAt: str
    updatedAt: str
    nextRun: str | None
    state: Literal["active", "paused", "finished"] = Field(
        description="finished: the job's last fire was claimed (a one-time job, or the end "
                    "of its window); it fires again only if its timing is changed")
    finishedAt: str | None = Field(description="the last fire of a finished job")


class JobPage(BaseModel):
    jobs: list[JobOut]
    nextCursor: str | None


class JobBatch(BaseModel):
    jobs: list[JobOut]


class JobOverview(JobOut):
    """A job with what a table of jobs shows beside it."""

    scheduleDescription: str | None = Field(
        description="the schedule in words; None when it has none")
    nextRuns: list[str] = Field(description="the next fires (at most 3); none while the job "
                                            "is disabled")
    lastStatus: Literal[EXECUTION_STATUSES] | None = Field(
        description="status of the newest attempt")
    lastRunAt: str | None = Field(description="when the newest attempt started")
    successRate: float | None = Field(
        ge=0, le=1, description="share of SUCCESS among the recent attempts that made a call "
                                "(SKIPPED not counted); None without any")
    recentAttempts: int = Field(ge=0, description="how many attempts successRate is over")


class JobOverviewPage(BaseModel):
    jobs: list[JobOverview]
    nextCursor: str | None


class SchedulePreview(BaseModel):
    schedule: str
    timezone: str
    description: str | None = Field(description="the schedule in words; None when it has none")
    nextRuns: list[str]


class NextRuns(BaseModel):
    jobId: str
    nextRuns: list[str]


class ExecutionOut(BaseModel):
    executionId: str
    jobId: str
    attempt: int
    redelivered: bool
    scheduledAt: str
    startedAt: str
    finishedAt: str
    status: Literal[EXECUTION_STATUSES]
    httpStatus: int | None
    durationMs: int
    latenessMs: int = Field(description="start of this attempt minus the fire's scheduled "
                                        "time (a retry's includes its backoff)")
    error: str | None
    response: str | None
    final: bool


class ExecutionPage(BaseModel):
    executions: list[ExecutionOut]
    nextCursor: str | None


class FireQueued(BaseModel):
    executionId: str
    jobId: str
    attempt: int
    scheduledAt: str


class AlertOut(BaseModel):
    alertId: int
    jobId: str | None = Field(description="None for a system alert")
    executionId: str | None
    kind: str
    message: str
    createdAt: str
    acknowledged: bool
    deliveryStatus: Literal[DELIVERY_STATES]
    deliveryAttempts: int
    deliveryError: str | None


class AlertPage(BaseModel):
    alerts: list[AlertOut]
    nextCursor: str | None


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None


class ErrorOut(BaseModel):
    error: ErrorDetail


class DependencyState(BaseModel):
    ok: bool
    latencyMs: float
    error: str | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    database: DependencyState
    redis: DependencyState
    leader: DependencyState | None = None       # deep checks only
    workers: DependencyState | None = None
    readyQueue: DependencyState | None = None


class ShardQueueState(BaseModel):
    shard: int = Field(description="its number in the layout")
    retiring: bool = Field(description="a shard of the old count that `jobsched reshard` "
                                       "empties and retires")
    scheduled: int
    ready: int
    retry: int
    inflight: int
    oldestReadyAgeMs: int | None
    leader: str | None = Field(description="the dispatcher holding this shard's lease")
    leaseRemainingMs: int | None
    leaseAgeMs: int | None


class QueueState(BaseModel):
    scheduled: int
    ready: int
    retry: int
    inflight: int
    oldestReadyAgeMs: int | None
    workersAlive: int
    leader: str | None = Field(description="the dispatchers holding the leases, comma-separated "
                                           "(one with one shard)")
    leaderless: list[int] = Field(description="shards no dispatcher leads")
    layout: str = Field(description='the number of shards ("4"), or while `jobsched reshard` '
                                    'moves jobs, from and to ("4>2")')
    leaseRemainingMs: int | None
    leaseAgeMs: int | None = Field(description="since the youngest lease was taken")
    shards: list[ShardQueueState] = Field(description="per shard (JOBSCHED_SHARDS; while "
                                                      "resharding, of both counts)")


class JobCounts(BaseModel):
    total: int
    enabled: int


class Bucket(BaseModel):
    leMs: float
    count: int = Field(description="observations at most leMs (cumulative)")


class HistogramOut(BaseModel):
    """A histogram of /metrics, in milliseconds. Percentiles are estimated
    from the buckets as Prometheus' histogram_quantile does."""

    count: int
    sumMs: float
    p50Ms: float | None
    p90Ms: float | None
    p99Ms: float | None
    buckets: list[Bucket]


class LatencyStats(BaseModel):
    lateness: HistogramOut
    callDuration: HistogramOut


class StatsOut(BaseModel):
    queue: QueueState
    jobs: JobCounts | None
    database: DependencyState | dict
    executions: dict[str, int]
    latency: LatencyStats
