"""Alert webhook deliveries, off the hot path, after their rows are committed.

Deliveries are JSON POSTs, signed when ``JOBSCHED_WEBHOOK_SECRET`` is set,
retried with exponential backoff; their outcome is written on the alert row
(``delivery_status``), so a delivery that failed for good is visible, never
silently lost.

Two queues feed the delivery threads, system alerts (no leader, backlog)
first: they never wait behind hours of job alerts. Job alerts queue up to
``QUEUE_LIMIT``; past it, and at shutdown, an alert stays ``pending`` on its
row, and a worker picks pending alerts up again every ``PICK_UP_S`` (at
start too). Each delivery is claimed in Redis first (``alert-delivery:<ref>``,
expiring), so one goes out once even when several workers look for pending
ones, and the claims of a worker that died lapse for others to take.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque

import requests
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from common.jobs import DELIVERY_DELIVERED, DELIVERY_FAILED, DELIVERY_PENDING
from common.metrics import MetricsRecorder
from common.models import Alert
from common.redisstore import RedisError
from common.redis_worker import WorkerShards
from common.signing import HEADER, sign
from common.targets import DenyList
from common.timeutil import now_ms
from worker.alerts import alert_of, payload
from worker.guard import make_session
from worker.http import USER_AGENT

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 5.0
QUEUE_LIMIT = 1_000
PICK_UP_S = 60.0
PICK_UP_WITHIN_MS = 24 * 3600 * 1000   # pending alerts older than this are left as they are
CLAIM_MS = 10 * 60 * 1000              # more than a delivery's attempts and backoffs take


class WebhookSender:
    def __init__(self, engine: Engine, store: WorkerShards, deny: DenyList,
                 metrics: MetricsRecorder, secret: str | None, attempts: int = 5,
                 backoff_s: float = 1.0, threads: int = 4):
        self._engine = engine
        self._store = store
        self._session = make_session(threads, deny)
        self._metrics = metrics
        self._secret = secret
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._system: deque = deque()
        self._jobs: deque = deque()
        self._work: deque = deque()    # other alert work (a system alert's row)
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._next_pick_up = 0.0       # at start: at once
        self._threads = [threading.Thread(target=self._serve, args=(i == 0,),
                                          name=f"webhook-{i}", daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def send(self, alert: dict, body: dict) -> None:
        """Deliver ``alert`` (a committed row) to its webhook, if it has one."""
        if not alert["webhook_url"]:
            return
        system = alert["job_id"] is None
        with self._changed:
            if not system and len(self._jobs) >= QUEUE_LIMIT:
                return   # stays pending on its row: picked up later
        if not self._claim(alert["ref"]):
            return
        with self._changed:
            (self._system if system else self._jobs).append(
                (alert["ref"], alert["webhook_url"], body))
            self._changed.notify()

    def run(self, fn, *args) -> None:
        """Run other alert work (a system alert's row) on these threads."""
        with self._changed:
            self._work.append((fn, args))
            self._changed.notify()

    def close(self) -> None:
        """Stop; deliveries not started stay pending on their rows, their
        claims released for the next worker to pick them up."""
        self._stopping.set()
        with self._changed:
            left = list(self._system) + list(self._jobs)
            self._system.clear()
            self._jobs.clear()
            self._changed.notify_all()
        for thread in self._threads:
            thread.join(WEBHOOK_TIMEOUT_S + 1)
        for ref, _, _ in left:
            try:
                self._store.release_alert_delivery(ref)
            except RedisError:
                pass   # the claim expires

    def _next(self, picks_up: bool):
        with self._changed:
            while not self._stopping.is_set():
                for source in (self._work, self._system, self._jobs):
                    if source:
                        return source.popleft()
                if picks_up and time.monotonic() >= self._next_pick_up:
                    return "pick up"
                self._changed.wait(1.0)
        return None

    def _serve(self, picks_up: bool) -> None:
        while (item := self._next(picks_up)) is not None:
            try:
                if item == "pick up":
                    self._next_pick_up = time.monotonic() + PICK_UP_S
                    self._pick_up()
                elif callable(item[0]):
                    item[0](*item[1])
                else:
                    self._deliver(*item)
            except Exception:
                log.exception("alert work failed")

    def _pick_up(self) -> None:
        """Queue again the pending deliveries no worker holds (left by a
        shutdown, a full queue, or a worker that died)."""
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(select(Alert).where(
                    Alert.delivery_status == DELIVERY_PENDING, Alert.webhook_url.is_not(None),
                    Alert.created_at_ms >= now_ms() - PICK_UP_WITHIN_MS)
                    .order_by(Alert.job_id.is_not(None), Alert.id).limit(QUEUE_LIMIT)).all()
        except SQLAlchemyError:
            return
        for row in rows:
            alert = alert_of(row)
            self.send(alert, payload(alert))

    def _claim(self, ref: str) -> bool:
        try:
            return self._store.claim_alert_delivery(ref, CLAIM_MS)
        except RedisError:
            return True   # deliver all the same: a rare duplicate beats a lost alert

    def _deliver(self, ref: str, url: str, body: dict) -> None:
        raw = json.dumps(body, separators=(",", ":")).encode()
        error = None
        for attempt in range(1, self._attempts + 1):
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                       "X-Jobsched-Event": body["event"]}
            if self._secret:
                headers[HEADER] = sign(self._secret, raw, int(time.time()))
            try:
                response = self._session.post(url, data=raw, headers=headers,
                                              timeout=WEBHOOK_TIMEOUT_S, allow_redirects=False)
                if 200 <= response.status_code < 300:
                    self._record(ref, DELIVERY_DELIVERED, attempt, None)
                    self._metrics.inc("jobsched_alert_webhooks", outcome="sent")
                    return
                error = f"HTTP {response.status_code}"
            except requests.RequestException as e:
                error = type(e).__name__
            if attempt < self._attempts and self._stopping.wait(
                    self._backoff_s * 2 ** (attempt - 1)):
                # Shutting down: the row stays "pending", for a pick-up.
                self._record(ref, "pending", attempt, error)
                self._store.release_alert_delivery(ref)
                return
        log.warning("alert %s: webhook delivery failed for good: %s", ref, error)
        self._record(ref, DELIVERY_FAILED, attempt, error)
        self._metrics.inc("jobsched_alert_webhooks", outcome="failed")

    def _record(self, ref: str, status: str, attempts: int, error: str | None) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(update(Alert).where(Alert.ref == ref).values(
                    delivery_status=status, delivery_attempts=attempts, delivery_error=error))
        except SQLAlchemyError:
            log.warning("alert %s: could not record its delivery (%s)", ref, status)
