"""The dispatcher's loop: ``run_once(now) -> seconds to sleep``, and
``run_forever()`` which sleeps until the earliest fire (woken early through
the ``wake`` list when the API adds an earlier one)."""
from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.orm import sessionmaker

from common.metrics import MetricsRecorder
from common.redisstore import RedisError
from common.redis_dispatcher import DispatcherRedis
from common.settings import Settings
from common.timeutil import now_ms
from dispatcher.leader import Lease
from dispatcher.reaper import requeue_dead_workers
from dispatcher.reconciler import Reconciler
from dispatcher.retention import RetentionPurger
from dispatcher.dispatch import LostLease, dispatch_due, promote_retries, recover_pending

log = logging.getLogger(__name__)

MAX_SLEEP_S = 0.5          # bounds reaction to a stop request and to housekeeping
REDIS_TIMER_SLACK_S = 0.11
REAP_INTERVAL_MS = 1_000
CHECK_INIT_INTERVAL_MS = 1_000


class Dispatcher:
    def __init__(self, settings: Settings, store: DispatcherRedis, sessions: sessionmaker):
        self.settings = settings
        self.store = store
        self.sessions = sessions
        self.lease = Lease(store, settings.dispatcher_id, settings.leader_lease_ms)
        self.stop_event = threading.Event()
        self._was_leader = False
        self._next_reap = 0
        self._next_init_check = 0
        self.metrics = MetricsRecorder()
        self.reconciler = Reconciler(store, sessions, settings.reconcile_interval_ms,
                                     lambda: self.lease.held,
                                     settings.reconcile_full_interval_ms)
        self.purger = RetentionPurger(sessions, settings.retention_days,
                                      lambda: self.lease.held)

    def run_once(self, now: int) -> float:
        """One step at time ``now`` (epoch ms); returns seconds to sleep."""
        started = time.monotonic()
        if not self.lease.hold():
            self._was_leader = False
            # A standby asks often (one EVAL per ask), so it takes over within
            # half a second of the lease running out.
            return min(MAX_SLEEP_S, self.settings.leader_lease_ms / 3000.0)
        s = self.settings
        try:
            if not self._was_leader:
                self._was_leader = True
                self.reconciler.trigger.set()
            self._housekeeping(now)
            finished = self.reconciler.finished.set   # record them in the database
            recover_pending(self.store, s.dispatcher_id, now, s.misfire_grace_ms,
                            self.lease.hold, finished)
            dispatch_due(self.store, s.dispatcher_id, now, s.claim_batch_size,
                         s.misfire_grace_ms, self.lease.hold, self.metrics, s.dispatch_ahead_ms,
                         finished)
            promote_retries(self.store, s.dispatcher_id, now, s.claim_batch_size)
        except LostLease:
            log.warning("lease lost during dispatch; standing by")
            self._was_leader = False
            return 0.0
        self.store.add_metrics(self.metrics)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        return self._seconds_until_next(now + elapsed_ms)

    def _housekeeping(self, now: int) -> None:
        s = self.settings
        if now >= self._next_init_check:
            self._next_init_check = now + CHECK_INIT_INTERVAL_MS
            if not self.store.initialized():
                log.warning("schedule not initialized in Redis: rebuilding from the database")
                self.reconciler.trigger.set()
        if now >= self._next_reap:
            self._next_reap = now + REAP_INTERVAL_MS
            self.metrics.inc("jobsched_redeliveries",
                             requeue_dead_workers(self.store, s.dispatcher_id,
                                                  s.fire_mark_ttl_ms))

    def _seconds_until_next(self, now: int) -> float:
        next_fire, next_retry = self.store.next_due()
        wait = min(MAX_SLEEP_S, self.settings.leader_lease_ms / 3000.0)
        # Fires are claimed dispatch_ahead_ms early; retries when due.
        if next_fire is not None:
            wait = min(wait, (next_fire - self.settings.dispatch_ahead_ms - now) / 1000.0)
        if next_retry is not None:
            wait = min(wait, (next_retry - now) / 1000.0)
        return max(0.0, wait)

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if seconds <= REDIS_TIMER_SLACK_S or not self.lease.held:
            # Standbys sleep locally: the wake nudge belongs to the leader.
            self.stop_event.wait(seconds)
            return
        # BLPOP on `wake` sleeps but returns as soon as the API schedules an
        # earlier fire. Redis notices an expired blocking timeout only on its
        # next timer tick (up to 100 ms late at hz 10), so block until a tick
        # before the due time; the next loop sleeps the rest locally.
        self.store.wait_for_wake(seconds - REDIS_TIMER_SLACK_S)

    def run_forever(self) -> None:
        log.info("dispatcher %s ready (lease %d ms)", self.settings.dispatcher_id,
                 self.settings.leader_lease_ms)
        self.reconciler.start()
        if self.settings.retention_days:
            self.purger.start()
        while not self.stop_event.is_set():
            try:
                self._wait(self.run_once(now_ms()))
            except RedisError:
                log.warning("Redis unavailable; retrying", exc_info=True)
                self.stop_event.wait(1.0)
        self.reconciler.stop()
        self.purger.stop()
        try:
            self.lease.release()
        except RedisError:
            pass
        log.info("dispatcher %s stopped", self.settings.dispatcher_id)
