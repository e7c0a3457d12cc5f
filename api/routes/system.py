"""/health, /openapi.json."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST

from api.metrics import exposition
from api.openapi import document
from api.routes import flag_arg, services
from api.services import observe
from common.errors import DependencyUnavailable
from common.redisstore import RedisError

bp = Blueprint("system", __name__)


@bp.get("/health")
def health_check():
    ok, body = observe.health(services(), deep=bool(flag_arg("deep")))
    return jsonify(body), 200 if ok else 503


@bp.get("/ready")
def readiness():
    ok, body = observe.health(services(), deep=True)
    return jsonify(body), 200 if ok else 503


@bp.get("/metrics")
def metrics():
    try:
        return Response(exposition(services()), content_type=CONTENT_TYPE_LATEST)
    except RedisError as e:
        raise DependencyUnavailable("Redis unavailable") from e


@bp.get("/stats")
def stats():
    """The /metrics picture as JSON, for people."""
    return jsonify(observe.stats(services()))


@bp.get("/openapi.json")
def openapi():
    return jsonify(document(token_required=bool(services().settings.api_token)))
