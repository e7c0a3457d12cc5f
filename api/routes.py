"""HTTP routes: parse, call one service function, return JSON."""
from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request

from api import service
from api.schemas import parse_job
from common.errors import ValidationError

bp = Blueprint("jobs", __name__)

DEFAULT_HISTORY = 5
MAX_LIMIT = 100


def _services() -> service.Services:
    return current_app.extensions["jobsched"]


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _json_body():
    raw = request.get_data(cache=False)
    try:
        # NaN and Infinity are not JSON: refused rather than sent on to a target.
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValidationError("request body is not valid JSON", field=None) from None


def _limit(default: int) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError("limit must be an integer", field="limit") from None
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return value


def _flag(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ValidationError(f"{name} must be true or false", field=name)


@bp.post("/jobs")
def create_job():
    job = service.create_job(_services(), parse_job(_json_body()))
    return jsonify(job), 201


@bp.get("/jobs")
def list_jobs():
    return jsonify({"jobs": service.list_jobs(_services(), _limit(MAX_LIMIT))})


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(service.get_job(_services(), job_id))


@bp.put("/jobs/<job_id>")
def replace_job(job_id: str):
    return jsonify(service.replace_job(_services(), job_id, parse_job(_json_body())))


@bp.get("/jobs/<job_id>/executions")
def job_executions(job_id: str):
    rows = service.list_executions(_services(), job_id, _limit(DEFAULT_HISTORY))
    return jsonify({"executions": rows})


EXECUTION_STATUSES = ("SUCCESS", "FAILED", "SKIPPED")


@bp.get("/executions")
def recent_executions():
    status = request.args.get("status")
    if status is not None and status not in EXECUTION_STATUSES:
        raise ValidationError(f"status must be one of {', '.join(EXECUTION_STATUSES)}",
                              field="status")
    final = _flag("final")
    rows = service.list_recent_executions(_services(), _limit(50), status, final,
                                          request.args.get("jobId"))
    return jsonify({"executions": rows})


@bp.get("/executions/dead-letter")
def dead_letter():
    rows = service.list_recent_executions(_services(), _limit(50), "FAILED", True,
                                          request.args.get("jobId"))
    return jsonify({"executions": rows})


@bp.post("/executions/<execution_id>/replay")
def replay(execution_id: str):
    return jsonify(service.replay_execution(_services(), execution_id)), 202


@bp.get("/alerts")
def alerts():
    rows = service.list_alerts(_services(), _limit(50), request.args.get("jobId"))
    return jsonify({"alerts": rows})


@bp.get("/health")
def health():
    ok, body = service.health(_services())
    return jsonify(body), 200 if ok else 503
