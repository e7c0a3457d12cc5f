"""Configuration: one Settings object built from JOBSCHED_* environment variables.

Nothing reads the environment at import time; each entry point calls
``Settings.from_env()`` once and passes the result down explicitly.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import socket
from dataclasses import dataclass, field, replace
from typing import Mapping

from common.errors import ConfigError
from common.targets import DEFAULT_DENY, PRESETS, DenyList


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _cidrs(env: Mapping[str, str], name: str, default: tuple[str, ...],
           names_allowed: bool = False) -> tuple[str, ...]:
    """Comma-separated networks; a preset name (``private``) stands for its
    list; with ``names_allowed``, host names too."""
    raw = env.get(name)
    if raw is None:
        return default
    out: list[str] = []
    for entry in (c.strip() for c in raw.split(",") if c.strip()):
        if entry.lower() in PRESETS:
            out += PRESETS[entry.lower()]
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not names_allowed or not _HOST.fullmatch(entry):
                raise ConfigError(f"{name}: {entry!r} is not an address or network"
                                  + (" or a host name" if names_allowed else "")) from None
        out.append(entry)
    return tuple(out)


_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.?")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_worker_id() -> str:
    # The same after a restart in place (a container's PID is 1 each time): the
    # worker then releases what its previous run held at once.
    return f"{socket.gethostname()}-{os.getpid()}"


def _default_dispatcher_id() -> str:
    # Unique per run: the lease is a fence, and a dispatcher restarted in place
    # must not find its previous run's lease and carry on as if it held it.
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///data/jobsched.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "jobsched:"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_processes: int = 2
    api_threads: int = 8
    api_token: str | None = field(default=None, repr=False)   # a secret: never logged
    # "none": run the API without a token on purpose, wherever it listens;
    # otherwise a token is required unless it listens on loopback only.
    auth: str = "token"
    log_level: str = "INFO"
    log_format: str = "text"      # or "json"
    # Worker
    worker_id: str = field(default_factory=_default_worker_id)
    worker_concurrency: int = 1_000     # messages in hand (waiting or calling) per worker
    worker_heartbeat_ttl_ms: int = 10_000
    result_batch_size: int = 500
    # Results held while the database is down; when full, the worker stops
    # taking new work (backpressure).
    result_buffer: int = 10_000
    default_timeout_ms: int = 10_000
    max_timeout_ms: int = 300_000
    response_snippet_bytes: int = 1024
    alert_webhook: str | None = None          # for jobs without their own alertWebhook
    webhook_secret: str | None = field(default=None, repr=False)   # signs alert webhooks
    webhook_attempts: int = 5
    webhook_backoff_ms: int = 1_000
    target_deny: tuple[str, ...] = DEFAULT_DENY
    target_deny_loopback: bool = False
    target_allow: tuple[str, ...] = ()   # networks or host names called despite the deny list
    retry_max_backoff_ms: int = 300_000
    retry_after_cap_ms: int = 3_600_000
    # How long a fire's mark says "done" after its attempt was recorded: any
    # other message of that attempt met meanwhile is dropped, not called.
    fire_mark_ttl_ms: int = 60_000
    # Dispatcher
    dispatcher_id: str = field(default_factory=_default_dispatcher_id)
    leader_lease_ms: int = 5_000
    claim_batch_size: int = 1_000
    # Fires are queued this long before they are due; workers hold each one
    # and send it at its time.
    dispatch_ahead_ms: int = 500
    misfire_grace_ms: int = 60_000
    reconcile_interval_ms: int = 30_000          # jobs written since the last pass
    reconcile_full_interval_ms: int = 3_600_000  # every job (and deleted ones pruned)
    retention_days: int = 30    # execution history kept; 0 keeps it for ever
    # Deep health fails when the oldest ready fire waited longer than this.
    ready_age_limit_ms: int = 60_000
    system_alert_repeat_ms: int = 600_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        base = cls()
        settings = replace(
            base,
            database_url=env.get("JOBSCHED_DATABASE_URL") or base.database_url,
            redis_url=env.get("JOBSCHED_REDIS_URL") or base.redis_url,
            redis_prefix=env.get("JOBSCHED_REDIS_PREFIX") or base.redis_prefix,
            api_host=env.get("JOBSCHED_API_HOST") or base.api_host,
            api_port=_int(env, "JOBSCHED_API_PORT", base.api_port, 1),
            api_processes=_int(env, "JOBSCHED_API_PROCESSES", base.api_processes, 1),
            api_threads=_int(env, "JOBSCHED_API_THREADS", base.api_threads, 1),
            api_token=env.get("JOBSCHED_API_TOKEN") or None,
            auth=(env.get("JOBSCHED_AUTH") or base.auth).lower(),
            log_level=(env.get("JOBSCHED_LOG_LEVEL") or base.log_level).upper(),
            log_format=(env.get("JOBSCHED_LOG_FORMAT") or base.log_format).lower(),
            worker_id=env.get("JOBSCHED_WORKER_ID") or base.worker_id,
            worker_concurrency=_int(env, "JOBSCHED_WORKER_CONCURRENCY",
                                    base.worker_concurrency, 1),
            worker_heartbeat_ttl_ms=_int(
                env, "JOBSCHED_WORKER_HEARTBEAT_TTL_MS", base.worker_heartbeat_ttl_ms, 500
            ),
            result_batch_size=_int(env, "JOBSCHED_RESULT_BATCH_SIZE", base.result_batch_size, 1),
            result_buffer=_int(env, "JOBSCHED_RESULT_BUFFER", base.result_buffer, 1),
            default_timeout_ms=_int(
                env, "JOBSCHED_DEFAULT_TIMEOUT_MS", base.default_timeout_ms, 1
            ),
            max_timeout_ms=_int(env, "JOBSCHED_MAX_TIMEOUT_MS", base.max_timeout_ms, 1),
            alert_webhook=env.get("JOBSCHED_ALERT_WEBHOOK") or None,
            webhook_secret=env.get("JOBSCHED_WEBHOOK_SECRET") or None,
            webhook_attempts=_int(env, "JOBSCHED_WEBHOOK_ATTEMPTS", base.webhook_attempts, 1),
            webhook_backoff_ms=_int(env, "JOBSCHED_WEBHOOK_BACKOFF_MS",
                                    base.webhook_backoff_ms, 1),
            target_deny=_cidrs(env, "JOBSCHED_TARGET_DENY", base.target_deny),
            target_deny_loopback=_bool(env, "JOBSCHED_TARGET_DENY_LOOPBACK",
                                       base.target_deny_loopback),
            target_allow=_cidrs(env, "JOBSCHED_TARGET_ALLOW", base.target_allow,
                                names_allowed=True),
            retry_max_backoff_ms=_int(env, "JOBSCHED_RETRY_MAX_BACKOFF_MS",
                                      base.retry_max_backoff_ms, 1),
            retry_after_cap_ms=_int(env, "JOBSCHED_RETRY_AFTER_CAP_MS",
                                    base.retry_after_cap_ms, 0),
            fire_mark_ttl_ms=_int(env, "JOBSCHED_FIRE_MARK_TTL_MS", base.fire_mark_ttl_ms, 1000),
            dispatcher_id=env.get("JOBSCHED_DISPATCHER_ID") or base.dispatcher_id,
            leader_lease_ms=_int(env, "JOBSCHED_LEADER_LEASE_MS", base.leader_lease_ms, 500),
            claim_batch_size=_int(env, "JOBSCHED_CLAIM_BATCH_SIZE", base.claim_batch_size, 1),
            dispatch_ahead_ms=_int(env, "JOBSCHED_DISPATCH_AHEAD_MS", base.dispatch_ahead_ms, 0),
            misfire_grace_ms=_int(env, "JOBSCHED_MISFIRE_GRACE_MS", base.misfire_grace_ms, 0),
            ready_age_limit_ms=_int(env, "JOBSCHED_READY_AGE_LIMIT_MS",
                                    base.ready_age_limit_ms, 1),
            system_alert_repeat_ms=_int(env, "JOBSCHED_SYSTEM_ALERT_REPEAT_MS",
                                        base.system_alert_repeat_ms, 1),
            retention_days=_int(env, "JOBSCHED_RETENTION_DAYS", base.retention_days, 0),
            reconcile_full_interval_ms=_int(
                env, "JOBSCHED_RECONCILE_FULL_INTERVAL_MS", base.reconcile_full_interval_ms, 100
            ),
            reconcile_interval_ms=_int(
                env, "JOBSCHED_RECONCILE_INTERVAL_MS", base.reconcile_interval_ms, 100
            ),
        )
        settings.validate()
        return settings

    def deny_list(self) -> DenyList:
        return DenyList.build(self.target_deny, self.target_deny_loopback, self.target_allow)

    def check_api_exposure(self) -> None:
        """An API reachable from other machines needs a token, or an
        explicit JOBSCHED_AUTH=none."""
        if self.api_token or self.auth == "none" or _is_loopback(self.api_host):
            return
        raise ConfigError(
            f"the API would listen on {self.api_host} without JOBSCHED_API_TOKEN: set a "
            "token (clients send Authorization: Bearer <token>), or JOBSCHED_AUTH=none to "
            "run it open on purpose")

    def validate(self) -> None:
        if not self.database_url.startswith(("sqlite", "mysql")):
            raise ConfigError(
                "JOBSCHED_DATABASE_URL must be a sqlite:// or mysql+pymysql:// URL"
            )
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("JOBSCHED_REDIS_URL must be a redis:// URL")
        if self.default_timeout_ms > self.max_timeout_ms:
            raise ConfigError("JOBSCHED_DEFAULT_TIMEOUT_MS exceeds JOBSCHED_MAX_TIMEOUT_MS")
        if not 0 < len(self.worker_id) <= 100 or not 0 < len(self.dispatcher_id) <= 100:
            raise ConfigError("JOBSCHED_WORKER_ID and JOBSCHED_DISPATCHER_ID take 1-100 characters")
        if self.auth not in ("token", "none"):
            raise ConfigError("JOBSCHED_AUTH must be token or none")
        if self.log_format not in ("text", "json"):
            raise ConfigError("JOBSCHED_LOG_FORMAT must be text or json")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("JOBSCHED_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
