"""JOBSCHED_SHARDS: the schedule split into shards, each with its own
hash-tagged keys and its own dispatcher lease, on one Redis and on a real
Redis Cluster (three masters, three replicas), with the real processes.
Every fire is accounted for: expected, executed, duplicated, lost."""
import dataclasses
import time
import uuid
from collections import Counter

import pytest

from common.errors import ConfigError
from common.keys import Keys, shard_keys, shard_of
from common.redis_api import ApiShards
from common.redis_worker import WorkerShards
from tests.cluster import RedisClusterServers
from tests.conftest import System, system_on_cluster
from tests.faults import Tally, account, called_twice, kill_worker_mid_call, start_jobs
from tests.support import summarize, wait_until

pytestmark = pytest.mark.slow


def test_a_job_lives_in_one_shard_by_a_stable_hash():
    # crc32 of the id: the same in every process and after every restart
    # (Python's hash() of a str is salted per process).
    assert [shard_of(f"job-{i}", 4) for i in range(8)] == [1, 3, 1, 3, 0, 2, 0, 2]
    assert {shard_of(str(uuid.uuid4()), 1) for _ in range(100)} == {0}
    spread = Counter(shard_of(str(uuid.uuid4()), 8) for _ in range(8000))
    assert sorted(spread) == list(range(8)) and max(spread.values()) < 1200


def test_each_shard_has_its_own_hash_tag_and_the_shared_keys_stay_under_the_prefix():
    assert shard_keys("jobsched:", 1) == [Keys("jobsched:")]   # one shard: keys as always
    keys = shard_keys("jobsched:", 3)
    assert [k.schedule for k in keys] == ["{jobsched:0}:schedule", "{jobsched:1}:schedule",
                                          "{jobsched:2}:schedule"]
    assert keys[2].fire_mark("j:1", 1) == "{jobsched:2}:fire:j:1:1"
    assert {k.metrics for k in keys} == {"jobsched:metrics"}
    assert {k.system_alert("backlog") for k in keys} == {"jobsched:system-alert:backlog"}
    assert shard_keys("{jobsched}:", 2)[1].ready == "{jobsched:1}:ready"


def test_a_process_follows_the_shard_layout_redis_holds_over_its_setting(backend):
    """JOBSCHED_SHARDS lays out an empty Redis; once Redis holds a layout
    (perhaps changed by jobsched reshard), every process takes that one."""
    client = backend.redis()
    try:
        first = ApiShards.open(client, backend.prefix, 4)
        assert not first.follow_layout()   # recorded
        late = ApiShards.open(client, backend.prefix, 2)
        assert late.follow_layout()
        assert (str(late.layout), late.count) == ("4", 4)
        assert [late.index_of(f"job-{i}") for i in range(8)] == [1, 3, 1, 3, 0, 2, 0, 2]
        client.set(backend.prefix + "shards", "what")
        with pytest.raises(ConfigError, match="unknown shard layout 'what'"):
            late.follow_layout()
    finally:
        client.close()


def test_reads_and_writes_by_job_reach_each_jobs_shard_and_answer_in_order(backend):
    client = backend.redis()
    try:
        workers = WorkerShards.open(client, backend.prefix, 4)
        jobs = [f"job-{i}" for i in range(8)]   # shards 1, 3, 1, 3, 0, 2, 0, 2
        events = [(job, "F") for job in jobs] + [(jobs[0], "F"), (jobs[5], "S")]
        assert workers.apply_streaks(events) == [1] * 8 + [2, 1]
        for job in jobs:   # each streak in its job's shard only
            assert [client.hget(w.keys.fail_streaks, job) is not None for w in workers] == \
                [shard == shard_of(job, 4) and job != "job-5" for shard in range(4)]
        api = ApiShards.open(client, backend.prefix, 4)
        for job in jobs:
            api.for_job(job).client.zadd(api.for_job(job).keys.schedule, {job: int(job[-1])})
        assert [score for score, _ in api.live_state(jobs[::-1])] == list(range(7, -1, -1))
    finally:
        client.close()


@pytest.fixture
def four_shards(servers, tmp_path):
    """api, two dispatchers and two workers; the schedule in four shards of
    one Redis."""
    system = System(dataclasses.replace(servers.new_backend(), shards=4), tmp_path)
    try:
        system.start(workers=2, dispatchers=2)
        yield system
    finally:
        system.stop()


def leases_held(system) -> Counter:
    return Counter(system.leaders())


def test_four_shards_on_one_redis_fire_each_job_in_its_own_shard(four_shards, target):
    system = four_shards
    # Two dispatchers share the four leases: two each.
    wait_until(lambda: sorted(leases_held(system).values()) == [2, 2], 15,
               message="two leases each")
    jobs = start_jobs(system, target, "shard", count=12)
    for job_id in jobs:   # each spec in its own shard, and only there
        holding = [i for i, keys in enumerate(system.shards)
                   if system.redis.hexists(keys.jobs, job_id)]
        assert holding == [shard_of(job_id, 4)]
    assert len({shard_of(job_id, 4) for job_id in jobs}) >= 3

    # What the API says of the shards.
    stats = system.api.get("/stats").json()["queue"]
    assert [s["shard"] for s in stats["shards"]] == [0, 1, 2, 3]
    assert stats["leaderless"] == [] and set(stats["leader"].split(", ")) == {
        "dispatcher-1", "dispatcher-2"}
    assert stats["scheduled"] == sum(s["scheduled"] for s in stats["shards"])
    assert system.api.get("/health", params={"deep": 1}).status_code == 200
    metrics = system.api.get("/metrics").text
    assert 'jobsched_shard_scheduled_jobs{shard="3"}' in metrics
    assert metrics.count("jobsched_dispatcher_leader{") == 4

    # Run now goes through the job's shard; a pause and a delete hold.
    run_now, paused, deleted = list(jobs)[:3]
    asked = system.api.post(f"/jobs/{run_now}/run").json()["executionId"]
    wait_until(lambda: any(r.headers["X-Jobsched-Execution-Id"] == asked
                           for r in target.received(jobs[run_now])), 10, message="run now")
    assert system.api.post(f"/jobs/{paused}/pause").status_code == 200
    assert system.api.delete(f"/jobs/{deleted}").status_code == 204
    stopped_ms = int(time.time() * 1000)
    until_ms = (stopped_ms // 1000 + 3) * 1000
    kept = {job_id: path for job_id, path in jobs.items() if job_id not in (paused, deleted)}
    total, _ = account("4 shards, one Redis", system, target, kept, until_ms)
    assert total == Tally(total.expected, total.expected, 0, 0, 0, 0)
    for job_id in (paused, deleted):
        # A fire already past the gate may still land just after the answer.
        late = [r for r in target.received(jobs[job_id]) if r.scheduled_ms > stopped_ms + 1000]
        assert late == []
    assert called_twice(target, jobs.values()) == set()


# -- on a Redis Cluster ----------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster-shards"))
    yield servers
    servers.stop()


@pytest.fixture
def eight_shards_on_the_cluster(cluster, servers, tmp_path):
    """api, two dispatchers and two workers; the schedule in eight shards of
    the cluster."""
    with system_on_cluster(cluster, servers, tmp_path, shards=8, dispatchers=2) as system:
        yield system


def test_two_dispatchers_share_eight_shards_and_the_survivor_takes_all(
        eight_shards_on_the_cluster, cluster, target):
    """Leases balanced 4/4; SIGKILL one dispatcher: the other holds all 8
    within a lease length, and no fire is lost or called twice."""
    system = eight_shards_on_the_cluster
    masters = {cluster.master_of(keys.schedule) for keys in system.shards}
    assert len(masters) >= 2   # the shards' slots are spread over the masters
    wait_until(lambda: sorted(leases_held(system).values()) == [4, 4], 15,
               message="four leases each")
    jobs = start_jobs(system, target, "cluster-leader", count=8)
    killed_at = time.monotonic()
    system.procs.kill("dispatcher-1")
    wait_until(lambda: leases_held(system) == Counter({"dispatcher-2": 8}), 15,
               message="the survivor leads every shard")
    took_s = time.monotonic() - killed_at
    summarize("shards: lease takeover", f"2 dispatchers x 8 shards on a cluster: 4/4, then "
                                        f"8/0 {took_s:.1f} s after SIGKILL of one (lease 2 s)")
    assert took_s < 2.0 + 3.0   # the lease (2 s) and a few of the survivor's steps
    until_ms = (int(time.time() * 1000) // 1000 + 3) * 1000
    total, _ = account("8 shards: leader SIGKILL", system, target, jobs, until_ms)
    assert (total.lost, total.duplicated, total.unrecorded, total.early) == (0, 0, 0, 0)


def test_a_worker_killed_mid_call_on_a_sharded_cluster_loses_nothing(
        eight_shards_on_the_cluster, target):
    """SIGKILL a worker holding a call on the wire: each shard's reaper hands
    its messages on; only the calls it held may be made twice."""
    system = eight_shards_on_the_cluster
    jobs = start_jobs(system, target, "cluster-worker", behaviour="sleep/300", count=8)
    held = kill_worker_mid_call(system, target, "worker-1")
    until_ms = (int(time.time() * 1000) // 1000 + 4) * 1000
    total, _ = account("8 shards: worker SIGKILL", system, target, jobs, until_ms)
    assert (total.lost, total.unrecorded, total.early) == (0, 0, 0)
    twice = called_twice(target, jobs.values())
    assert twice <= held and len(twice) == total.duplicated


def test_flushall_of_one_master_is_rebuilt_and_costs_only_its_shards(
        eight_shards_on_the_cluster, cluster, target):
    """FLUSHALL on the master of shard 0: the shards it served are rebuilt
    from the database by their leaders; no fire is lost; fires may run twice
    only in those shards (a call a worker held unrecorded at that moment:
    the rebuild resumes each job after its last recorded fire), and only
    around the flush."""
    system = eight_shards_on_the_cluster
    jobs = start_jobs(system, target, "cluster-flush", count=16)
    master = cluster.master_of(system.shards[0].schedule)
    flushed_shards = {i for i, keys in enumerate(system.shards)
                      if cluster.master_of(keys.schedule) == master}
    flushed_ms = int(time.time() * 1000)
    cluster.node(master).flushall()
    wait_until(lambda: all(system.redis.exists(system.shards[i].initialized)
                           for i in flushed_shards), 15, message="the shards rebuilt")
    until_ms = (int(time.time() * 1000) // 1000 + 3) * 1000
    total, _ = account("8 shards: FLUSHALL a master", system, target, jobs, until_ms)
    assert (total.lost, total.unrecorded, total.early) == (0, 0, 0)
    twice = called_twice(target, jobs.values())
    assert all(shard_of(e.rsplit(":", 1)[0], 8) in flushed_shards for e in twice), twice
    assert all(abs(int(e.rsplit(":", 1)[1]) - flushed_ms) <= 2000 for e in twice), twice
    in_flushed = sum(1 for job_id in jobs if shard_of(job_id, 8) in flushed_shards)
    assert total.duplicated <= 2 * in_flushed


@pytest.fixture
def eight_shards_on_a_cluster_of_their_own(servers, tmp_path):
    cluster = RedisClusterServers(tmp_path / "redis-cluster")
    try:
        with system_on_cluster(cluster, servers, tmp_path, shards=8, dispatchers=2) as system:
            system.cluster = cluster
            yield system
    finally:
        cluster.stop()


def test_a_master_killed_under_eight_shards_is_replaced_and_no_fire_is_lost(
        eight_shards_on_a_cluster_of_their_own, target):
    """SIGKILL of the master of shard 0: its replica takes over the shards
    that master served, every process reconnects, and every fire of the
    window is executed; a fire may be called twice only in those shards
    (the failover window, docs/operations.md)."""
    system = eight_shards_on_a_cluster_of_their_own
    cluster = system.cluster
    jobs = start_jobs(system, target, "cluster-failover", count=16)
    master = cluster.master_of(system.shards[0].schedule)
    failed_over = {i for i, keys in enumerate(system.shards)
                   if cluster.master_of(keys.schedule) == master}
    cluster.kill(master)
    wait_until(lambda: cluster.master_of(system.shards[0].schedule) != master, 30,
               message="the replica promoted")
    until_ms = (int(time.time() * 1000) // 1000 + 4) * 1000
    total, _ = account("8 shards: master SIGKILL", system, target, jobs, until_ms)
    assert (total.lost, total.unrecorded, total.early) == (0, 0, 0)
    twice = called_twice(target, jobs.values())
    assert all(shard_of(e.rsplit(":", 1)[0], 8) in failed_over for e in twice), twice
