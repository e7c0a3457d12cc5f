"""jobsched on a real Redis Cluster (three masters, three replicas): with
JOBSCHED_REDIS_CLUSTER=true and a hash-tagged prefix every key of a
deployment lives in one slot, so every Lua script runs as on one Redis.
(One shard; tests/test_shards.py spreads the schedule over slots.)"""
from collections import Counter

import pytest

from common.errors import ConfigError
from common.keys import Keys
from common.redisstore import connect
from common.settings import Settings
from tests.cluster import RedisClusterServers
from tests.conftest import EveryRole, system_on_cluster
from tests.support import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    yield servers
    servers.stop()


def test_a_cluster_needs_a_hash_tagged_prefix():
    with pytest.raises(ConfigError, match="JOBSCHED_REDIS_PREFIX must hold a hash tag"):
        Settings.from_env({"JOBSCHED_REDIS_CLUSTER": "true"})
    settings = Settings.from_env({"JOBSCHED_REDIS_CLUSTER": "true",
                                  "JOBSCHED_REDIS_PREFIX": "{jobsched}:"})
    assert settings.redis_cluster and settings.redis_prefix == "{jobsched}:"


def test_the_prefix_puts_every_key_in_one_slot_of_the_cluster(cluster):
    keys = Keys("{jobsched-slot}:")
    store = EveryRole(connect(cluster.url, cluster=True), keys)
    names = [keys.jobs, keys.schedule, keys.ready, keys.retry, keys.leader, keys.metrics,
             keys.inflight("w"), keys.fire_mark("j:1", 1), keys.running("j"),
             keys.heartbeat("w"), keys.once("t"), keys.system_alert("backlog")]
    slots = {store.client.keyslot(name) for name in names}
    assert len(slots) == 1
    # The cluster has three masters: the keys of another tag may be elsewhere,
    # and every script still runs (it is sent to the node of its keys' slot).
    assert store.hold_lease("d1", 5000) and not store.hold_lease("d2", 5000)
    store.client.close()


@pytest.fixture
def cluster_system(cluster, servers, tmp_path):
    with system_on_cluster(cluster, servers, tmp_path) as system:
        yield system


def test_every_second_jobs_fire_once_per_second_on_a_cluster(cluster_system, target):
    system = cluster_system
    ids = [system.api.create(schedule="* * * * * *", api=target.url(f"/ok/c{i}"))["jobId"]
           for i in range(3)]
    wait_until(lambda: all(len(target.received(f"/ok/c{i}")) >= 4 for i in range(3)), 30,
               message="four fires of each job")
    for job_id in ids:
        assert system.api.delete(f"/jobs/{job_id}").status_code == 204
    calls = [c.headers["X-Jobsched-Execution-Id"] for c in target.received("/ok/c")]
    duplicated = {e: n for e, n in Counter(calls).items() if n > 1}
    assert duplicated == {}
    rows = system.api.get("/executions", params={"limit": 100}).json()
    assert rows  # recorded through the cluster's in-flight lists and acknowledgements
    assert system.leader() == "dispatcher-1"



@pytest.fixture
def own_cluster(tmp_path):
    servers = RedisClusterServers(tmp_path / "redis-cluster")
    yield servers
    servers.stop()


@pytest.fixture
def own_cluster_system(own_cluster, servers, tmp_path):
    with system_on_cluster(own_cluster, servers, tmp_path) as system:
        yield system


def test_a_master_killed_is_replaced_by_its_replica_and_fires_go_on(own_cluster_system,
                                                                     own_cluster, target):
    """SIGKILL of the master holding the deployment's slot (on a cluster of
    its own): its replica is promoted (cluster failover) and every process
    reconnects to it; the job fires again, and no fire is called twice."""
    failover(own_cluster_system, own_cluster, target)


def failover(system, cluster, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/ok/failover"))
    wait_until(lambda: len(target.received("/ok/failover")) >= 2, 20, message="fires")
    master = cluster.master_of(system.keys.schedule)
    cluster.kill(master)
    wait_until(lambda: cluster.master_of(system.keys.schedule) != master, 30,
               message="the replica promoted")
    after = len(target.received("/ok/failover"))
    wait_until(lambda: len(target.received("/ok/failover")) >= after + 3, 60,
               message="fires after the failover")
    calls = Counter(c.headers["X-Jobsched-Execution-Id"]
                    for c in target.received("/ok/failover"))
    assert {e: n for e, n in calls.items() if n > 1} == {}
    assert system.api.delete(f"/jobs/{job['jobId']}").status_code == 204
