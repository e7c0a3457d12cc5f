"""The dispatcher's loop: ``run_once(now) -> seconds to sleep``, and
``run_forever()`` which sleeps until the earliest fire (woken early through
the ``wake`` list when the API adds an earlier one). Each step takes or
renews this dispatcher's share of the shard leases (dispatcher/leader.py)
and dispatches each shard it leads."""
from __future__ import annotations

import logging
import math
import threading
import time
from functools import partial

from sqlalchemy.orm import sessionmaker

from common.metrics import MetricsRecorder
from common.redisstore import RedisError
from common.redis_dispatcher import DispatcherShards
from common.settings import Settings
from common.timeutil import now_ms
from dispatcher.leader import ShardLeases
from dispatcher.reaper import requeue_dead_workers
from dispatcher.reconciler import Reconciler
from dispatcher.retention import RetentionPurger
from dispatcher.dispatch import LostLease, dispatch_due, promote_retries, recover_pending

log = logging.getLogger(__name__)

MAX_SLEEP_S = 0.5          # bounds reaction to a stop request and to housekeeping
REDIS_TIMER_SLACK_S = 0.11
REAP_INTERVAL_MS = 1_000
CHECK_INIT_INTERVAL_MS = 1_000
WAKE_POLL_S = 0.1          # a leader of shards on several cluster nodes looks this often


class Dispatcher:
    def __init__(self, settings: Settings, shards: DispatcherShards, sessions: sessionmaker):
        self.settings = settings
        self.shards = shards
        self.sessions = sessions
        self.leases = ShardLeases(shards, settings.dispatcher_id, settings.leader_lease_ms)
        self.stop_event = threading.Event()
        self._led: set[int] = set()   # shards led at the end of the last step
        # shard -> when its workers may first be judged dead (epoch ms)
        self._reap_from: dict[int, int] = {}
        self._next_init_check = 0
        self._beat_interval_ms = settings.worker_heartbeat_ttl_ms // 3   # the workers'
        self._stall_hold_off: dict[int, int] = {}   # shard -> last hold-off after a stall
        self._next_layout_check = 0
        self.metrics = MetricsRecorder()
        self.reconciler = Reconciler(shards, sessions, settings.reconcile_interval_ms,
                                     lambda: set(self.leases.held),
                                     settings.reconcile_full_interval_ms)
        # The database's retention is one dispatcher's: the leader of shard 0.
        self.purger = RetentionPurger(sessions, settings.retention_days,
                                      lambda: 0 in self.leases.held)

    def run_once(self, now: int) -> float:
        """One step at time ``now`` (epoch ms); returns seconds to sleep."""
        started = time.monotonic()
        self._follow_layout(now)
        held = self.leases.hold(now)
        if held - self._led:
            self.reconciler.trigger.set()   # shards new to this leader: a full pass
        for shard in held - self._led:
            self._hold_off_reaping(shard, now)
        self._led = held
        if not held:
            # A standby asks often (one EVAL per shard and ask), so it takes
            # over within half a second of a lease running out.
            return min(MAX_SLEEP_S, self.settings.leader_lease_ms / 3000.0)
        self._check_layout(now, held)
        # Each shard on its own: one whose Redis node is down (a failover
        # under way) must not hold up the others.
        for shard in sorted(held):
            try:
                late_ms = int((time.monotonic() - started) * 1000)
                self._reap(shard, now + late_ms, late_ms)
                self._dispatch(shard, now)
            except LostLease:
                log.warning("lease of shard %s lost during dispatch; leaving it",
                            self.shards.label(shard))
                self.leases.forget({shard})
            except RedisError as e:
                log.warning("shard %s cannot be reached (%s); the others go on",
                            self.shards.label(shard),
                            type(e).__name__)
                self._hold_off_reaping(shard, now + int((time.monotonic() - started) * 1000))
        try:
            self.shards.add_metrics(self.metrics)
        except RedisError:
            pass   # kept by the recorder for the next step
        elapsed_ms = int((time.monotonic() - started) * 1000)
        return self._seconds_until_next(now + elapsed_ms)

    def _dispatch(self, shard: int, now: int) -> None:
        s, store = self.settings, self.shards[shard]
        keep_lease = partial(self.leases.renew, shard)
        finished = self.reconciler.finished.set   # record them in the database
        recover_pending(store, s.dispatcher_id, now, s.misfire_grace_ms, keep_lease, finished)
        dispatch_due(store, s.dispatcher_id, now, s.claim_batch_size, s.misfire_grace_ms,
                     keep_lease, self.metrics, s.dispatch_ahead_ms, finished)
        promote_retries(store, s.dispatcher_id, now, s.claim_batch_size)

    def _follow_layout(self, now: int) -> None:
        """Once a second: the shards of the layout Redis holds (a reshard
        adds shards to lead, then retires some)."""
        if now < self._next_layout_check:
            return
        self._next_layout_check = now + CHECK_INIT_INTERVAL_MS
        try:
            self.shards.follow_layout()
        except RedisError:
            pass   # the shared keys' node is down: checked again next second

    def _check_layout(self, now: int, held: set[int]) -> None:
        """Once a second: no shard led lost its data (else the reconciler
        rebuilds it)."""
        if now < self._next_init_check:
            return
        self._next_init_check = now + CHECK_INIT_INTERVAL_MS
        lost = [shard for shard, initialized in zip(
            sorted(held), self._each_held(held, lambda store: store.initialized()))
            if initialized is False]
        if lost:
            log.warning("schedule not initialized in Redis (shard %s): rebuilding from the "
                        "database", ", ".join(map(self.shards.label, lost)))
            self.reconciler.trigger.set()

    def _each_held(self, held: set[int], action) -> list:
        """``action(store)`` per shard led, None where it could not be reached."""
        results = []
        for shard in sorted(held):
            try:
                results.append(action(self.shards[shard]))
            except RedisError:
                results.append(None)
        return results

    def _reap(self, shard: int, now: int, late_ms: int = 0) -> None:
        """Once a second per shard: hand on the messages of its dead workers.
        Not right after a step ran ``late_ms`` behind its time by more than a
        beat: what held it up (redis-py retrying through a failover, a
        cluster refusing every command until a replica is promoted) held up
        the workers' beats as well."""
        if late_ms > self._beat_interval_ms:
            self._hold_off_after_stall(shard, now)
        if now < self._reap_from.get(shard, 0):
            return
        self._reap_from[shard] = now + REAP_INTERVAL_MS
        self.metrics.inc("jobsched_redeliveries",
                         requeue_dead_workers(self.shards[shard], self.settings.dispatcher_id,
                                              self.settings.fire_mark_ttl_ms,
                                              self._beat_interval_ms))

    def _hold_off_reaping(self, shard: int, now: int) -> None:
        """No worker of ``shard`` is judged dead for a heartbeat's lifetime:
        a leader that just took the shard, or just reached Redis again (a
        restart, a cluster failover), may find heartbeats lapsed only
        because Redis could not be reached; live workers beat again within
        a third of that time. Handing their messages on would call fires
        they are calling."""
        self._reap_from[shard] = now + self.settings.worker_heartbeat_ttl_ms

    def _hold_off_after_stall(self, shard: int, now: int) -> None:
        """After a step or a wait that took a beat longer than planned (see
        _reap), but not again for two heartbeat lifetimes: a dispatcher whose
        every step runs late still judges dead workers in the lifetime that
        follows each hold-off (release_inflight.lua confirms each lapse a
        beat later in any case)."""
        lifetime = self.settings.worker_heartbeat_ttl_ms
        if now >= self._stall_hold_off.get(shard, -math.inf) + 2 * lifetime:
            self._stall_hold_off[shard] = now
            self._hold_off_reaping(shard, now)

    def _held_up(self, late_ms: int, now: int) -> None:
        """The last step and its wait took ``late_ms`` longer than planned."""
        if late_ms > self._beat_interval_ms:
            for shard in self.shards.ids:
                self._hold_off_after_stall(shard, now)

    def _seconds_until_next(self, now: int) -> float:
        wait = min(MAX_SLEEP_S, self.settings.leader_lease_ms / 3000.0)
        for due in self._each_held(self.leases.held, lambda store: store.next_due()):
            if due is None:   # not reached: looked at again after the longest sleep
                continue
            next_fire, next_retry = due
            # Fires are claimed dispatch_ahead_ms early; retries when due.
            if next_fire is not None:
                wait = min(wait, (next_fire - self.settings.dispatch_ahead_ms - now) / 1000.0)
            if next_retry is not None:
                wait = min(wait, (next_retry - now) / 1000.0)
        return max(0.0, wait)

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        held = sorted(self.leases.held)
        if seconds <= REDIS_TIMER_SLACK_S or not held:
            # Standbys sleep locally: the wake nudges belong to the leaders.
            self.stop_event.wait(seconds)
            return
        if len(held) > 1 and not self.shards.one_node:
            # Shards on several nodes of a cluster cannot be waited on in one
            # command: look at them again soon instead.
            self.stop_event.wait(min(seconds, WAKE_POLL_S))
            return
        # BLPOP on `wake` sleeps but returns as soon as the API schedules an
        # earlier fire. Redis notices an expired blocking timeout only on its
        # next timer tick (up to 100 ms late at hz 10), so block until a tick
        # before the due time; the next loop sleeps the rest locally.
        self.shards.wait_for_wake(held, seconds - REDIS_TIMER_SLACK_S)

    def run_forever(self) -> None:
        log.info("dispatcher %s ready (lease %d ms, %d shards)", self.settings.dispatcher_id,
                 self.settings.leader_lease_ms, self.shards.count)
        self.reconciler.start()
        if self.settings.retention_days:
            self.purger.start()
        while not self.stop_event.is_set():
            try:
                started = time.monotonic()
                sleep_s = self.run_once(now_ms())
                self._wait(sleep_s)
                self._held_up(int((time.monotonic() - started - sleep_s) * 1000), now_ms())
            except RedisError:
                log.warning("Redis unavailable; retrying", exc_info=True)
                for shard in self.shards.ids:
                    self._hold_off_reaping(shard, now_ms())
                self.stop_event.wait(1.0)
        self.reconciler.stop()
        self.purger.stop()
        try:
            self.leases.release_all()
        except RedisError:
            pass
        log.info("dispatcher %s stopped", self.settings.dispatcher_id)
