"""The dispatcher's loop driven by time: run_once(now) against real Redis and
a real database, no sleeping."""
import threading
import time

from common.keys import Keys
from common.message import FireMessage, JobSpec
from common.models import Execution, Job
from common.redis_dispatcher import DispatcherShards
from common.redisstore import connect
from common.settings import Settings
from common.timeutil import now_ms
from dispatcher.loop import Dispatcher
from common.schedule import Timing
from dispatcher.dispatch import NextFire, next_fire_after
from tests.backends import BundledRedis
from tests.conftest import EveryRole
from tests.support import wait_until

EVERY_SECOND = Timing("* * * * * *")

# A whole minute one day ahead: the tests drive time themselves, and Redis
# refuses to schedule a fire that its own clock says is already due.
T0 = (now_ms() // 60_000 + 1440) * 60_000


def make_dispatcher(backend, store, sessions, name="d1", **overrides) -> Dispatcher:
    # Fires are claimed exactly when due unless a test asks for dispatch-ahead.
    overrides.setdefault("dispatch_ahead_ms", 0)
    settings = Settings(database_url=backend.database_url, redis_url=backend.redis_url,
                        redis_prefix=backend.prefix, dispatcher_id=name, **overrides)
    return Dispatcher(settings, DispatcherShards([store]), sessions)


def add_job(sessions, job_id, schedule="* * * * * *", enabled=True, type="ATLEAST_ONCE",
            updated_at_ms=T0):
    with sessions() as session, session.begin():
        session.add(Job(id=job_id, schedule=schedule, timezone="UTC", url="http://127.0.0.1:1/",
                        method="POST", headers={}, type=type, timeout_ms=1000,
                        enabled=enabled, version=1, created_at_ms=T0,
                        updated_at_ms=updated_at_ms))


def add_execution(sessions, job_id, fire_ms):
    with sessions() as session, session.begin():
        session.add(Execution(execution_id=f"{job_id}:{fire_ms}", job_id=job_id, attempt=1,
                              redelivered=False, scheduled_at_ms=fire_ms, started_at_ms=fire_ms,
                              finished_at_ms=fire_ms, status="SUCCESS", duration_ms=0))


def ready_messages(store):
    return [FireMessage.decode(m) for m in store.client.lrange(store.keys.ready, 0, -1)]


def put(store, job_id, fire_ms, schedule="* * * * * *"):
    spec = JobSpec(id=job_id, version=1, schedule=schedule, timezone="UTC",
                   url="http://127.0.0.1:1/")
    store.publish_job(job_id, spec.to_json(), 1, fire_ms, True)


def test_next_fire_comes_from_the_scheduled_time_not_the_clock():
    # Claimed 700 ms late: the next fire is still on the second.
    assert next_fire_after(EVERY_SECOND, T0, T0 + 700, 5000) == NextFire(T0 + 1000)


def test_misfire_skips_to_the_next_future_fire_and_counts_the_skipped():
    nxt = next_fire_after(EVERY_SECOND, T0, T0 + 60_500, 5000)
    assert nxt == NextFire(T0 + 61_000, 60, T0 + 1000, T0 + 60_000)


def test_run_once_fires_due_jobs_and_reschedules_them(backend, store, sessions):
    d = make_dispatcher(backend, store, sessions)
    d.run_once(T0)  # becomes leader
    put(store, "a", T0 + 1000)
    put(store, "b", T0 + 1000, "*/5 * * * * *")
    put(store, "c", T0 + 3000)
    sleep_s = d.run_once(T0 + 500)
    assert 0 < sleep_s <= 0.5
    assert ready_messages(store) == []
    d.run_once(T0 + 1003)
    fired = sorted((m.spec.id, m.fire_ms) for m in ready_messages(store))
    assert fired == [("a", T0 + 1000), ("b", T0 + 1000)]
    schedule = dict(store.client.zrange(store.keys.schedule, 0, -1, withscores=True))
    assert schedule == {b"a": T0 + 2000, b"b": T0 + 5000, b"c": T0 + 3000}
    assert store.client.zcard(store.keys.pending) == 0


def test_standby_does_not_dispatch(backend, store, sessions):
    leader = make_dispatcher(backend, store, sessions, "leader")
    standby = make_dispatcher(backend, store, sessions, "standby")
    leader.run_once(T0)
    put(store, "a", T0 + 1000)
    standby.run_once(T0 + 1000)
    assert ready_messages(store) == []
    leader.run_once(T0 + 1000)
    assert len(ready_messages(store)) == 1


def test_new_leader_reschedules_what_a_dead_leader_claimed(backend, store, sessions):
    dead = make_dispatcher(backend, store, sessions, "dead")
    dead.run_once(T0)
    put(store, "a", T0 + 1000)
    # The old leader claims (the fire is queued) and dies before rescheduling.
    assert store.claim_due("dead", T0 + 1000, 100, 60_000)
    assert store.client.zscore(store.keys.schedule, "a") is None
    store.client.delete(store.keys.leader)  # its lease expires
    heir = make_dispatcher(backend, store, sessions, "heir")
    heir.run_once(T0 + 1200)
    assert store.client.zscore(store.keys.schedule, "a") == T0 + 2000
    assert [m.fire_ms for m in ready_messages(store)] == [T0 + 1000]  # not fired twice


def test_a_long_catch_up_renews_the_lease_and_records_what_it_skipped(backend, store,
                                                                     sessions):
    from dispatcher.dispatch import RECOVER_SLICE, recover_pending
    store.hold_lease("heir", 5000)
    count = 2 * RECOVER_SLICE + 50
    for i in range(count):   # left claimed by a leader that died an hour ago
        put(store, f"j{i}", T0 + 1000)
    claimed = store.claim_due("heir", T0 + 1000, count, 60_000)
    assert len(claimed) == count
    renewals = []

    def keep_lease():
        renewals.append(1)
        return store.hold_lease("heir", 5000)
    hour_later = T0 + 1000 + 3600_000
    assert recover_pending(store, "heir", hour_later, 60_000, keep_lease) == count
    assert len(renewals) >= 3   # at least once per slice
    assert store.client.zcard(store.keys.pending) == 0
    assert store.client.zscore(store.keys.schedule, "j0") == hour_later + 1000
    skips = [m for m in ready_messages(store) if m.skip]
    assert len(skips) == count and skips[0].skip["count"] == 1000   # counted up to the cap


def test_schedule_is_rebuilt_from_the_database_when_redis_lost_it(backend, store, sessions):
    add_job(sessions, "kept")
    add_job(sessions, "off", enabled=False)
    d = make_dispatcher(backend, store, sessions)
    d.run_once(T0)
    assert d.reconciler.trigger.is_set()  # a new leader reconciles
    assert d.reconciler.run_once(T0)
    assert store.client.zscore(store.keys.schedule, "kept") == T0 + 1000
    assert store.client.zscore(store.keys.schedule, "off") is None
    # Redis loses everything of ours (as after a restart without persistence).
    d.reconciler.trigger.clear()
    store.client.delete(*store.client.keys(backend.prefix + "*"))
    d.run_once(T0 + 5000)  # reacquires the lease, notices the missing marker
    assert d.reconciler.trigger.is_set()
    assert d.reconciler.run_once(T0 + 5000)
    # Never fired: it resumes from its last change, so the lost fires run late.
    assert store.client.zscore(store.keys.schedule, "kept") == T0 + 1000
    assert store.client.hexists(store.keys.jobs, "kept")


def put_spec(store, job_id, fire_ms, **fields):
    spec = JobSpec(id=job_id, version=1, schedule="* * * * * *", timezone="UTC",
                   url="http://127.0.0.1:1/", **fields)
    store.publish_job(job_id, spec.to_json(), 1, fire_ms, True)


def test_after_downtime_skip_records_the_skipped_fires_and_fire_once_runs_one(
        backend, store, sessions):
    d = make_dispatcher(backend, store, sessions, misfire_grace_ms=5000)
    d.run_once(T0)
    put_spec(store, "skip", T0 + 1000)
    put_spec(store, "once", T0 + 1000, misfire="fire_once")
    d.run_once(T0 + 30_500)  # the dispatcher was away for 30 s
    messages = ready_messages(store)
    fires = [(m.spec.id, m.fire_ms) for m in messages if not m.skip]
    skips = {m.spec.id: (m.fire_ms, m.skip) for m in messages if m.skip}
    assert fires == [("once", T0 + 1000)]  # one catch-up run
    assert skips["skip"] == (T0 + 1000, {"reason": "misfire", "count": 30,
                                         "last": T0 + 30_000})
    assert skips["once"] == (T0 + 2000, {"reason": "misfire", "count": 29,
                                         "last": T0 + 30_000})
    schedule = dict(store.client.zrange(store.keys.schedule, 0, -1, withscores=True))
    assert schedule == {b"skip": T0 + 31_000, b"once": T0 + 31_000}


def test_a_fire_late_within_the_grace_still_runs_and_each_missed_one_catches_up(
        backend, store, sessions):
    d = make_dispatcher(backend, store, sessions, misfire_grace_ms=5000)
    d.run_once(T0)
    put_spec(store, "j", T0 + 1000)
    d.run_once(T0 + 3500)  # e.g. a leader failover of a few seconds
    assert [m.fire_ms for m in ready_messages(store)] == [T0 + 1000, T0 + 2000, T0 + 3000]
    assert store.client.zscore(store.keys.schedule, "j") == T0 + 4000


def test_due_retries_are_promoted_by_run_once(backend, store, sessions):
    d = make_dispatcher(backend, store, sessions)
    d.run_once(T0)
    store.client.zadd(store.keys.retry, {"retry-message": T0 + 2000})
    assert 0 < d.run_once(T0 + 1900) <= 0.1 + 0.01  # wakes for the retry
    d.run_once(T0 + 2000)
    assert store.client.lrange(store.keys.ready, 0, -1) == [b"retry-message"]


def test_after_redis_loss_jobs_resume_after_their_last_recorded_fire(backend, store, sessions):
    add_job(sessions, "least")
    add_job(sessions, "most", type="ATMOST_ONCE")
    add_execution(sessions, "least", T0 + 10_000)
    add_execution(sessions, "most", T0 + 10_000)
    d = make_dispatcher(backend, store, sessions)
    d.run_once(T0 + 13_500)  # Redis is empty: nothing scheduled, marker missing
    assert d.reconciler.run_once(T0 + 13_500)
    # ATLEAST_ONCE catches up from its last recorded fire; ATMOST_ONCE from now.
    assert store.client.zscore(store.keys.schedule, "least") == T0 + 11_000
    assert store.client.zscore(store.keys.schedule, "most") == T0 + 14_000
    d.run_once(T0 + 13_500)
    fires = sorted(m.fire_ms for m in ready_messages(store) if m.spec.id == "least")
    assert fires == [T0 + 11_000, T0 + 12_000, T0 + 13_000]


def test_after_redis_loss_pending_retries_are_queued_again(backend, store, sessions):
    from dispatcher.reconciler import requeue_pending_retries
    add_job(sessions, "j")
    with sessions() as session, session.begin():
        for fire, attempt, status, final in [(T0, 1, "FAILED", False),  # retry pending
                                             (T0 + 1000, 1, "FAILED", False),
                                             (T0 + 1000, 2, "SUCCESS", False),  # retried
                                             (T0 + 2000, 4, "FAILED", True)]:  # dead letter
            session.add(Execution(execution_id=f"j:{fire}", job_id="j", attempt=attempt,
                                  redelivered=False, scheduled_at_ms=fire,
                                  started_at_ms=fire, finished_at_ms=fire, status=status,
                                  duration_ms=0, final=final))
    assert requeue_pending_retries(DispatcherShards([store]), sessions, T0 + 5000) == 1
    (raw,) = store.client.zrange(store.keys.retry, 0, -1)
    msg = FireMessage.decode(raw)
    assert (msg.execution_id, msg.attempt) == (f"j:{T0}", 2)


def test_a_one_time_job_fires_once_and_leaves_the_schedule():
    once = Timing("@once", run_at_ms=T0 + 5000)
    assert next_fire_after(once, T0 + 5000, T0 + 5003, 5000) == NextFire(None)


def test_a_window_bounds_the_fires():
    window = Timing("* * * * * *", start_ms=T0 + 10_000, end_ms=T0 + 12_000)
    assert next_fire_after(window, T0, T0, 5000) == NextFire(T0 + 10_000)
    assert next_fire_after(window, T0 + 12_000, T0 + 12_000, 5000) == NextFire(None)


def test_jobs_deleted_from_the_database_are_pruned_from_redis(backend, store, sessions):
    from dispatcher.reconciler import prune_deleted
    add_job(sessions, "kept")
    put(store, "kept", T0 + 1000)
    put(store, "deleted", T0 + 1000)  # its row is gone; Redis missed the DELETE
    assert prune_deleted(DispatcherShards([store]), sessions, T0, {0}) == 1
    assert store.client.hexists(store.keys.jobs, "kept")
    assert not store.client.hexists(store.keys.jobs, "deleted")
    assert store.client.zscore(store.keys.schedule, "deleted") is None
    assert store.client.zscore(store.keys.deleted, "deleted") == T0   # its tombstone
    prune_deleted(DispatcherShards([store]), sessions, T0 + 25 * 3600_000, {0})   # tombstones last a day
    assert store.client.zscore(store.keys.deleted, "deleted") is None


def test_between_full_passes_only_recently_written_jobs_are_reconciled(backend, store,
                                                                       sessions):
    add_job(sessions, "old", updated_at_ms=T0 - 600_000)
    d = make_dispatcher(backend, store, sessions)
    d.run_once(T0)
    assert d.reconciler.run_once(T0)   # a new leader's pass is full
    assert store.client.zscore(store.keys.schedule, "old") is not None
    store.client.zrem(store.keys.schedule, "old")   # lost, long after its last write
    add_job(sessions, "new", updated_at_ms=T0 + 10_000)   # its Redis write failed
    assert d.reconciler.run_once(T0 + 30_000, full=False)
    assert store.client.zscore(store.keys.schedule, "new") is not None
    assert store.client.zscore(store.keys.schedule, "old") is None   # not looked at
    assert d.reconciler.run_once(T0 + 60_000, full=True)
    assert store.client.zscore(store.keys.schedule, "old") is not None


def test_fires_are_claimed_ahead_by_the_dispatch_ahead_time(backend, store, sessions):
    put(store, "a", T0 + 1000)
    d = make_dispatcher(backend, store, sessions, dispatch_ahead_ms=300)
    d.run_once(T0 + 600)
    assert ready_messages(store) == []
    d.run_once(T0 + 700)   # due within 300 ms: queued now, sent by a worker at T0 + 1000
    assert [m.fire_ms for m in ready_messages(store)] == [T0 + 1000]
    assert store.client.zscore(store.keys.schedule, "a") == T0 + 2000


def test_specs_leave_defaults_out_and_read_back_whole():
    import json
    from common.message import timing_of_spec, version_of_spec
    plain = JobSpec(id="j", version=1, schedule="0 0 0 1 1 *", timezone="UTC",
                    url="http://h/", max_retries=0)
    # (The id is the field the spec is stored under: not in it.)
    assert plain.to_json() == ('{"v":1,"schedule":"0 0 0 1 1 *","tz":"UTC",'
                               '"url":"http://h/","maxRetries":0}')
    windowed = JobSpec(id="j", version=2, schedule="* * * * * *", timezone="Europe/Paris",
                       url="http://h/", end_ms=T0, misfire="fire_once", headers={"A": "1"})
    for spec in (plain, windowed):
        raw = spec.to_json().encode()
        assert JobSpec.from_dict(json.loads(raw), "j") == spec
        assert timing_of_spec(raw) == spec.timing
        assert version_of_spec(raw) == spec.version
    assert version_of_spec(None) == 0
    # A spec written whole by an earlier version still reads.
    old = (b'{"v":1,"id":"j","schedule":"* * * * * *","tz":"UTC","start":null,"end":7,'
           b'"runAt":null,"url":"u","method":"POST","type":"ATLEAST_ONCE","timeoutMs":5}')
    assert timing_of_spec(old) == Timing("* * * * * *", end_ms=7)


def test_a_leader_held_up_by_redis_gives_live_workers_a_beat_before_judging_them(
        backend, sessions, tmp_path):
    """Redis stops answering for longer than a heartbeat lives (CLIENT PAUSE
    here; in production a cluster refusing every command until a replica is
    promoted, which redis-py rides out by retrying for seconds). The
    leader's commands wait, and so do the workers' beats: when Redis answers
    again the heartbeat has lapsed, and the live worker's beat may land a
    little after the leader's commands. The leader waits a beat before
    handing its calls on; a worker that does not beat again is judged dead."""
    own_redis = BundledRedis(tmp_path)
    client = connect(own_redis.url, socket_timeout=10)
    store = EveryRole(client, Keys(backend.prefix))
    settings = Settings(database_url=backend.database_url, redis_url=own_redis.url,
                        redis_prefix=backend.prefix, dispatcher_id="d1",
                        worker_heartbeat_ttl_ms=1500, leader_lease_ms=6000)
    d = Dispatcher(settings, DispatcherShards([store]), sessions)
    leader = threading.Thread(target=d.run_forever, daemon=True)
    beating, stopped = threading.Event(), threading.Event()

    def live_worker():
        while not stopped.is_set():
            beating.wait()
            store.beat("live", 1500)
            stopped.wait(0.5)
    beats = threading.Thread(target=live_worker, daemon=True)
    leader.start()
    try:
        wait_until(lambda: d.leases.held == {0}, message="the lease taken")
        time.sleep(1.6)   # a new leader reaps after a heartbeat's lifetime
        spec = JobSpec(id="j", version=1, schedule="* * * * * *", timezone="UTC",
                       url="http://127.0.0.1:1/").to_json()
        live, dead = FireMessage.encode("live", spec, T0), FireMessage.encode("dead", spec, T0)
        for worker, message in (("live", live), ("dead", dead)):
            client.rpush(store.keys.inflight(worker), message)
        store.beat("dead", 1500)
        beating.set()
        beats.start()
        wait_until(lambda: client.exists(store.keys.heartbeat("live")))
        beating.clear()    # its beats wait on Redis too, and land after the leader's
        client.execute_command("CLIENT", "PAUSE", 2500, "ALL")
        time.sleep(2.7)
        beating.set()
        wait_until(lambda: client.llen(store.keys.inflight("dead")) == 0, 5,
                   message="the worker that beats no more judged dead")
        assert client.lrange(store.keys.inflight("live"), 0, -1) == [live.encode()]
        assert [(m.execution_id, m.redeliveries) for m in ready_messages(store)] == \
            [(f"dead:{T0}", 1)]
    finally:
        stopped.set()
        beating.set()
        d.stop_event.set()
        leader.join(10)
        client.close()
        own_redis.stop()


def test_a_leader_whose_every_step_runs_late_still_judges_dead_workers(
        backend, store, sessions):
    """A step that runs a beat late holds off reaping (what held it up may
    have held up the workers' beats), but not again for two heartbeat
    lifetimes: a leader whose every step runs late still hands on the calls
    of a worker that is gone."""
    d = make_dispatcher(backend, store, sessions, worker_heartbeat_ttl_ms=1500)
    d.run_once(T0)   # takes the lease
    spec = JobSpec(id="j", version=1, schedule="* * * * * *", timezone="UTC",
                   url="http://127.0.0.1:1/").to_json()
    store.client.rpush(store.keys.inflight("gone"), FireMessage.encode("gone", spec, T0))
    store.client.sadd(store.keys.workers, "gone")
    steps = iter(range(T0 + 2000, T0 + 600_000, 1000))   # each step 2 s behind

    def late_step() -> bool:
        d._reap(0, next(steps), late_ms=2000)
        return store.client.llen(store.keys.inflight("gone")) == 0
    # (Polled in real time: the lapse is confirmed by Redis's clock.)
    wait_until(late_step, 15, interval=0.25, message="the calls of the gone worker handed on")
    assert [m.execution_id for m in ready_messages(store)] == [f"gone:{T0}"]
