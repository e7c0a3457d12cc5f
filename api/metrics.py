"""Prometheus exposition of the system-wide metrics (GET /metrics)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from api.services import Services
from api.services.observe import metric_totals, queue_state
from common.metrics import COUNTERS, HISTOGRAMS


SHARD_GAUGES = (
    ("jobsched_shard_scheduled_jobs", "Jobs on the schedule, per shard", "scheduled"),
    ("jobsched_shard_ready_messages", "Fires waiting for a worker, per shard", "ready"),
    ("jobsched_shard_inflight_messages", "Fires held by workers, per shard", "inflight"),
    ("jobsched_shard_retry_backlog", "Attempts waiting for their retry time, per shard",
     "retry"),
)


class _Collector:
    def __init__(self, services: Services):
        self.services = services

    def collect(self):
        totals = metric_totals(self.services)
        for name, (help_text, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name, help_text, labels=label_names)
            for (labels, _), value in sorted(totals.get(name, {}).items()):
                family.add_metric([dict(labels).get(n, "") for n in label_names], value)
            yield family
        for name, (help_text, bounds) in HISTOGRAMS.items():
            series = {part: value for (_, part), value in totals.get(name, {}).items()}
            cumulative, buckets = 0.0, []
            for bound in [str(b) for b in bounds] + ["+Inf"]:
                cumulative += series.get(bound, 0.0)
                buckets.append((bound, cumulative))
            family = HistogramMetricFamily(name, help_text)
            family.add_metric([], buckets, sum_value=series.get("sum", 0.0))
            yield family
        yield from self._gauges(queue_state(self.services))

    @staticmethod
    def _gauges(q: dict):
        def gauge(name, help_text, value):
            return GaugeMetricFamily(name, help_text, value=value or 0)
        yield gauge("jobsched_scheduled_jobs", "Jobs on the schedule", q["scheduled"])
        yield gauge("jobsched_ready_messages", "Fires waiting for a worker", q["ready"])
        yield gauge("jobsched_inflight_messages", "Fires held by workers", q["inflight"])
        yield gauge("jobsched_retry_backlog", "Attempts waiting for their retry time",
                    q["retry"])
        yield gauge("jobsched_oldest_ready_age_seconds", "Age of the oldest ready fire",
                    (q["oldestReadyAgeMs"] or 0) / 1000)
        yield gauge("jobsched_workers_alive", "Workers with a live heartbeat",
                    q["workersAlive"])
        leader = GaugeMetricFamily("jobsched_dispatcher_leader",
                                   "1 for the dispatcher holding a shard's lease",
                                   labels=["id", "shard"])
        for shard in q["shards"]:
            if shard["leader"]:
                leader.add_metric([shard["leader"], _label(shard)], 1)
        yield leader
        for name, help_text, field in SHARD_GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=["shard"])
            for shard in q["shards"]:
                family.add_metric([_label(shard)], shard[field] or 0)
            yield family
        yield gauge("jobsched_leader_lease_age_seconds", "Since the leader took the lease",
                    (q["leaseAgeMs"] or 0) / 1000)


def exposition(services: Services) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(services))
    return generate_latest(registry)


def _label(shard: dict) -> str:
    """A shard's label: its number ("2-old" while a reshard retires it)."""
    return f"{shard['shard']}-old" if shard["retiring"] else str(shard["shard"])
