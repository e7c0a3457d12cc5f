"""System alerts that any live worker can raise, because the part at fault
cannot: no dispatcher has held the lease for a while, or fires wait on the
ready list longer than JOBSCHED_READY_AGE_LIMIT_MS. Each kind is raised once
per JOBSCHED_SYSTEM_ALERT_REPEAT_MS across all workers (SET NX in Redis), and
goes to the global JOBSCHED_ALERT_WEBHOOK."""
from __future__ import annotations

import logging

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from common.jobs import BACKLOG, NO_LEADER
from common.message import waiting_since
from common.models import Alert
from common.redis_worker import WorkerShards
from common.settings import Settings
from worker.alerts import alert_row, payload
from worker.webhooks import WebhookSender

log = logging.getLogger(__name__)

LEADERLESS_LEASES = 3   # how many lease lengths without a leader make an incident


class SystemWatch:
    def __init__(self, store: WorkerShards, engine: Engine, webhooks: WebhookSender,
                 settings: Settings):
        self.store = store
        self.engine = engine
        self.webhooks = webhooks
        self.settings = settings
        self._leaderless_since: int | None = None

    def check(self, now: int) -> None:
        shards = self.store.leaders_and_ready_heads()
        leaderless = [shard for shard, leader, _ in shards if not leader]
        if not leaderless:
            self._leaderless_since = None
        else:
            self._leaderless_since = self._leaderless_since or now
            gone_ms = now - self._leaderless_since
            if gone_ms >= LEADERLESS_LEASES * self.settings.leader_lease_ms:
                which = "" if len(shards) == 1 else f" of shard(s) {_listed(leaderless)}"
                self._raise(NO_LEADER, f"no dispatcher has held the lease{which} for "
                                       f"{gone_ms // 1000} s: nothing is being scheduled", now)
        waiting = [waiting_since(head) for _, _, head in shards if head]
        since = min((s for s in waiting if s is not None), default=None)
        if since is not None:
            age = now - since
            if age > self.settings.ready_age_limit_ms:
                self._raise(BACKLOG, f"the oldest ready fire has waited {age} ms "
                                       f"(limit {self.settings.ready_age_limit_ms} ms): "
                                       "workers are not keeping up", now)

    def _raise(self, kind: str, message: str, now: int) -> None:
        if not self.store.claim_system_alert(kind, now, self.settings.system_alert_repeat_ms):
            return  # raised recently, by this worker or another
        alert = alert_row(kind, None, None, message, now, self.settings.alert_webhook)
        # Written off the heartbeat thread: a slow database must not delay
        # the heartbeat (its expiry would redeliver this worker's messages).
        self.webhooks.run(self._record, alert)

    def _record(self, alert: dict) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(Alert), [alert])
        except Exception:
            self.store.release_system_alert(alert["kind"])  # a later check raises it again
            raise
        log.warning("system alert %s: %s", alert["kind"], alert["message"])
        self.webhooks.send(alert, payload(alert))


def _listed(shards: list[str]) -> str:
    return ", ".join(map(str, shards))
