"""The job spec kept in Redis and the fire message a worker executes: the
one codec of both, in Python and (through cjson) in the Lua scripts.

A job's spec is stored as ``JobSpec.to_json()``, without the job's id (the
key it is stored under says it: a million jobs, 64 MB less). A fire message
carries the whole spec and the id, so a worker never reads the database to
make a call. Its format is versioned; a reader takes every format up to
``MESSAGE_FORMAT``:

  3  {"v": 3, "j": "<job id>", "r": <redeliveries>, "t": "<fire ms>",
      "a": <attempt>[, "m": 1], "spec": "<the stored spec, as a string>"}
  2  as 3 without "j": the spec holds the id   (until 2026-12)
  1  {"r": <redeliveries>, "t": <fire ms>, "a": <attempt>[, "m": 1],
      "spec": {<the stored spec>}}   (until 2026-12)

Keys come in any order. The fire time is a string in format 2: cjson
writes numbers with 14 significant digits, too few for a millisecond
after the year 2286. Lua builds and edits messages with cjson from
fields (claim_due.lua, release_inflight.lua) and carries the spec string
as it is stored, never decoding it to build a message. ``"m": 1`` marks a
fire a user asked for (run now, replay): it runs even while the job is
paused.

Two records share the shape and are written, not called: a skip record
(fires the dispatcher skipped by misfire policy) carries ``"skip": {"reason",
"count", "last"}`` and becomes a SKIPPED execution; a lost record
(``"lost": 1``, common/lua/release_inflight.lua) stands for an at-most-once
fire whose worker stopped after it may have called, and becomes a FAILED
execution that is never retried.

A worker older than a format drops its messages as malformed: upgrade the
workers before the dispatchers and the API (docs/operations.md).
"""
from __future__ import annotations

import json
import re
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import lru_cache

from common.jobs import (DEFAULT_CONCURRENCY, DEFAULT_MAX_RETRIES,
                         DEFAULT_METHOD, DEFAULT_MISFIRE, DEFAULT_RETRY_BACKOFF_MS,
                         DEFAULT_SUCCESS, DEFAULT_TYPE, SPEC_TIMEOUT_MS)
from common.schedule import Timing



# Headers that frame the request or the connection: jobsched sets them; a
# job's own would let it rewrite the calls of other jobs sharing a connection.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                              "keep-alive", "te", "trailer", "upgrade", "expect"})


def reserved_header(name: str) -> bool:
    lower = name.lower()
    return lower in RESERVED_HEADERS or lower.startswith("proxy-")


def execution_id(job_id: str, fire_ms: int) -> str:
    """Deterministic id of one fire: the same on every retry and redelivery."""
    return f"{job_id}:{fire_ms}"


@dataclass(frozen=True)
class JobSpec:
    id: str
    version: int
    schedule: str
    timezone: str
    url: str
    method: str = DEFAULT_METHOD
    headers: dict = field(default_factory=dict)
    body: str | None = None
    content_type: str | None = None
    type: str = DEFAULT_TYPE
    timeout_ms: int = SPEC_TIMEOUT_MS
    alert_webhook: str | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff_ms: int = DEFAULT_RETRY_BACKOFF_MS
    misfire: str = DEFAULT_MISFIRE
    concurrency: str = DEFAULT_CONCURRENCY
    start_ms: int | None = None
    end_ms: int | None = None
    run_at_ms: int | None = None
    success: tuple = DEFAULT_SUCCESS   # inclusive (low, high) status ranges
    auto_disable_after: int | None = None
    enabled: bool = True   # a paused job's queued fires are skipped, not called

    def to_json(self) -> str:
        """Compact: fields holding their default are left out (Redis keeps
        one spec per job: a million jobs, a third of the memory). The timing
        fields come first, in this order: timing_of_spec and version_of_spec
        read them without decoding the rest."""
        written = {}
        for name, attr in _JSON_FIELDS.items():
            value = getattr(self, attr)
            if name == "id":
                continue   # stored under it, carried beside it (FireMessage)
            if name in _ALWAYS or value != _DEFAULTS[attr]:
                written[name] = _to_json(name, value)
        return json.dumps(written, separators=(",", ":"))

    @property
    def timing(self) -> Timing:
        return Timing(self.schedule, self.timezone, self.start_ms, self.end_ms, self.run_at_ms)

    def succeeded(self, http_status: int) -> bool:
        return any(low <= http_status <= high for low, high in self.success)

    @classmethod
    def from_job(cls, job) -> "JobSpec":
        """The spec of a ``common.models.Job`` row."""
        body = None if job.body is None else json.loads(job.body)
        if body is None or isinstance(body, str):
            payload, content_type = body, None
        else:
            payload, content_type = json.dumps(body, separators=(",", ":")), "application/json"
        return cls(
            id=job.id, version=job.version, schedule=job.schedule, timezone=job.timezone,
            url=job.url, method=job.method, headers=job.headers or {}, body=payload,
            content_type=content_type, type=job.type, timeout_ms=job.timeout_ms,
            alert_webhook=job.alert_webhook, max_retries=job.max_retries,
            retry_backoff_ms=job.retry_backoff_ms, misfire=job.misfire,
            concurrency=job.concurrency, start_ms=job.start_at_ms, end_ms=job.end_at_ms,
            run_at_ms=job.run_at_ms,
            success=tuple(tuple(p) for p in job.success_status) if job.success_status
            else DEFAULT_SUCCESS, auto_disable_after=job.auto_disable_after,
            enabled=bool(job.enabled),
        )

    @classmethod
    def from_dict(cls, d: dict, job_id: str | None = None) -> "JobSpec":
        """A spec from its JSON (of the job ``job_id``: a stored spec does
        not hold it); fields left out take JobSpec's defaults."""
        values = {_JSON_FIELDS[name]: _from_json(name, value)
                  for name, value in d.items() if name in _JSON_FIELDS}
        if job_id is not None:
            values["id"] = job_id
        return cls(**values)


# A spec's JSON names, in to_json's order: the timing fields first (see
# timing_of_spec below), then the rest.
_JSON_FIELDS = {
    "v": "version", "id": "id", "schedule": "schedule", "tz": "timezone",
    "start": "start_ms", "end": "end_ms", "runAt": "run_at_ms",
    "url": "url", "method": "method", "headers": "headers", "body": "body",
    "contentType": "content_type", "type": "type", "timeoutMs": "timeout_ms",
    "alertWebhook": "alert_webhook", "maxRetries": "max_retries",
    "backoffMs": "retry_backoff_ms", "misfire": "misfire", "concurrency": "concurrency",
    "success": "success", "autoDisable": "auto_disable_after", "enabled": "enabled",
}
_ALWAYS = frozenset({"v", "schedule", "tz", "url"})


def _to_json(name: str, value):
    return [list(pair) for pair in value] if name == "success" else value


def _from_json(name: str, value):
    if name == "success":
        return tuple(tuple(pair) for pair in value or DEFAULT_SUCCESS)
    if name == "headers":
        return value or {}
    return value


def _field_default(f):
    return f.default_factory() if f.default_factory is not MISSING else f.default


# Fields holding JobSpec's defaults are left out of its JSON.
_DEFAULTS = {f.name: _field_default(f) for f in fields(JobSpec)
             if f.default is not MISSING or f.default_factory is not MISSING}


# Fast readers of a stored spec (the dispatcher reads the timing of every
# fire, the reconciler the version of every job): to_json writes these
# fields first, so they are matched without decoding a spec whose body may
# be 64 KiB. start, end and runAt are left out when null.
_STRING = rb'("(?:[^"\\]|\\.)*")'
_NUMBER = rb'(null|-?\d+)'
_TIMING_FIELDS = re.compile(
    rb'\{"v":\d+,(?:"id":"[^"]*",)?"schedule":' + _STRING + rb',"tz":' + _STRING
    + rb'(?:,"start":' + _NUMBER + rb')?(?:,"end":' + _NUMBER + rb')?(?:,"runAt":' + _NUMBER
    + rb')?[,}]')
_VERSION = re.compile(rb'\{"v":(\d+),')


def timing_of_spec(spec_json: bytes) -> Timing:
    """The timing of a stored spec (JobSpec.to_json)."""
    match = _TIMING_FIELDS.match(spec_json)
    if match:
        return _decode_timing(match.groups())
    return JobSpec.from_dict(json.loads(spec_json), "").timing


@lru_cache(maxsize=50_000)
def _decode_timing(groups: tuple[bytes, ...]) -> Timing:
    schedule, tz, start, end, run_at = (None if g is None else json.loads(g) for g in groups)
    return Timing(schedule, tz, start, end, run_at)


def version_of_spec(spec_json: bytes | None) -> int:
    """The job version a stored spec was written from; 0 for none."""
    match = _VERSION.match(spec_json) if spec_json else None
    return int(match.group(1)) if match else 0


MESSAGE_FORMAT = 3


@dataclass(frozen=True)
class FireMessage:
    raw: bytes          # the exact bytes in Redis, needed to LREM on ack
    spec: JobSpec
    fire_ms: int
    attempt: int
    redeliveries: int
    skip: dict | None = None   # set on a skip record: reason, count, last
    lost: bool = False         # a lost record: an at-most-once call whose worker stopped
    manual: bool = False       # run now or replay: runs while the job is paused
    # The shard whose ready list it came from: its in-flight list, its mark
    # and its acknowledgement are in that shard's keys. Not in the message.
    shard: int = 0

    @property
    def execution_id(self) -> str:
        return execution_id(self.spec.id, self.fire_ms)

    @property
    def record(self) -> bool:
        """Written as an execution, never called."""
        return self.skip is not None or self.lost

    @classmethod
    def decode(cls, raw: bytes, shard: int = 0) -> "FireMessage":
        d = _envelope(raw)
        spec = d["spec"]
        if isinstance(spec, str):   # formats 2 and 3
            spec = json.loads(spec)
        return cls(raw=raw, spec=JobSpec.from_dict(spec, d.get("j")), fire_ms=int(d["t"]),
                   attempt=int(d["a"]), redeliveries=int(d.get("r", 0)), skip=d.get("skip"),
                   lost=bool(d.get("lost")), manual=bool(d.get("m")), shard=shard)

    @staticmethod
    def encode(job_id: str, spec_json: str, fire_ms: int, attempt: int = 1,
               redeliveries: int = 0, manual: bool = False) -> str:
        fields = {"v": MESSAGE_FORMAT, "j": job_id, "r": redeliveries, "t": str(fire_ms),
                  "a": attempt}
        if manual:
            fields["m"] = 1
        fields["spec"] = spec_json
        return json.dumps(fields, separators=(",", ":"))

    def with_spec(self, spec_json: bytes | str) -> "FireMessage":
        """This fire (same raw message, same attempt) as the job is now:
        ``spec_json`` as stored."""
        return replace(self, spec=JobSpec.from_dict(json.loads(spec_json), self.spec.id))

    @staticmethod
    def encode_skip(job_id: str, spec_json: str, first_ms: int, last_ms: int, count: int,
                    reason: str) -> str:
        return json.dumps({"v": MESSAGE_FORMAT, "j": job_id, "r": 0, "t": str(first_ms), "a": 0,
                           "skip": {"reason": reason, "count": count, "last": last_ms},
                           "spec": spec_json}, separators=(",", ":"))

    def next_attempt(self) -> str:
        """The message of this fire's next attempt (same execution id)."""
        return self.encode(self.spec.id, self.spec.to_json(), self.fire_ms, self.attempt + 1,
                           manual=self.manual)


def _envelope(raw: bytes | str) -> dict:
    """A message's fields, its spec not decoded; ValueError for a message
    that is not one, or is of a format newer than this code reads."""
    d = json.loads(raw)
    if not isinstance(d, dict):
        raise ValueError("a fire message is a JSON object")
    version = d.get("v", 1)
    if not isinstance(version, int) or not 1 <= version <= MESSAGE_FORMAT:
        raise ValueError(f"fire message format {version!r}: this jobsched reads formats "
                         f"1 to {MESSAGE_FORMAT}")
    return d


def waiting_since(raw: bytes) -> int | None:
    """When a message at the head of the ready list started waiting, if it
    says so: a first, non-redelivered attempt waits since its fire time.
    Retries, redeliveries and skip records carry an older fire time and would
    look like a backlog, so they say nothing."""
    try:
        d = _envelope(raw)
        if d.get("a") == 1 and not d.get("r") and "skip" not in d:
            return int(d["t"])
    except (ValueError, KeyError, TypeError):
        pass
    return None
