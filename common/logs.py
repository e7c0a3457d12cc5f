"""Logging setup (one call per entry point) and redaction of secrets.

``JOBSCHED_LOG_FORMAT=json`` writes one JSON object per line; a call that
passes ``extra={"fields": {...}}`` adds those fields to it (the per-attempt
line does: job, execution, attempt, status, lateness, duration). The text
format (default) is for people. Job headers and bodies are never logged;
target URLs only as scheme://host:port.
"""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

class JsonFormatter(logging.Formatter):
    def __init__(self, process: str):
        super().__init__()
        self.process_name = process

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc)
                          .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "process": self.process_name, "pid": record.process,
            "logger": record.name, "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, process: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter(process))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s {process}[%(process)d] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def target_for_log(url: str) -> str:
    """Only scheme, host and port of a target: paths and queries of webhook
    URLs often are the secret (e.g. Slack incoming webhooks)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:   # a URL written before the API checked ports: never raise here
        return "(an invalid URL)"
    return f"{parts.scheme}://{host}{port}/…"


def redact_url(url: str) -> str:
    """Hide a password in a URL such as mysql+pymysql://user:pw@host/db."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
