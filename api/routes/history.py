"""/executions and /alerts: history across jobs, dead letter, replay, alerts."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.routes import choice_arg, flag_arg, int_arg, services
from api.services import history
from common.jobs import ALERT_KINDS, DELIVERY_STATES, EXECUTION_STATUSES, FAILED

bp = Blueprint("history", __name__)


@bp.get("/executions")
def recent_executions():
    return jsonify(history.recent_executions(
        services(), int_arg("limit", 50), request.args.get("cursor"),
        choice_arg("status", EXECUTION_STATUSES), flag_arg("final"), request.args.get("jobId")))


@bp.get("/executions/dead-letter")
def dead_letter():
    return jsonify(history.recent_executions(
        services(), int_arg("limit", 50), request.args.get("cursor"), FAILED, True,
        request.args.get("jobId")))


@bp.post("/executions/<execution_id>/replay")
def replay(execution_id: str):
    return jsonify(history.replay_execution(services(), execution_id)), 202


@bp.get("/alerts")
def alerts():
    return jsonify(history.list_alerts(
        services(), int_arg("limit", 50), request.args.get("cursor"), request.args.get("jobId"),
        flag_arg("acknowledged"), choice_arg("kind", ALERT_KINDS),
        choice_arg("delivery", DELIVERY_STATES)))


@bp.post("/alerts/<int:alert_id>/ack")
def acknowledge(alert_id: int):
    return jsonify(history.acknowledge_alert(services(), alert_id))
