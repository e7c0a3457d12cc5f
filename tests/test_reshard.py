"""`jobsched reshard --to M`: the schedule moved into another number of shards
while the system runs. On one Redis, each step's guarantees (a job moves
once, with its last claimed fire and its tombstone; writes routed by an old
layout are refused and follow the job; fires queued before the move are
called from the old shard); on a real Redis Cluster, 1 -> 4 -> 2 shards
under random API operations, checked by the fire history checker."""
import json
import subprocess
import sys
import threading
import time

import pytest

from common.keys import Keys, Layout, shard_keys, shard_of
from common.message import FireMessage
from common.redis_api import ApiShards
from common.redis_reshard import ReshardShards
from jobsched.reshard import Reshard
from tests.cluster import RedisClusterServers
from tests.conftest import system_on_cluster
from tests.history import Fault
from tests.test_history import SECONDS, run_history
from tests.support import summarize, wait_until

pytestmark = pytest.mark.slow

T0 = 2_000_000_000_000


def spec(job_id: str, version: int = 1, enabled: bool = True) -> str:
    return json.dumps({"id": job_id, "v": version, "enabled": enabled, "url": "http://x/"})


def where(client, prefix: str, count: int, job_id: str) -> list[tuple[str, float]]:
    """Every shard of the 1-, 2- and 4-shard layouts whose schedule holds the job."""
    found = []
    for keys in {k for n in (1, 2, 4) for k in shard_keys(prefix, n)}:
        score = client.zscore(keys.schedule, job_id)
        if score is not None:
            found.append((keys.prefix, score))
    return found


@pytest.fixture
def redis_backend(backend):
    client = backend.redis()
    yield client, backend.prefix
    client.close()


def test_reshard_moves_each_job_once_with_its_claimed_fire_and_its_tombstone(redis_backend):
    client, prefix = redis_backend
    api = ApiShards.open(client, prefix, 1)
    api.follow_layout()
    ids = [f"job-{i}" for i in range(40)]
    for i, job_id in enumerate(ids):
        assert api.publish_job(job_id, spec(job_id), 1, T0 + i, True) == ("written", None)
    # job-0's fire at T0 + 5000 was claimed already (the dispatcher does so)
    one = Keys(prefix)
    client.zadd(one.claimed, {"job-0": T0 + 5_000})
    client.zadd(one.schedule, {"job-0": T0 + 6_000})
    api.remove_job("job-39", T0)
    said = []
    Reshard(ReshardShards.open(client, prefix, 1), said.append, follow_timeout_s=0,
            drain_timeout_s=5).run(4)
    assert said[-1] == "the schedule is in 4 shards"

    four = shard_keys(prefix, 4)
    for i, job_id in enumerate(ids[:-1]):
        home = four[shard_of(job_id, 4)]
        assert where(client, prefix, 4, job_id) == [(home.prefix, T0 + (6_000 if i == 0 else i))]
    assert client.zscore(four[shard_of("job-0", 4)].claimed, "job-0") == T0 + 5_000
    assert client.zscore(four[shard_of("job-39", 4)].deleted, "job-39") == T0
    # The old one-shard keys are gone but for the layout that refuses writes.
    assert client.get(one.layout) == b"retired" and not client.exists(one.jobs, one.schedule)
    assert {client.get(k.layout) for k in four} == {b"4"}
    assert client.get(one.shard_count) == b"4"

    # A process that still routes by one shard: refused, it follows, and its
    # writes reach the job where it lives now, checked against what moved.
    assert str(api.layout) == "1"
    assert api.publish_job("job-0", spec("job-0", 2), 2, T0 + 5_000, True) == \
        ("refused", T0 + 5_000)
    assert str(api.layout) == "4"
    assert api.publish_job("job-39", spec("job-39", 2), 2, T0, True) == ("deleted", None)
    assert api.publish_job("new", spec("new"), 1, T0, True) == ("written", None)
    assert where(client, prefix, 4, "new") == [(four[shard_of("new", 4)].prefix, T0)]


def test_while_moving_writes_follow_the_job_and_old_fires_drain_from_the_old_shard(
        redis_backend):
    client, prefix = redis_backend
    api = ApiShards.open(client, prefix, 2)
    api.follow_layout()
    # Going from 2 shards to 4: shard 0 keeps the jobs whose crc32 % 4 is 0
    # and gives those of 2 to the new shard 2.
    stay, leave = "job-4", "job-5"
    assert (shard_of(stay, 4), shard_of(leave, 4)) == (0, 2)
    assert shard_of(stay, 2) == shard_of(leave, 2) == 0
    for job_id in (stay, leave):
        api.publish_job(job_id, spec(job_id), 1, T0, True)
    two, four = shard_keys(prefix, 2), shard_keys(prefix, 4)
    # A fire of each is queued in shard 0 before the move.
    queued = {job_id: FireMessage.encode(job_id, spec(job_id), T0) for job_id in (stay, leave)}
    client.rpush(two[0].ready, *queued.values())

    reshard = ReshardShards.open(client, prefix, 2)
    reshard.follow_layout()
    moving = reshard.begin(4)
    assert str(moving) == "2>4" and client.get(two[0].shard_count) == b"2>4"
    # A process still on "2" is refused by the shards and follows.
    assert api.publish_job(stay, spec(stay, 2), 2, T0 + 1_000, True) == ("written", None)
    assert str(api.layout) == "2>4"
    answers = reshard[reshard.old[0]].move_out(str(moving), [stay, leave, "nobody"])
    state = json.loads(answers[1])
    assert answers[0] != "busy" and (answers[2], state["n"]) == ("", str(T0))
    # job-4 is not another shard's: the command never moves it (move_out
    # would); here the test moved only job-5 in the old shard's view:
    client.hdel(two[0].moved, stay)
    client.zadd(two[0].schedule, {stay: T0 + 1_000})

    # Moved out but not yet in: a write finds it moved, moves it in first
    # (with its next fire) and writes there.
    assert where(client, prefix, 4, leave) == []
    assert api.publish_job(leave, spec(leave, 2, enabled=False), 2, None, False) == \
        ("written", None)
    assert json.loads(client.hget(four[2].jobs, leave))["v"] == 2
    # The old shard keeps its spec current: the queued fire sees the pause.
    assert json.loads(client.hget(two[0].jobs, leave))["enabled"] is False
    assert api.publish_job(leave, spec(leave, 3), 3, T0 + 2_000, True) == ("written", None)
    assert where(client, prefix, 4, leave) == [(four[2].prefix, T0 + 2_000)]
    # Run now: queued in the new shard.
    assert api.enqueue(leave, "run-now")
    assert client.lrange(four[2].ready, 0, -1) == [b"run-now"]

    old = reshard[reshard.old[0]]
    assert old.left_to_drain(retiring=False) == 1   # job-5's fire queued before the move
    client.lpop(two[0].ready)                          # (job-4's, first)
    assert old.left_to_drain(retiring=False) == 1
    client.lpop(two[0].ready)
    assert old.left_to_drain(retiring=False) == 0

    # A delete tombstones the job in both shards: a fire still queued in the
    # old one finds no spec there and is skipped.
    api.remove_job(leave, T0)
    assert client.zscore(two[0].deleted, leave) == T0
    assert client.zscore(four[2].deleted, leave) == T0
    assert not client.hexists(two[0].jobs, leave) and not client.hexists(four[2].jobs, leave)


def test_request_threads_following_a_new_layout_at_once_route_every_job_alike(redis_backend):
    """The API's threads meet a new layout at the same moment: each shard
    keeps one id (a race here once gave two shards one id, and a process
    wrote one shard's jobs into another)."""
    client, prefix = redis_backend
    def follow(api, barrier):
        barrier.wait()
        api.follow_layout()
    for _ in range(20):
        api = ApiShards.open(client, prefix, 1)
        client.set(Keys(prefix).shard_count, "1>8")
        barrier = threading.Barrier(8)
        threads = [threading.Thread(target=follow, args=(api, barrier)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        eight = shard_keys(prefix, 8)
        assert [api[i].keys.prefix for i in api.new] == [k.prefix for k in eight]
        assert [api[api.dest_of(f"job-{i}")].keys for i in range(16)] == \
            [eight[shard_of(f"job-{i}", 8)] for i in range(16)]
        client.delete(Keys(prefix).shard_count)


def test_a_run_stopped_after_the_layout_ended_drops_the_kept_specs_when_run_again(
        redis_backend):
    client, prefix = redis_backend
    api = ApiShards.open(client, prefix, 2)
    api.follow_layout()
    for job_id in ("job-4", "job-5"):   # both in shard 0 of 2; job-5 goes to shard 2 of 4
        api.publish_job(job_id, spec(job_id), 1, T0, True)
    reshard = Reshard(ReshardShards.open(client, prefix, 2), lambda _: None,
                      follow_timeout_s=0, drain_timeout_s=5)
    reshard.run(4)
    # As if stopped between the layout's end and the old shard's clean-up:
    zero = shard_keys(prefix, 4)[0]
    client.hset(zero.jobs, "job-5", spec("job-5"))
    client.hset(zero.moved, "job-5", "1")
    said = []
    Reshard(ReshardShards.open(client, prefix, 2), said.append, follow_timeout_s=0).run(4)
    assert said == ["dropped the specs shard 0 kept of jobs moved out",
                    "the schedule is in 4 shards already"]
    assert client.hkeys(zero.jobs) == [b"job-4"] and not client.exists(zero.moved)


def test_a_job_whose_fire_is_being_rescheduled_moves_on_a_later_pass(redis_backend):
    client, prefix = redis_backend
    api = ApiShards.open(client, prefix, 1)
    api.follow_layout()
    job_id = "job-1"   # shard 3 of 4
    api.publish_job(job_id, spec(job_id), 1, T0, True)
    one = Keys(prefix)
    # Claimed, not yet rescheduled by the dispatcher:
    client.zrem(one.schedule, job_id)
    client.zadd(one.pending, {job_id: T0})
    client.zadd(one.claimed, {job_id: T0})

    def reschedule():
        time.sleep(0.3)
        client.zrem(one.pending, job_id)
        client.zadd(one.schedule, {job_id: T0 + 1_000})
    threading.Thread(target=reschedule).start()
    Reshard(ReshardShards.open(client, prefix, 1), lambda _: None, follow_timeout_s=0,
            drain_timeout_s=5).run(4)
    four = shard_keys(prefix, 4)
    assert where(client, prefix, 4, job_id) == [(four[3].prefix, T0 + 1_000)]
    assert client.zscore(four[3].claimed, job_id) == T0


# -- on a Redis Cluster, under load ------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster-reshard"))
    yield servers
    servers.stop()


def reshard_to(system, count: int) -> str:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "jobsched.cli", "reshard", "--to", str(count)],
                          env=system.procs.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    moved = [line for line in done.stdout.splitlines() if line.startswith("moved")]
    summarize("jobsched reshard under load, on a Redis Cluster",
              f"to {count} shards: {moved[0] if moved else '?'}, "
              f"{time.monotonic() - started:.1f} s in all")
    return done.stdout


def test_fire_history_while_resharding_1_to_4_to_2_on_a_cluster(cluster, servers, target,
                                                                 tmp_path):
    """Random operations racing the fires for a minute while the schedule
    moves from one shard to four, then to two: no fire lost, duplicated,
    stale, or called after its job was deleted or paused."""
    with system_on_cluster(cluster, servers, tmp_path, shards=1, dispatchers=2) as system:
        said = []

        def reshard(stop: threading.Event, began: float) -> list[Fault]:
            stop.wait(SECONDS / 4)
            said.append(reshard_to(system, 4))
            stop.wait(max(0.0, began + SECONDS / 2 - time.monotonic()))
            said.append(reshard_to(system, 2))
            return []
        try:
            run_history(system, target, servers, tmp_path, reshard, "resharded 1 -> 4 -> 2")
        except AssertionError:
            # Where each job is now, in every shard of every layout: for the report.
            stores = {k.prefix: k for n in (1, 2, 4) for k in shard_keys(system.backend.prefix, n)}
            for prefix, keys in sorted(stores.items()):
                print(prefix, "layout", system.redis.get(keys.layout),
                      "schedule", system.redis.zrange(keys.schedule, 0, -1, withscores=True),
                      "moved", system.redis.hkeys(keys.moved))
            raise
        assert "the schedule is in 4 shards" in said[0] and "moved" in said[0]
        assert "the schedule is in 2 shards" in said[1]
        stats = system.api.get("/stats").json()["queue"]
        assert stats["layout"] == "2" and [s["shard"] for s in stats["shards"]] == [0, 1]
        wait_until(lambda: sorted(system.api.get("/stats").json()["queue"]["leaderless"]) == [],
                   10, message="both shards led")
        assert Layout.parse(system.redis.get(system.keys.shard_count)) == Layout(2)


def test_a_reshard_killed_while_moving_goes_on_when_run_again(backend, tmp_path):
    """SIGKILL of `jobsched reshard` in the middle of 100,000 moves: the
    layout says "1>4", the processes go on routing by it, and the command
    run again finishes: every job once, in its shard, at its fire."""
    client = backend.redis()
    try:
        ids = [f"job-{i}" for i in range(100_000)]
        one = Keys(backend.prefix)
        for start in range(0, len(ids), 10_000):
            pipe = client.pipeline(transaction=False)
            part = ids[start:start + 10_000]
            pipe.hset(one.jobs, mapping={job_id: spec(job_id) for job_id in part})
            pipe.zadd(one.schedule, {job_id: T0 + int(job_id[4:]) for job_id in part})
            pipe.execute()
        command = [sys.executable, "-m", "jobsched.cli", "reshard", "--to", "4"]
        env = {**backend.env(), "JOBSCHED_LOG_LEVEL": "WARNING"}
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            wait_until(lambda: client.hlen(one.moved) > 1_000, 60, interval=0.005,
                       message="the first run moving jobs")
        finally:
            first.kill()
            first.wait()
        moved_then = client.hlen(one.moved)
        assert 0 < moved_then < 75_000 and client.get(one.shard_count) == b"1>4"
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "going on with the reshard from 1 to 4 shards" in done.stdout
        four = shard_keys(backend.prefix, 4)
        pipe = client.pipeline(transaction=False)
        for keys in four:
            pipe.zrange(keys.schedule, 0, -1, withscores=True)
        placed = {}
        for shard, entries in enumerate(pipe.execute()):
            for job_id, score in entries:
                assert job_id.decode() not in placed, f"{job_id} in two shards"
                placed[job_id.decode()] = (shard, score)
        assert placed == {job_id: (shard_of(job_id, 4), T0 + int(job_id[4:])) for job_id in ids}
        assert client.get(one.layout) == b"retired" and not client.exists(one.schedule)
    finally:
        client.close()
