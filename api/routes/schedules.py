"""/schedules/preview: a schedule in words and its next fires, before it is saved."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from api.routes import int_arg
from api.schemas import parse_schedule
from api.services import schedules
from api.services.jobs import MAX_PREVIEW

bp = Blueprint("schedules", __name__)


@bp.get("/schedules/preview")
def preview():
    count = int_arg("count", 3, high=MAX_PREVIEW)
    return jsonify(schedules.preview(parse_schedule(request.args), count))
