"""HTTP routes: parse and check the request, call one service function,
return JSON. Helpers here read the request the same way everywhere."""
from __future__ import annotations

import json
import math

from flask import current_app, request

from api.services import Services
from common.errors import UnsupportedMediaType, ValidationError

MAX_LIMIT = 100


def services() -> Services:
    return current_app.extensions["jobsched"]


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 would be sent on as Infinity
        raise ValueError(f"{text} is out of range")
    return value


def json_body():
    """The request body as JSON (415 when it is declared as something else)."""
    content_type = request.mimetype
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as application/json, not {content_type}", field=None)
    raw = request.get_data(cache=False)
    try:
        # NaN and Infinity are not JSON: refused rather than sent on to a target.
        return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValidationError("request body is not valid JSON", field=None) from None


def int_arg(name: str, default: int, low: int = 1, high: int = MAX_LIMIT) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationError(f"{name} must be an integer", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise ValidationError(f"{name} must be between {low} and {high}", field=name)
    return value


def flag_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ValidationError(f"{name} must be true or false", field=name)


def choice_arg(name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.args.get(name)
    if raw is not None and raw not in choices:
        raise ValidationError(f"{name} must be one of {', '.join(choices)}", field=name)
    return raw
