"""Bearer-token authentication, when JOBSCHED_API_TOKEN is set."""
from __future__ import annotations

import hmac

from flask import Flask, jsonify, request

# Monitoring and orchestrator probes must work without the token.
PUBLIC_PATHS = ("/health", "/ready", "/metrics")


def require_token(app: Flask, token: str) -> None:
    expected = token.encode()

    @app.before_request
    def check_token():
        if request.path in PUBLIC_PATHS:
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(  # constant time
                given.strip().encode("latin-1", "replace"), expected):
            return None
        body = {"error": {"code": "unauthorized", "field": "Authorization",
                          "message": "send Authorization: Bearer <token>"}}
        return jsonify(body), 401, {"WWW-Authenticate": "Bearer"}
