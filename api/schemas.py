"""Request validation: one schema per resource, errors naming the field."""
from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from common import cron
from common.errors import ValidationError
from common.message import ATLEAST_ONCE

MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS = 50
MAX_RETRIES = 20
MAX_BACKOFF_MS = 3_600_000
# Fields the API returns that a client may echo back in a PUT; they are ignored.
READ_ONLY_FIELDS = ("jobId", "createdAt", "updatedAt", "nextRun")


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
        return True
    except UnicodeEncodeError:
        return False


def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


class JobIn(BaseModel):
    """A job as a client writes it (POST /jobs, PUT /jobs/<id>)."""

    model_config = ConfigDict(extra="forbid")

    schedule: StrictStr = Field(max_length=200)
    api: StrictStr = Field(max_length=2048)
    type: Literal["ATLEAST_ONCE", "ATMOST_ONCE"] = ATLEAST_ONCE
    name: StrictStr | None = Field(default=None, max_length=200)
    timezone: StrictStr = Field(default="UTC", max_length=64)
    method: Literal["POST", "GET", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    body: Any = None
    timeoutMs: StrictInt | None = Field(default=None, ge=1)
    alertWebhook: StrictStr | None = Field(default=None, max_length=2048)
    enabled: StrictBool = True
    maxRetries: StrictInt = Field(default=3, ge=0, le=MAX_RETRIES)
    retryBackoffMs: StrictInt = Field(default=1000, ge=1, le=MAX_BACKOFF_MS)
    misfire: Literal["skip", "fire_once"] = "skip"
    concurrency: Literal["allow", "forbid"] = "allow"

    @pydantic.field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        cron.normalize(v)
        return v.strip()

    @pydantic.field_validator("api")
    @classmethod
    def _api(cls, v: str) -> str:
        return check_http_url(v)

    @pydantic.field_validator("alertWebhook")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        return None if v is None else check_http_url(v)

    @pydantic.field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        cron.zone(v)
        return v

    @pydantic.field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        for name, value in v.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if "\r" in value or "\n" in value or not _latin1(value):
                raise ValueError(f"header {name!r} has a value that cannot be sent in HTTP "
                                 "(line breaks or characters outside Latin-1)")
            if name.lower().startswith("x-jobsched-"):
                raise ValueError("X-Jobsched-* headers are set by jobsched")
        return v

    @pydantic.field_validator("body")
    @classmethod
    def _body(cls, v: Any) -> Any:
        if v is not None and len(json.dumps(v).encode()) > MAX_BODY_BYTES:
            raise ValueError(f"body must be at most {MAX_BODY_BYTES} bytes")
        return v


def parse_job(payload: Any) -> JobIn:
    if not isinstance(payload, dict):
        raise ValidationError("request body must be a JSON object", field=None)
    cleaned = {k: v for k, v in payload.items() if k not in READ_ONLY_FIELDS}
    try:
        return JobIn.model_validate(cleaned)
    except ValidationError:
        raise
    except pydantic.ValidationError as e:
        raise _translate(e) from None


def _translate(error: pydantic.ValidationError) -> ValidationError:
    first = error.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ValidationError):  # raised by cron/zone helpers
        return ValidationError(cause.message, field=cause.field or field)
    kind = first["type"]
    if kind == "missing":
        message = f"{field} is required"
    elif kind == "extra_forbidden":
        message = f"unknown field {field}"
    else:
        message = f"{field}: {first['msg'].removeprefix('Value error, ')}"
    return ValidationError(message, field=field)
