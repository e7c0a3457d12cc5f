"""The operators' dashboard: one static page of plain JavaScript modules (no
build step, nothing fetched from elsewhere) served at ``/``, which calls the
JSON API from the same origin.

The page and its assets hold no data, so they are served without the API
token (api/auth.py); the page asks for the token and sends it on every call.
"""
from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("dashboard", __name__, static_folder="static",
               static_url_path="/dashboard/static")

# Scripts, styles and calls from this origin only: injected markup could not
# run a script, and an asset accidentally taken from elsewhere fails visibly.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; object-src 'none'; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@bp.get("/")
def index() -> Response:
    response = bp.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.after_request
def no_sniffing(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
