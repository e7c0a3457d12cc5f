"""The OpenAPI 3.1 document, generated from the models in api/schemas.py
(the ones that validate requests) and the table of operations below."""
from __future__ import annotations

import copy
from functools import lru_cache

from pydantic.json_schema import models_json_schema

from api import schemas as s
from common.jobs import ALERT_KINDS, DELIVERY_STATES, EXECUTION_STATUSES

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict:
    return {"$ref": REF.format(model=name)}


def _param(name: str, where: str, schema: dict, description: str = "",
           required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100},
               "page size")
CURSOR = _param("cursor", "query", {"type": "string"}, "nextCursor of the previous page")
JOB_ID = _param("jobId", "path", {"type": "string"})
STATUS = _param("status", "query", {"type": "string", "enum": list(EXECUTION_STATUSES)})
FINAL = _param("final", "query", {"type": "boolean"},
               "true: only last attempts that failed (the dead letter)")
JOB_FILTER = _param("jobId", "query", {"type": "string"})

ERRORS_READ = (400, 404, 503)
ERRORS_WRITE = (400, 404, 413, 415, 503)

# (method, path, summary, request body schema name, {status: response schema name},
#  parameters, error statuses)
OPERATIONS = [
    ("post", "/jobs", "Create a job", "JobIn", {201: "JobOut"}, [], (400, 413, 415, 503)),
    ("get", "/jobs", "List jobs, newest first", None, {200: "JobPage"},
     [LIMIT, CURSOR, _param("enabled", "query", {"type": "boolean"}),
      _param("name", "query", {"type": "string"}, "part of the name")], (400, 503)),
    ("get", "/jobs:overview", "List jobs, newest first, each with its schedule in words, "
     "its next 3 fires, its last status and its recent success rate", None,
     {200: "JobOverviewPage"},
     [LIMIT, CURSOR, _param("enabled", "query", {"type": "boolean"}),
      _param("name", "query", {"type": "string"}, "part of the name")], (400, 503)),
    ("post", "/jobs:batch", "Create up to 1,000 jobs, all or nothing", "JobBatchIn",
     {201: "JobBatch"}, [], (400, 413, 415, 503)),
    ("get", "/jobs/{jobId}", "Get a job", None, {200: "JobOut"}, [JOB_ID], ERRORS_READ),
    ("put", "/jobs/{jobId}", "Replace a job", "JobIn", {200: "JobOut"}, [JOB_ID],
     ERRORS_WRITE),
    ("patch", "/jobs/{jobId}", "Change some fields of a job", "JobPatch", {200: "JobOut"},
     [JOB_ID], ERRORS_WRITE),
    ("delete", "/jobs/{jobId}", "Delete a job (its history is kept)", None, {204: None},
     [JOB_ID], ERRORS_READ),
    ("post", "/jobs/{jobId}/pause", "Pause a job", None, {200: "JobOut"}, [JOB_ID],
     ERRORS_READ),
    ("post", "/jobs/{jobId}/resume", "Resume a job (its misfire policy applies)", None,
     {200: "JobOut"}, [JOB_ID], ERRORS_READ),
    ("post", "/jobs/{jobId}/run", "Fire a job now, once, outside its schedule", None,
     {202: "FireQueued"}, [JOB_ID], ERRORS_READ),
    ("get", "/jobs/{jobId}/next", "Preview the next fire times", None, {200: "NextRuns"},
     [JOB_ID, _param("count", "query", {"type": "integer", "minimum": 1, "maximum": 100})],
     ERRORS_READ),
    ("get", "/schedules/preview", "A schedule in words and its next fires, before it is "
     "saved", None, {200: "SchedulePreview"},
     [_param("schedule", "query", {"type": "string"}, "cron, or @once with runAt",
             required=True),
      _param("timezone", "query", {"type": "string"}, "IANA time zone (default UTC)"),
      *(_param(name, "query", {"type": "string"}, "ISO 8601, as in a job")
        for name in ("startAt", "endAt", "runAt")),
      _param("count", "query", {"type": "integer", "minimum": 1, "maximum": 100},
             "how many fires (default 3)")], (400,)),
    ("get", "/jobs/{jobId}/executions", "A job's attempts, newest first (5 by default)",
     None, {200: "ExecutionPage"}, [JOB_ID, LIMIT, CURSOR, STATUS], ERRORS_READ),
    ("get", "/executions", "Attempts across jobs, newest first", None,
     {200: "ExecutionPage"}, [LIMIT, CURSOR, STATUS, FINAL, JOB_FILTER], (400, 503)),
    ("get", "/executions/dead-letter", "Fires that failed for good", None,
     {200: "ExecutionPage"}, [LIMIT, CURSOR, JOB_FILTER], (400, 503)),
    ("post", "/executions/{executionId}/replay",
     "Run a fire that failed for good again (same execution id, next attempt)", None,
     {202: "FireQueued"}, [_param("executionId", "path", {"type": "string"})],
     (404, 409, 503)),
    ("get", "/alerts", "Alerts, newest first", None, {200: "AlertPage"},
     [LIMIT, CURSOR, JOB_FILTER, _param("acknowledged", "query", {"type": "boolean"}),
      _param("kind", "query", {"type": "string", "enum": list(ALERT_KINDS)}),
      _param("delivery", "query", {"type": "string", "enum": list(DELIVERY_STATES)})],
     (400, 503)),
    ("post", "/alerts/{alertId}/ack", "Acknowledge an alert", None, {200: "AlertOut"},
     [_param("alertId", "path", {"type": "integer", "minimum": 0, "maximum": 2 ** 63 - 1})],
     (404, 503)),
    ("get", "/health", "Whether the database and Redis answer (deep: also a leader, a live "
     "worker and a ready queue that moves)", None, {200: "HealthOut", 503: "HealthOut"},
     [_param("deep", "query", {"type": "boolean"})], (400,)),
    ("get", "/ready", "The deep health checks", None, {200: "HealthOut", 503: "HealthOut"},
     [], ()),
    ("get", "/stats", "Queue depths, workers, leader, jobs and execution counts", None,
     {200: "StatsOut"}, [], (503,)),
    ("get", "/metrics", "Prometheus metrics, totals over all processes", None,
     {200: "text"}, [], (503,)),
]

MODELS = [(s.JobIn, "validation")] + [(m, "serialization") for m in (
    s.JobOut, s.JobPage, s.JobBatch, s.JobOverviewPage, s.SchedulePreview, s.NextRuns,
    s.ExecutionOut, s.ExecutionPage,
    s.FireQueued, s.AlertOut, s.AlertPage, s.ErrorOut, s.HealthOut, s.StatsOut)]


def _components() -> dict:
    _, top = models_json_schema(MODELS, ref_template=REF)
    schemas = top["$defs"]
    patch = copy.deepcopy(schemas["JobIn"])
    patch.pop("required", None)
    for prop in patch["properties"].values():
        prop.pop("default", None)  # an absent field keeps its current value
    patch["title"] = "JobPatch"
    patch["description"] = "Any fields of a job; the result is validated as a whole."
    schemas["JobPatch"] = patch
    schemas["JobBatchIn"] = {
        "type": "object", "additionalProperties": False, "required": ["jobs"],
        "properties": {"jobs": {"type": "array", "items": _ref("JobIn"), "minItems": 1,
                                "maxItems": s.MAX_BATCH}}}
    return schemas


# How an answer leads to the next requests (OpenAPI links: clients and the
# stateful contract test follow them): (method, path, status) -> {operation
# id: {parameter: runtime expression}}.
_JOB = {"jobId": "$response.body#/jobId"}
_JOB_OPS = ("getJob", "replaceJob", "patchJob", "deleteJob", "pauseJob", "resumeJob", "runJob",
            "nextRuns", "jobExecutions")
LINKS = {
    ("post", "/jobs", 201): {op: _JOB for op in _JOB_OPS},
    ("post", "/jobs:batch", 201): {op: {"jobId": "$response.body#/jobs/0/jobId"}
                                   for op in _JOB_OPS},
    ("post", "/jobs/{jobId}/run", 202): {"replayExecution": {
        "executionId": "$response.body#/executionId"}},
}


# Each operation's id (what links name).
OPERATION_IDS = {
    ("post", "/jobs"): "createJob", ("get", "/jobs"): "listJobs",
    ("get", "/jobs:overview"): "jobsOverview", ("post", "/jobs:batch"): "createJobs",
    ("get", "/jobs/{jobId}"): "getJob", ("put", "/jobs/{jobId}"): "replaceJob",
    ("patch", "/jobs/{jobId}"): "patchJob", ("delete", "/jobs/{jobId}"): "deleteJob",
    ("post", "/jobs/{jobId}/pause"): "pauseJob", ("post", "/jobs/{jobId}/resume"): "resumeJob",
    ("post", "/jobs/{jobId}/run"): "runJob", ("get", "/jobs/{jobId}/next"): "nextRuns",
    ("get", "/schedules/preview"): "previewSchedule",
    ("get", "/jobs/{jobId}/executions"): "jobExecutions",
    ("get", "/executions"): "listExecutions", ("get", "/executions/dead-letter"): "deadLetter",
    ("post", "/executions/{executionId}/replay"): "replayExecution",
    ("get", "/alerts"): "listAlerts", ("post", "/alerts/{alertId}/ack"): "acknowledgeAlert",
    ("get", "/health"): "health", ("get", "/ready"): "ready", ("get", "/stats"): "stats",
    ("get", "/metrics"): "metrics"}


def _operation(summary, body, responses, params, errors, secured: bool) -> dict:
    op: dict = {"summary": summary, "parameters": params, "responses": {}}
    if body:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(body)}}}
    for status, model in responses.items():
        content = {"application/json": {"schema": _ref(model)}} if model else None
        if model == "text":
            content = {"text/plain": {"schema": {"type": "string"}}}
        op["responses"][str(status)] = {"description": summary, **(
            {"content": content} if content else {})}
    for status in errors + ((401,) if secured else ()):
        op["responses"].setdefault(str(status), {
            "description": "error", "content": {"application/json": {
                "schema": _ref("ErrorOut")}}})
    # Answered by gunicorn before the application sees the request.
    op["responses"]["414"] = {"description": "request line longer than the server accepts"}
    if not secured:
        op["security"] = []
    return op


@lru_cache(maxsize=2)
def document(token_required: bool = False) -> dict:
    paths: dict = {}
    for method, path, summary, body, responses, params, errors in OPERATIONS:
        secured = token_required and path not in ("/health", "/ready", "/metrics")
        op = _operation(summary, body, responses, params, errors, secured)
        op["operationId"] = OPERATION_IDS[(method, path)]
        for status in responses:
            links = LINKS.get((method, path, status))
            if links:
                op["responses"][str(status)]["links"] = {
                    name[0].upper() + name[1:]: {"operationId": name, "parameters": params_}
                    for name, params_ in links.items()}
        paths.setdefault(path, {})[method] = op
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "jobsched", "version": "0.1.0",
                 "description": "A distributed scheduler of HTTP jobs."},
        "paths": paths,
        "components": {"schemas": _components()},
    }
    if token_required:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
