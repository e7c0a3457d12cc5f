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
from dataclasses import dataclass, field, fields, replace
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


# What Redis Cluster hashes instead of the whole key: the first {...} not empty.
_HASH_TAG = re.compile(r"\{[^}]+\}")
MAX_SHARDS = 1024
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


def _read(env: Mapping[str, str], meta: Mapping, default):
    name = meta["env"]
    if isinstance(default, bool):
        return _bool(env, name, default)
    if isinstance(default, int):
        return _int(env, name, default, meta["minimum"])
    if isinstance(default, tuple):
        return _cidrs(env, name, default, names_allowed=meta["names"])
    value = env.get(name) or default
    if value is not None and meta["case"]:
        value = value.lower() if meta["case"] == "lower" else value.upper()
    return value


def setting(default=None, env: str = "", doc: str = "", *, factory=None, minimum: int = 0,
            case: str | None = None, names: bool = False, secret: bool = False,
            shown: str | None = None):
    """A Settings field and how it is read from ``env`` and documented:
    ``minimum`` for integers, ``case`` ("lower"/"upper") for words, ``names``
    for address lists that may name hosts, ``shown`` for a default that is
    computed (the docs table says it in words)."""
    metadata = {"env": env, "doc": doc, "minimum": minimum, "case": case, "names": names,
                "shown": shown}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class Settings:
    """Every setting, declared once: its default, its environment variable and
    what it means (docs/operations.md's table and .env.example are printed
    from here: common/settings_docs.py)."""

    database_url: str = setting("sqlite:///data/jobsched.db", "JOBSCHED_DATABASE_URL",
                                "SQLite or `mysql+pymysql://` URL")
    redis_url: str = setting("redis://127.0.0.1:6379/0", "JOBSCHED_REDIS_URL", "Redis")
    redis_prefix: str = setting("jobsched:", "JOBSCHED_REDIS_PREFIX", "prefix of every key")
    redis_cluster: bool = setting(
        False, "JOBSCHED_REDIS_CLUSTER", "talk to a Redis Cluster (`JOBSCHED_REDIS_URL` names "
        "any node); the prefix must then hold a hash tag, e.g. `{jobsched}:`, so that every "
        "script's keys share one slot")
    redis_shards: int = setting(
        1, "JOBSCHED_SHARDS", "shards of the schedule, each with its own keys (hash-tagged "
        "into one slot each) and its own dispatcher lease; lays out an empty Redis only: "
        "then every process follows the layout Redis holds (`jobsched reshard --to N` "
        "changes it, docs/operations.md)", minimum=1)
    api_host: str = setting("127.0.0.1", "JOBSCHED_API_HOST", "API bind address")
    api_port: int = setting(8000, "JOBSCHED_API_PORT", "API port", minimum=1)
    api_processes: int = setting(2, "JOBSCHED_API_PROCESSES", "gunicorn worker processes",
                                 minimum=1)
    api_threads: int = setting(8, "JOBSCHED_API_THREADS", "threads of each gunicorn worker",
                               minimum=1)
    api_token: str | None = setting(
        None, "JOBSCHED_API_TOKEN",
        "require `Authorization: Bearer <token>` (all but `/health`, `/ready`, `/metrics` and "
        "the dashboard's page); `new,old` accepts both while rotating", secret=True)
    auth: str = setting(
        "token", "JOBSCHED_AUTH", "`none`: run the API without a token on purpose, wherever "
        "it listens (otherwise a token is required unless it listens on loopback only)",
        case="lower")
    log_level: str = setting("INFO", "JOBSCHED_LOG_LEVEL", "one line per attempt at INFO",
                             case="upper")
    log_format: str = setting("text", "JOBSCHED_LOG_FORMAT", "`text` or `json`",
                              case="lower")
    # Worker
    worker_id: str = setting(
        env="JOBSCHED_WORKER_ID", factory=_default_worker_id, shown="`<hostname>-<pid>`",
        doc="a worker's identity (its in-flight list); the same after a restart in place, "
            "so the restarted worker hands on what it held at once")
    worker_concurrency: int = setting(
        1_000, "JOBSCHED_WORKER_CONCURRENCY",
        "fires in hand per worker (held for their time or being called)", minimum=1)
    worker_heartbeat_ttl_ms: int = setting(
        10_000, "JOBSCHED_WORKER_HEARTBEAT_TTL_MS",
        "after this silence, found again a third of it later, a worker's messages are "
        "redelivered", minimum=500)
    result_batch_size: int = setting(500, "JOBSCHED_RESULT_BATCH_SIZE", "results per INSERT",
                                     minimum=1)
    result_buffer: int = setting(
        10_000, "JOBSCHED_RESULT_BUFFER", "results a worker keeps in Redis while the database "
        "is down; past it, it stops taking work", minimum=1)
    default_timeout_ms: int = setting(10_000, "JOBSCHED_DEFAULT_TIMEOUT_MS",
                                      "a call's timeout when its job sets none", minimum=1)
    max_timeout_ms: int = setting(300_000, "JOBSCHED_MAX_TIMEOUT_MS",
                                  "the longest timeout a job may set", minimum=1)
    response_snippet_bytes: int = setting(
        1024, "JOBSCHED_RESPONSE_SNIPPET_BYTES", "bytes of a response body kept on its "
        "attempt", minimum=0)
    alert_webhook: str | None = setting(
        None, "JOBSCHED_ALERT_WEBHOOK",
        "alert webhook for jobs without their own, and for system alerts")
    webhook_secret: str | None = setting(None, "JOBSCHED_WEBHOOK_SECRET",
                                         "signs alert webhooks (HMAC-SHA256)", secret=True)
    webhook_attempts: int = setting(5, "JOBSCHED_WEBHOOK_ATTEMPTS",
                                    "deliveries tried per alert", minimum=1)
    webhook_backoff_ms: int = setting(1_000, "JOBSCHED_WEBHOOK_BACKOFF_MS",
                                      "first wait between deliveries (doubling)", minimum=1)
    target_deny: tuple[str, ...] = setting(
        DEFAULT_DENY, "JOBSCHED_TARGET_DENY",
        "target addresses workers refuse: networks, or `private` (compose's default)")
    target_deny_loopback: bool = setting(False, "JOBSCHED_TARGET_DENY_LOOPBACK",
                                         "also refuse loopback targets")
    target_allow: tuple[str, ...] = setting(
        (), "JOBSCHED_TARGET_ALLOW",
        "networks or host names jobs may call despite the deny list", names=True)
    retry_max_backoff_ms: int = setting(300_000, "JOBSCHED_RETRY_MAX_BACKOFF_MS",
                                        "cap of the exponential retry backoff", minimum=1)
    retry_after_cap_ms: int = setting(3_600_000, "JOBSCHED_RETRY_AFTER_CAP_MS",
                                      "cap of a target's `Retry-After`", minimum=0)
    fire_mark_ttl_ms: int = setting(
        60_000, "JOBSCHED_FIRE_MARK_TTL_MS", "how long a fire's mark says \"done\" after its "
        "attempt was recorded: another message of that attempt met meanwhile is dropped",
        minimum=1000)
    # Dispatcher
    dispatcher_id: str = setting(
        env="JOBSCHED_DISPATCHER_ID", factory=_default_dispatcher_id,
        shown="`<hostname>-<pid>-<random>`",
        doc="a dispatcher's lease identity, new on every run (a fence: a dispatcher "
            "restarted in place never carries on under its previous run's lease)")
    leader_lease_ms: int = setting(5_000, "JOBSCHED_LEADER_LEASE_MS",
                                   "lease length; a standby takes over after it lapses",
                                   minimum=500)
    claim_batch_size: int = setting(1_000, "JOBSCHED_CLAIM_BATCH_SIZE",
                                    "jobs claimed per Lua call", minimum=1)
    dispatch_ahead_ms: int = setting(
        500, "JOBSCHED_DISPATCH_AHEAD_MS",
        "fires are queued this early; workers send each at its time (0: queue when due)")
    misfire_grace_ms: int = setting(60_000, "JOBSCHED_MISFIRE_GRACE_MS",
                                    "how late a fire may still run")
    reconcile_interval_ms: int = setting(
        30_000, "JOBSCHED_RECONCILE_INTERVAL_MS",
        "Redis ↔ database reconciliation of the jobs written since the last pass", minimum=100)
    reconcile_full_interval_ms: int = setting(
        3_600_000, "JOBSCHED_RECONCILE_FULL_INTERVAL_MS", "reconciliation of every job (also "
        "at leader change and after Redis lost its data)", minimum=100)
    retention_days: int = setting(
        30, "JOBSCHED_RETENTION_DAYS", "history kept; the leader deletes older attempts "
        "(each job's newest is kept) and alerts; `0` keeps all")
    ready_age_limit_ms: int = setting(60_000, "JOBSCHED_READY_AGE_LIMIT_MS",
                                      "deep health and the `backlog` alert", minimum=1)
    system_alert_repeat_ms: int = setting(
        600_000, "JOBSCHED_SYSTEM_ALERT_REPEAT_MS",
        "a system alert is not raised again within this", minimum=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        base = cls()
        settings = replace(base, **{f.name: _read(env, f.metadata, getattr(base, f.name))
                                    for f in fields(cls)})
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
        if self.redis_cluster and not _HASH_TAG.search(self.redis_prefix):
            raise ConfigError("JOBSCHED_REDIS_PREFIX must hold a hash tag on a Redis Cluster, "
                              "e.g. {jobsched}: (every script's keys must share one slot)")
        if self.redis_shards > MAX_SHARDS:
            raise ConfigError(f"JOBSCHED_SHARDS takes at most {MAX_SHARDS}")
        if self.default_timeout_ms > self.max_timeout_ms:
            raise ConfigError("JOBSCHED_DEFAULT_TIMEOUT_MS exceeds JOBSCHED_MAX_TIMEOUT_MS")
        if not 0 < len(self.worker_id) <= 100 or not 0 < len(self.dispatcher_id) <= 100:
            raise ConfigError("JOBSCHED_WORKER_ID and JOBSCHED_DISPATCHER_ID take 1-100 characters")
        if "#" in self.worker_id:   # it ends a worker's part of its fires' marks
            raise ConfigError("JOBSCHED_WORKER_ID may not contain #")
        if self.auth not in ("token", "none"):
            raise ConfigError("JOBSCHED_AUTH must be token or none")
        if self.log_format not in ("text", "json"):
            raise ConfigError("JOBSCHED_LOG_FORMAT must be text or json")
        if self.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError("JOBSCHED_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
