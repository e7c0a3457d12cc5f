"""Run the API under gunicorn (``jobsched api``)."""
from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication
from gunicorn.config import KNOWN_SETTINGS

from api.app import create_app
from common.settings import Settings

log = logging.getLogger(__name__)


def gunicorn_options(s: Settings) -> dict:
    """gunicorn's settings from ours: for ``jobsched api`` and for the
    container's config file (deploy/gunicorn.conf.py)."""
    options = {"bind": f"{s.api_host}:{s.api_port}", "workers": s.api_processes,
               "worker_class": "gthread", "threads": s.api_threads, "graceful_timeout": 10,
               "loglevel": s.log_level.lower()}
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        # gunicorn >= 25 opens a control socket at one fixed path per user;
        # several APIs on one machine would fight over it.
        options["control_socket_disable"] = True
    return options


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        for name, value in gunicorn_options(s).items():
            self.cfg.set(name, value)
        self.cfg.set("when_ready", lambda server: log.info(
            "api ready on http://%s:%d (%d processes)", s.api_host, s.api_port,
            s.api_processes))

    def load(self):
        return create_app(self.settings)


def main(settings: Settings) -> None:
    _Gunicorn(settings).run()
