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


def _json_body():
    raw = request.get_data(cache=False)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
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


@bp.get("/alerts")
def alerts():
    rows = service.list_alerts(_services(), _limit(50), request.args.get("jobId"))
    return jsonify({"alerts": rows})


@bp.get("/health")
def health():
    ok, body = service.health(_services())
    return jsonify(body), 200 if ok else 503
