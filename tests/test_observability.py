"""Metrics, stats and health: values asserted after a known workload run by
two worker processes; deep health flipping with the system's state."""
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from api.app import create_app
from common.settings import Settings
from common.timeutil import iso_ms, now_ms
from tests.backends import BundledRedis
from tests.support import make_client, wait_until


def samples(metrics_text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def own_system(make_system):
    return make_system(workers=2)


@pytest.mark.slow
def test_metrics_count_a_known_workload_across_two_workers(own_system, target):
    system = own_system
    run_at = iso_ms((now_ms() // 1000 + 2) * 1000)
    for i in range(3):
        system.api.create(schedule="@once", runAt=run_at, api=target.url(f"/ok/m{i}"))
    for i in range(2):
        system.api.create(schedule="@once", runAt=run_at, maxRetries=0,
                          api=target.url(f"/status/500/m{i}"))
    ok = ("jobsched_executions_total", (("status", "SUCCESS"), ("type", "ATLEAST_ONCE")))
    failed = ("jobsched_executions_total", (("status", "FAILED"), ("type", "ATLEAST_ONCE")))

    def counted():
        m = samples(system.api.get("/metrics").text)
        return m if (m.get(ok), m.get(failed)) == (3, 2) else None
    m = wait_until(counted, 20, interval=0.2, message="3 successes and 2 failures counted")
    assert m[("jobsched_lateness_seconds_count", ())] == 5
    assert m[("jobsched_call_duration_seconds_count", ())] == 5
    assert m[("jobsched_lateness_seconds_bucket", (("le", "+Inf"),))] == 5
    assert m[("jobsched_fires_dispatched_total", ())] == 5
    assert m[("jobsched_workers_alive", ())] == 2
    assert m[("jobsched_dispatcher_leader", (("id", "dispatcher-1"), ("shard", "0")))] == 1
    assert m[("jobsched_shard_scheduled_jobs", (("shard", "0"),))] == 0
    assert m[("jobsched_scheduled_jobs", ())] == 0  # one-time jobs are done
    # Both worker processes took part, and the totals are their sum.
    engine = create_engine(system.backend.database_url)
    with engine.connect() as conn:
        workers = conn.execute(text("SELECT COUNT(DISTINCT worker_id) FROM executions")).scalar()
    engine.dispose()
    assert workers == 2
    stats = system.api.get("/stats").json()
    assert stats["executions"] == {"SUCCESS": 3, "FAILED": 2}
    assert stats["queue"]["workersAlive"] == 2 and stats["queue"]["leader"] == "dispatcher-1"
    assert stats["jobs"] == {"total": 5, "enabled": 5}
    deep = system.api.get("/health?deep=1")
    assert deep.status_code == 200, deep.json()
    assert system.api.get("/ready").status_code == 200


def test_deep_health_needs_a_leader_a_live_worker_and_a_moving_queue(backend, store):
    client = make_client(backend, ready_age_limit_ms=5_000)
    body = client.get("/health?deep=1").get_json()
    assert client.get("/health?deep=1").status_code == 503
    assert (body["leader"]["ok"], body["workers"]["ok"]) == (False, False)
    assert body["leader"]["error"] == "no dispatcher holds the lease"
    assert client.get("/health").status_code == 200  # shallow: database and Redis only
    k = store.keys
    store.hold_lease("d1", 5000)
    store.client.sadd(k.workers, "w1")
    store.client.set(k.heartbeat("w1"), "1", px=5000)
    assert client.get("/health?deep=1").status_code == 200
    stale = json.dumps({"r": 0, "t": now_ms() - 60_000, "a": 1, "spec": {}})
    store.client.rpush(k.ready, stale)
    body = client.get("/ready").get_json()
    assert body["readyQueue"]["ok"] is False and "waited" in body["readyQueue"]["error"]


def test_health_is_503_when_redis_stops(backend, tmp_path):
    redis_server = BundledRedis(tmp_path)
    client = create_app(Settings(database_url=backend.database_url,
                                 redis_url=redis_server.url)).test_client()
    assert client.get("/health").status_code == 200
    redis_server.stop()
    r = client.get("/health")
    assert r.status_code == 503 and r.get_json()["redis"]["ok"] is False
    assert client.get("/metrics").status_code == 503
