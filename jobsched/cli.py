"""``jobsched <command>``: start one process of the system."""
from __future__ import annotations

import argparse
import logging
import sys

from common.errors import ConfigError
from common.logs import configure, redact_url
from common.settings import Settings

log = logging.getLogger("jobsched")

COMMANDS = {
    "api": "serve the REST API under gunicorn",
    "dispatcher": "run a dispatcher (leader or standby)",
    "worker": "run a worker that executes due jobs",
    "migrate": "apply database migrations",
    "reshard": "move the schedule into another number of shards while the system runs "
               "(--to M)",
    "embedded": "run everything on this machine: SQLite, bundled Redis, api, dispatcher, "
                "a worker per core",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobsched", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, help_text in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name == "reshard":
            command.add_argument("--to", type=int, required=True, metavar="M",
                                 help="the number of shards to move the schedule into")
            command.add_argument("--drain-timeout", type=float, default=600, metavar="S",
                                 help="how long to wait for the fires queued before the "
                                      "move (default 600 s; run again to go on)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "api":
            settings.check_api_exposure()
    except ConfigError as e:
        print(f"jobsched: configuration error: {e.message}", file=sys.stderr)
        return 2
    if args.command == "api":
        configure(settings.log_level, "api", settings.log_format)
        from api.server import main as run_api
        run_api(settings)
    elif args.command == "dispatcher":
        from dispatcher.__main__ import main as run_dispatcher
        run_dispatcher(settings)
    elif args.command == "worker":
        from worker.__main__ import main as run_worker
        run_worker(settings)
    elif args.command == "migrate":
        configure(settings.log_level, "migrate", settings.log_format)
        from migrations import upgrade
        upgrade(settings.database_url)
        log.info("database at %s is up to date", redact_url(settings.database_url))
    elif args.command == "reshard":
        return reshard(settings, args.to, args.drain_timeout)
    elif args.command == "embedded":
        from jobsched.embedded import main as run_embedded
        return run_embedded()
    return 0


def reshard(settings: Settings, to: int, drain_timeout_s: float) -> int:
    from common.redis_reshard import ReshardShards
    from common.redisstore import RedisError, connect
    from common.settings import MAX_SHARDS
    from jobsched.reshard import Reshard, ReshardError
    configure(settings.log_level, "reshard", settings.log_format)
    if not 1 <= to <= MAX_SHARDS:
        print(f"jobsched: --to must be between 1 and {MAX_SHARDS}", file=sys.stderr)
        return 2
    client = connect(settings.redis_url, settings.redis_cluster, socket_timeout=30)
    shards = ReshardShards.open(client, settings.redis_prefix, settings.redis_shards)
    try:
        Reshard(shards, drain_timeout_s=drain_timeout_s).run(to)
    except (ReshardError, RedisError) as e:
        print(f"jobsched reshard: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
