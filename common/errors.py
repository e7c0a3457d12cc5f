"""One exception hierarchy for the whole project.

The API maps each class to an HTTP status in one error handler; library
errors are translated at the boundary with ``raise ... from e``.
"""
from __future__ import annotations


class JobschedError(Exception):
    """Base of every error this project raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class ConfigError(JobschedError):
    code = "config_error"


class ValidationError(JobschedError):
    status = 400
    code = "invalid_request"


class NotFound(JobschedError):
    status = 404
    code = "not_found"


class Conflict(JobschedError):
    status = 409
    code = "conflict"


class UnsupportedMediaType(JobschedError):
    status = 415
    code = "unsupported_media_type"


class DependencyUnavailable(JobschedError):
    """The database or Redis does not answer; the caller may retry later."""

    status = 503
    code = "dependency_unavailable"
