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
    "embedded": "run everything on this machine: SQLite, bundled Redis, api, dispatcher, "
                "2 workers",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobsched", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text)
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
    elif args.command == "embedded":
        from jobsched.embedded import main as run_embedded
        return run_embedded()
    return 0


if __name__ == "__main__":
    sys.exit(main())
