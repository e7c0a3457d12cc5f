"""Run the API under gunicorn (``jobsched api``)."""
from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication

from api.app import create_app
from common.settings import Settings

log = logging.getLogger(__name__)


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        self.cfg.set("bind", f"{s.api_host}:{s.api_port}")
        self.cfg.set("workers", s.api_processes)
        self.cfg.set("worker_class", "gthread")
        self.cfg.set("threads", s.api_threads)
        self.cfg.set("graceful_timeout", 10)
        self.cfg.set("loglevel", s.log_level.lower())
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25 opens a control socket at one fixed path per user;
            # several APIs on one machine would fight over it.
            self.cfg.set("control_socket_disable", True)
        self.cfg.set("when_ready", lambda server: log.info(
            "api ready on http://%s:%d (%d processes)", s.api_host, s.api_port,
            s.api_processes))

    def load(self):
        return create_app(self.settings)


def main(settings: Settings) -> None:
    _Gunicorn(settings).run()
