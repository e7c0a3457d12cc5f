"""Every Redis key name, derived from one configurable prefix.

With JOBSCHED_SHARDS=N above 1, the keys of the table above the row
"shared by all shards" exist once per shard, each shard under its own
hash-tagged prefix (``{jobsched:3}:schedule``), so that every script's keys
share one slot of a Redis Cluster; a job lives in shard ``crc32(id) mod N``.
The keys after that row are shared by all shards and stay under the prefix
itself. With one shard, every key is under the prefix, as it always was.

| key                  | type         | holds                                                   |
|----------------------|--------------|---------------------------------------------------------|
| jobs                 | HASH         | job id -> job spec JSON (what a worker needs to call it) |
| schedule             | ZSET         | job id -> next fire time (epoch ms)                     |
| pending              | ZSET         | job id -> fire time claimed but not yet rescheduled     |
| claimed              | ZSET         | job id -> its last claimed fire, kept a minute: no edit  |
|                      |              | may schedule that fire (or an earlier one) again        |
| finished             | HASH         | job id -> "version:last fire" of a job with no further  |
|                      |              | fire (one-time, end of window), until the database says so |
| deleted              | ZSET         | job id -> when it was deleted: no later write revives it |
| fire:<exec>:<n>      | STRING + TTL | the mark of attempt n of a fire: the ticket of the      |
|                      |              | message calling it (<worker>#<n>), then "done" once     |
|                      |              | recorded (at most one call per attempt)                 |
| results              | LIST         | results the database could not take yet (worker/spool.py) |
| results-writing:<w>  | LIST         | spooled results a worker is writing (handed back if it dies) |
| ready                | LIST         | fire messages due now (FIFO: RPUSH, worker pops LEFT)   |
| retry                | ZSET         | message of a fire's next attempt -> when it is due (ms) |
| inflight:<worker>    | LIST         | messages a worker holds (BLMOVE target) until acked     |
| workers              | SET          | worker ids that may hold in-flight messages             |
| worker:<worker>      | STRING + TTL | worker heartbeat                                        |
| leader               | STRING + TTL | dispatcher lease: the leader's id                       |
| wake                 | LIST         | nudges the dispatcher when an earlier fire is added     |
| initialized          | STRING       | set once the schedule was built from the database       |
| running:<job>        | STRING + TTL | execution id of the call in progress (concurrency=forbid)|
| once:<token>         | STRING + TTL | a replay already queued (repeated requests are refused) |
| leader:since         | STRING       | when the current leader acquired the lease (epoch ms)   |
| streaks              | HASH         | job id -> fires in a row that failed for good           |
| layout               | STRING       | the layout this shard serves ("4", or "4>2" while       |
|                      |              | resharding): a write routed by another is refused       |
| moved                | HASH         | job id -> its state when `jobsched reshard` moved it to |
|                      |              | its new shard ("1" once there); its spec stays here for |
|                      |              | the fires queued before, until the reshard ends         |
| *shared by all shards* |    |                                                         |
| system-alert:<kind>  | STRING + TTL | a system alert raised recently (not raised again)       |
| alert-delivery:<ref> | STRING + TTL | the worker delivering an alert's webhook (once, not twice) |
| metrics              | HASH         | system-wide metric totals (common/metrics.py)           |
| shards               | STRING       | the layout: the number of shards ("4"), or while        |
|                      |              | resharding, from and to ("4>2")                         |
| dispatchers          | ZSET         | dispatcher id -> until when it is alive (epoch ms): how  |
|                      |              | many share the shards' leases                           |

This table is copied into docs/architecture.md ("Redis keys") for redis-cli users.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from common.errors import ConfigError


@dataclass(frozen=True)
class Keys:
    """The keys of one shard (``prefix``), and those shared by all shards
    (``shared_prefix``; None: the same prefix, as with one shard)."""

    prefix: str = "jobsched:"
    shared_prefix: str | None = None

    @property
    def shared(self) -> str:
        return self.shared_prefix or self.prefix

    @property
    def jobs(self) -> str:
        return self.prefix + "jobs"

    @property
    def schedule(self) -> str:
        return self.prefix + "schedule"

    @property
    def pending(self) -> str:
        return self.prefix + "pending"

    @property
    def ready(self) -> str:
        return self.prefix + "ready"

    @property
    def retry(self) -> str:
        return self.prefix + "retry"

    @property
    def claimed(self) -> str:
        return self.prefix + "claimed"

    @property
    def finished(self) -> str:
        return self.prefix + "finished"

    @property
    def deleted(self) -> str:
        return self.prefix + "deleted"

    @property
    def workers(self) -> str:
        return self.prefix + "workers"

    @property
    def leader(self) -> str:
        return self.prefix + "leader"

    @property
    def leader_since(self) -> str:
        return self.prefix + "leader:since"

    @property
    def fail_streaks(self) -> str:
        return self.prefix + "streaks"

    @property
    def metrics(self) -> str:
        return self.shared + "metrics"

    @property
    def shard_count(self) -> str:
        return self.shared + "shards"

    @property
    def dispatchers(self) -> str:
        return self.shared + "dispatchers"

    @property
    def layout(self) -> str:
        return self.prefix + "layout"

    @property
    def moved(self) -> str:
        return self.prefix + "moved"

    @property
    def wake(self) -> str:
        return self.prefix + "wake"

    @property
    def initialized(self) -> str:
        return self.prefix + "initialized"

    def inflight(self, worker_id: str) -> str:
        return f"{self.prefix}inflight:{worker_id}"

    @property
    def results(self) -> str:
        return self.prefix + "results"

    def alert_delivery(self, ref: str) -> str:
        return f"{self.shared}alert-delivery:{ref}"

    def results_writing(self, worker_id: str) -> str:
        return f"{self.prefix}results-writing:{worker_id}"

    def fire_mark(self, execution_id: str, attempt: int) -> str:
        return f"{self.prefix}fire:{execution_id}:{attempt}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}"

    def lapsed(self, worker_id: str) -> str:
        """When the leader first found a worker's heartbeat lapsed."""
        return f"{self.prefix}lapsed:{worker_id}"

    def running(self, job_id: str) -> str:
        return f"{self.prefix}running:{job_id}"

    def once(self, token: str) -> str:
        return f"{self.prefix}once:{token}"

    def system_alert(self, kind: str) -> str:
        return f"{self.shared}system-alert:{kind}"


def shard_prefix(prefix: str, shard: int | str) -> str:
    """``jobsched:`` or ``{jobsched}:`` -> ``{jobsched:3}:``: a hash tag per shard."""
    stem = prefix.replace("{", "").replace("}", "").rstrip(":")
    return f"{{{stem}:{shard}}}:"


def shard_keys(prefix: str, count: int) -> list[Keys]:
    """The keys of each of ``count`` shards (one shard: the prefix itself)."""
    if count == 1:
        return [Keys(prefix)]
    return [Keys(shard_prefix(prefix, i), prefix) for i in range(count)]


def shard_of(job_id: str, count: int) -> int:
    """The shard a job lives in: stable across processes and restarts."""
    return zlib.crc32(job_id.encode()) % count if count > 1 else 0


@dataclass(frozen=True)
class Layout:
    """How the schedule is split: ``count`` shards, or while ``jobsched
    reshard`` moves jobs, from ``count`` shards ``to`` another count. Stored
    as text in the shared ``shards`` key and in each shard's ``layout``."""

    count: int
    to: int | None = None

    @classmethod
    def parse(cls, text: str | bytes) -> "Layout":
        if isinstance(text, bytes):
            text = text.decode()
        try:
            count, _, to = text.partition(">")
            return cls(int(count), int(to) if to else None)
        except ValueError:
            raise ConfigError(f"Redis holds an unknown shard layout {text!r}") from None

    def __str__(self) -> str:
        return f"{self.count}" if self.to is None else f"{self.count}>{self.to}"

    @property
    def resharding(self) -> bool:
        return self.to is not None

    @property
    def final(self) -> int:
        """The count once any reshard under way is done."""
        return self.count if self.to is None else self.to
