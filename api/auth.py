"""Bearer-token authentication, when JOBSCHED_API_TOKEN is set."""
from __future__ import annotations

import hmac

from flask import Flask, jsonify, request

# Monitoring must work without the token.
PUBLIC_PATHS = ("/health", "/metrics")


def require_token(app: Flask, token: str) -> None:
    expected = f"Bearer {token}".encode()

    @app.before_request
    def check_token():
        if request.path in PUBLIC_PATHS:
            return None
        given = request.headers.get("Authorization", "").encode("latin-1", "replace")
        if hmac.compare_digest(given, expected):  # constant time
            return None
        body = {"error": {"code": "unauthorized", "field": "Authorization",
                          "message": "send Authorization: Bearer <token>"}}
        return jsonify(body), 401, {"WWW-Authenticate": "Bearer"}
