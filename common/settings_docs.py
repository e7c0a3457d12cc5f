"""The settings' two printed forms, both made from Settings' declaration:
docs/operations.md's table and .env.example (tests/test_settings.py keeps
each equal to what is printed here).

    python -m common.settings_docs table         # paste into docs/operations.md
    python -m common.settings_docs env-example > .env.example
"""
from __future__ import annotations

import sys
import textwrap
from dataclasses import fields

from common.settings import Settings

# .env.example: compose's own variables come first (they are not settings).
ENV_EXAMPLE_HEAD = """\
# jobsched settings for docker compose: cp .env.example .env, then edit.
# Compose reads this file for the ${...} in docker-compose.yml, and every
# jobsched container gets its JOBSCHED_* lines. A line left commented out
# keeps the default shown. Printed by: python -m common.settings_docs env-example

# -- images (the official ones unless named here, e.g. local builds on a
#    machine without registry access)
# BASE_IMAGE=python:3.11-slim
# MYSQL_IMAGE=mysql:8.4
# REDIS_IMAGE=redis:7.4
# The tag compose gives the jobsched image it builds:
# JOBSCHED_IMAGE=jobsched:latest

# -- MySQL (the database URL is built from these; URL-encode special
#    characters in the password)
MYSQL_DATABASE=jobsched
MYSQL_USER=jobsched
MYSQL_PASSWORD=change-me

# The API's port on the host.
API_PORT=8000
"""

# Set by docker-compose.yml for each container, so not in .env: the URLs
# name compose's services, and each process has its own identity.
SET_BY_COMPOSE = frozenset({"JOBSCHED_DATABASE_URL", "JOBSCHED_REDIS_URL",
                            "JOBSCHED_API_HOST", "JOBSCHED_API_PORT",
                            "JOBSCHED_WORKER_ID", "JOBSCHED_DISPATCHER_ID"})
# Lines .env.example sets (not commented out), with compose's value.
SET_IN_ENV_EXAMPLE = {"JOBSCHED_API_TOKEN": "", "JOBSCHED_WORKER_CONCURRENCY": "1000",
                      "JOBSCHED_RETENTION_DAYS": "30", "JOBSCHED_LOG_LEVEL": "INFO",
                      "JOBSCHED_LOG_FORMAT": "json"}
# What compose adds to a setting's meaning.
COMPOSE_NOTES = {"JOBSCHED_API_TOKEN": "Required: compose does not start the API until it is "
                                       "set (e.g. openssl rand -hex 32)."}
# Defaults compose changes (docker-compose.yml's ${VAR:-default}).
COMPOSE_DEFAULTS = {"JOBSCHED_TARGET_DENY": "private"}
# A heading before the first setting of each group, in declaration order.
HEADINGS = {"JOBSCHED_REDIS_PREFIX": "every process", "JOBSCHED_API_PROCESSES": "API",
            "JOBSCHED_LOG_LEVEL": "logs", "JOBSCHED_WORKER_CONCURRENCY": "workers",
            "JOBSCHED_ALERT_WEBHOOK": "alerts", "JOBSCHED_TARGET_DENY": "targets",
            "JOBSCHED_RETRY_MAX_BACKOFF_MS": "retries",
            "JOBSCHED_LEADER_LEASE_MS": "dispatchers"}


def _default_text(f) -> str:
    """A field's default as a variable's value ("" for none)."""
    default = f.default
    if isinstance(default, tuple):
        return ",".join(default)
    if isinstance(default, bool):
        return str(default).lower()
    return "" if default is None else str(default)


def settings_table() -> str:
    """docs/operations.md's table of settings, as Markdown."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        meta = f.metadata
        text = _default_text(f)
        shown = meta["shown"] or (f"`{text}`" if text else "none")
        rows.append(f"| `{meta['env']}` | {shown} | {meta['doc']} |")
    return "\n".join(rows) + "\n"


def env_example() -> str:
    """.env.example: every setting compose does not set itself, with what
    it means and its default."""
    lines = [ENV_EXAMPLE_HEAD.rstrip()]
    for f in fields(Settings):
        env = f.metadata["env"]
        if env in SET_BY_COMPOSE:
            continue
        if env in HEADINGS:
            lines.append(f"\n# -- {HEADINGS[env]}")
        doc = f.metadata["doc"].replace("`", "")
        text = f"{doc}. {COMPOSE_NOTES.get(env, '')}"
        lines += textwrap.wrap(text, 76, initial_indent="# ", subsequent_indent="# ")
        if env in SET_IN_ENV_EXAMPLE:
            lines.append(f"{env}={SET_IN_ENV_EXAMPLE[env]}")
        else:
            lines.append(f"# {env}={COMPOSE_DEFAULTS.get(env, _default_text(f))}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    printers = {"table": settings_table, "env-example": env_example}
    if len(sys.argv) != 2 or sys.argv[1] not in printers:
        sys.exit(f"usage: python -m common.settings_docs {'|'.join(printers)}")
    print(printers[sys.argv[1]](), end="")
