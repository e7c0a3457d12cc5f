"""System-wide metrics: their names, and the recorder every process uses.

Processes add to the totals in one Redis hash (``metrics``), so the API's
/metrics shows the sum over all gunicorn workers, workers and dispatchers,
whichever process serves the scrape. A recorder accumulates increments in
memory and flushes them in one pipelined round trip (HINCRBY/HINCRBYFLOAT).
Histograms are stored as per-bucket counts, a sum and a count. If Redis loses
the hash, the counters restart from zero, which Prometheus treats as a reset.
"""
from __future__ import annotations

import bisect
import functools
import json
import threading
from collections import Counter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 10, 100, 500, 1000, 5000, 10000)

# name -> (help, label names)
COUNTERS = {
    "jobsched_executions": ("Execution attempts recorded", ("status", "type")),
    "jobsched_retries": ("Retries scheduled after a failed attempt", ()),
    "jobsched_redeliveries": ("In-flight messages of dead workers redelivered", ()),
    "jobsched_skipped_fires": ("Fires not called (misfire or overlap policy)", ("reason",)),
    "jobsched_alert_webhooks": ("Alert webhook deliveries", ("outcome",)),
    "jobsched_fires_dispatched": ("Fires claimed and queued by the dispatcher", ()),
    "jobsched_dropped_messages": ("Messages not called: another message of the same fire "
                                  "attempt held its mark, or the reaper had handed them on "
                                  "while their worker was stalled", ()),
}
# name -> (help, bucket upper bounds)
HISTOGRAMS = {
    "jobsched_lateness_seconds": ("Start of the call minus its scheduled time",
                                  LATENCY_BUCKETS),
    "jobsched_call_duration_seconds": ("Duration of calls to targets", LATENCY_BUCKETS),
    "jobsched_dispatch_lag_seconds": ("Claim time minus scheduled time, per fire",
                                      LATENCY_BUCKETS),
    "jobsched_claim_batch_size": ("Fires claimed per claim script call", BATCH_BUCKETS),
}


def field(name: str, labels: dict, part: str = "") -> str:
    """The hash field of one series (``part``: "" for counters; a bucket
    bound, "sum" or "count" for histograms)."""
    return _field(name, tuple(sorted(labels.items())), part)


@functools.lru_cache(maxsize=4096)
def _field(name: str, labels: tuple, part: str) -> str:
    # Memoized: a worker names a few fields a few times per call (labels
    # take a handful of values each).
    return json.dumps([name, dict(labels), part])


def parse_field(raw: str) -> tuple[str, dict, str]:
    name, labels, part = json.loads(raw)
    return name, labels, part


class MetricsRecorder:
    """Thread-safe accumulator of increments, flushed to Redis in batches."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ints: Counter[str] = Counter()
        self._floats: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        assert name in COUNTERS, name
        if amount:
            with self._lock:
                self._ints[field(name, labels)] += amount

    def observe(self, name: str, value: float) -> None:
        bounds = HISTOGRAMS[name][1]
        i = bisect.bisect_left(bounds, value)
        bucket = str(bounds[i]) if i < len(bounds) else "+Inf"
        with self._lock:
            self._ints[field(name, {}, bucket)] += 1
            self._ints[field(name, {}, "count")] += 1
            self._floats[field(name, {}, "sum")] += value

    def flush(self, client, key: str) -> None:
        """Add everything recorded so far to the totals, in one transaction.
        On a failure the increments are dropped, not re-sent: after a timeout
        they may have been applied, and counting twice is worse than a gap
        while Redis is unreachable."""
        with self._lock:
            ints, floats = self._ints, self._floats
            self._ints, self._floats = Counter(), Counter()
        if not ints and not floats:
            return
        pipe = client.pipeline(transaction=True)
        for f, n in ints.items():
            pipe.hincrby(key, f, n)
        for f, x in floats.items():
            pipe.hincrbyfloat(key, f, x)
        pipe.execute()
