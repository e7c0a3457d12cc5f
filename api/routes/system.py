"""/health, /openapi.json."""
from __future__ import annotations

from flask import Blueprint, jsonify

from api.openapi import document
from api.routes import services
from api.services.health import health

bp = Blueprint("system", __name__)


@bp.get("/health")
def health_check():
    ok, body = health(services())
    return jsonify(body), 200 if ok else 503


@bp.get("/openapi.json")
def openapi():
    return jsonify(document(token_required=bool(services().settings.api_token)))
