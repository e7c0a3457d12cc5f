"""Flask application factory. ``gunicorn 'api.app:create_app()'`` works too."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from flask_swagger_ui import get_swaggerui_blueprint

from api import dashboard
from api.auth import require_token
from api.routes import history, jobs, schedules, system
from api.services import Services
from common.db import make_engine, make_sessionmaker
from common.errors import JobschedError
from common.redisstore import RedisError, connect
from common.redis_api import ApiShards
from common.settings import Settings

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    settings.check_api_exposure()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = False
    engine = make_engine(settings.database_url, pool_size=settings.api_threads,
                         max_overflow=4) if settings.database_url.startswith("mysql") \
        else make_engine(settings.database_url)
    redis_client = connect(settings.redis_url, settings.redis_cluster, socket_timeout=5)
    store = ApiShards.open(redis_client, settings.redis_prefix, settings.redis_shards)
    try:
        store.follow_layout()
    except RedisError:
        log.warning("Redis unavailable at start: the shard layout is read at the first "
                    "write")
    app.extensions["jobsched"] = Services(settings=settings, sessions=make_sessionmaker(engine),
                                          store=store)
    if settings.api_token:
        require_token(app, settings.api_token)
    elif settings.auth == "none":
        log.warning("the API answers without a token (JOBSCHED_AUTH=none), on %s",
                    settings.api_host)
    else:
        log.info("the API answers without a token: it listens on %s only (set "
                 "JOBSCHED_API_TOKEN to require one)", settings.api_host)
    for blueprint in (jobs.bp, history.bp, schedules.bp, system.bp, dashboard.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(get_swaggerui_blueprint(
        "/docs", "/openapi.json", config={"app_name": "jobsched API"}))
    _register_errors(app)
    return app


def _register_errors(app: Flask) -> None:
    @app.errorhandler(JobschedError)
    def domain_error(e: JobschedError):
        if e.status >= 500:
            log.warning("request failed: %s", e.message, exc_info=e.__cause__ is not None)
        return jsonify(e.to_dict()), e.status

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = (e.name or "error").lower().replace(" ", "_")
        body = {"error": {"code": code, "message": e.description, "field": None}}
        # Keep headers such as Allow (405); the body is ours, so is its type.
        headers = [(k, v) for k, v in e.get_headers() if k.lower() != "content-type"]
        return jsonify(body), e.code, headers

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        log.exception("unhandled error")
        body = {"error": {"code": "internal_error", "message": "internal error", "field": None}}
        return jsonify(body), 500
