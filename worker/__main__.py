"""Entry point: ``jobsched worker`` or ``python -m worker``."""
from __future__ import annotations

import signal
import sys

from common.db import make_engine
from common.logs import configure
from common.redisstore import connect
from common.redis_worker import WorkerShards
from common.settings import Settings
from worker.runner import POP_TIMEOUT_S, Worker


def main(settings: Settings | None = None) -> None:
    # The calls' loop thread must get the GIL at a fire's time even while the
    # result writer is busy; by default threads switch only every 5 ms.
    sys.setswitchinterval(0.0005)
    settings = settings or Settings.from_env()
    configure(settings.log_level, "worker", settings.log_format)
    # The socket must outlive the blocking pop. Connections: the popper, the
    # result writer, heartbeat, webhooks and the loop's Redis helper threads.
    client = connect(settings.redis_url, settings.redis_cluster,
                     socket_timeout=POP_TIMEOUT_S + 10,
                     max_connections=32)
    store = WorkerShards.open(client, settings.redis_prefix, settings.redis_shards)
    store.follow_layout()
    engine = make_engine(settings.database_url)
    worker = Worker(settings, store, engine)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop_event.set())
    worker.run_forever()


if __name__ == "__main__":
    main()
