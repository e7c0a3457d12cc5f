"""Logging setup (one call per entry point) and redaction of secrets."""
from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

_SECRET_NAME = re.compile(r"auth|token|secret|password|passwd|api[-_]?key|cookie|signature",
                          re.IGNORECASE)


def configure(level: str, process: str) -> None:
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s {process}[%(process)d] %(name)s: %(message)s",
    )


def redact_headers(headers: dict | None) -> dict:
    """Headers safe to log: values of auth/token/secret-like names are hidden."""
    return {k: ("***" if _SECRET_NAME.search(k) else v) for k, v in (headers or {}).items()}


def target_for_log(url: str) -> str:
    """Only scheme, host and port of a target: paths and queries of webhook
    URLs often are the secret (e.g. Slack incoming webhooks)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def redact_url(url: str) -> str:
    """Hide a password in a URL such as mysql+pymysql://user:pw@host/db."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
