"""Entry point: ``jobsched dispatcher`` or ``python -m dispatcher``."""
from __future__ import annotations

import signal

from common.db import make_engine, make_sessionmaker
from common.logs import configure
from common.redisstore import connect
from common.redis_dispatcher import DispatcherShards
from common.settings import Settings
from dispatcher.loop import Dispatcher


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings.from_env()
    configure(settings.log_level, "dispatcher", settings.log_format)
    shards = DispatcherShards.open(
        connect(settings.redis_url, settings.redis_cluster, socket_timeout=10),
        settings.redis_prefix, settings.redis_shards)
    sessions = make_sessionmaker(make_engine(settings.database_url))
    dispatcher = Dispatcher(settings, shards, sessions)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: dispatcher.stop_event.set())
    dispatcher.run_forever()


if __name__ == "__main__":
    main()
