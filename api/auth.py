"""Bearer-token authentication, when JOBSCHED_API_TOKEN is set."""
from __future__ import annotations

import hmac

from flask import Flask, jsonify, request

# Monitoring and orchestrator probes must work without the token, and so
# must the dashboard's page and its static assets: they hold no data, and the
# page asks for the token and sends it with every call (api/dashboard).
PUBLIC_PATHS = ("/health", "/ready", "/metrics", "/")
PUBLIC_PREFIXES = ("/dashboard/static/",)


def require_token(app: Flask, tokens: str) -> None:
    """``tokens``: one, or several separated by commas while rotating
    (``new,old``: clients move to the new one, then the old is dropped)."""
    accepted = [t.strip().encode() for t in tokens.split(",") if t.strip()]

    @app.before_request
    def check_token():
        if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
            return None
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given_bytes = given.strip().encode("latin-1", "replace")
        # Every token compared, in constant time: the answer's timing tells nothing.
        matches = [hmac.compare_digest(given_bytes, token) for token in accepted]
        if scheme.lower() == "bearer" and any(matches):
            return None
        body = {"error": {"code": "unauthorized", "field": "Authorization",
                          "message": "send Authorization: Bearer <token>"}}
        return jsonify(body), 401, {"WWW-Authenticate": "Bearer"}
