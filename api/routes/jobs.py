"""/jobs: create, read, list (also as an overview), replace, patch, delete, pause,
resume, run, preview."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.routes import choice_arg, flag_arg, int_arg, json_body, services
from api.schemas import parse_batch, parse_job
from api.services import history, jobs, overview
from common.jobs import EXECUTION_STATUSES

bp = Blueprint("jobs", __name__)


@bp.post("/jobs")
def create_job():
    return jsonify(jobs.create_job(services(), parse_job(json_body()))), 201


@bp.post("/jobs:batch")
def create_jobs():
    created = jobs.create_jobs(services(), parse_batch(json_body()))
    return jsonify({"jobs": created}), 201


@bp.get("/jobs")
def list_jobs():
    return jsonify(jobs.list_jobs(services(), int_arg("limit", 50), request.args.get("cursor"),
                                  flag_arg("enabled"), request.args.get("name")))


@bp.get("/jobs:overview")
def job_overview():
    return jsonify(overview.job_overview(
        services(), int_arg("limit", 50), request.args.get("cursor"), flag_arg("enabled"),
        request.args.get("name")))


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(jobs.get_job(services(), job_id))


@bp.put("/jobs/<job_id>")
def replace_job(job_id: str):
    return jsonify(jobs.replace_job(services(), job_id, parse_job(json_body())))


@bp.patch("/jobs/<job_id>")
def patch_job(job_id: str):
    return jsonify(jobs.patch_job(services(), job_id, json_body()))


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str):
    jobs.delete_job(services(), job_id)
    return "", 204


@bp.post("/jobs/<job_id>/pause")
def pause_job(job_id: str):
    return jsonify(jobs.set_enabled(services(), job_id, False))


@bp.post("/jobs/<job_id>/resume")
def resume_job(job_id: str):
    return jsonify(jobs.set_enabled(services(), job_id, True))


@bp.post("/jobs/<job_id>/run")
def run_job(job_id: str):
    return jsonify(jobs.run_now(services(), job_id)), 202


@bp.get("/jobs/<job_id>/next")
def next_runs(job_id: str):
    count = int_arg("count", 5, high=jobs.MAX_PREVIEW)
    return jsonify(jobs.next_runs(services(), job_id, count))


@bp.get("/jobs/<job_id>/executions")
def job_executions(job_id: str):
    return jsonify(history.job_executions(
        services(), job_id, int_arg("limit", 5), request.args.get("cursor"),
        choice_arg("status", EXECUTION_STATUSES)))
