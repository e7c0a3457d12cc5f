"""The dispatcher's loop driven by time: run_once(now) against real Redis and
a real database, no sleeping."""
from common.message import FireMessage, JobSpec
from common.models import Job
from common.settings import Settings
from dispatcher.loop import Dispatcher
from dispatcher.scheduling import next_fire_after

T0 = 1_795_000_000_000  # a whole second, epoch ms


def make_dispatcher(backend, store, sessions, name="d1", **overrides) -> Dispatcher:
    settings = Settings(database_url=backend.database_url, redis_url=backend.redis_url,
                        redis_prefix=backend.prefix, dispatcher_id=name, **overrides)
    return Dispatcher(settings, store, sessions)


def add_job(sessions, job_id, schedule="* * * * * *", enabled=True):
    with sessions() as session, session.begin():
        session.add(Job(id=job_id, schedule=schedule, timezone="UTC", url="http://127.0.0.1:1/",
                        method="POST", headers={}, type="ATLEAST_ONCE", timeout_ms=1000,
                        enabled=enabled, version=1, created_at_ms=T0, updated_at_ms=T0))


def ready_messages(store):
    return [FireMessage.decode(m) for m in store.client.lrange(store.keys.ready, 0, -1)]


def put(store, job_id, fire_ms, schedule="* * * * * *"):
    spec = JobSpec(id=job_id, version=1, schedule=schedule, timezone="UTC",
                   url="http://127.0.0.1:1/")
    store.upsert_job(job_id, spec.to_json(), fire_ms, 1)


def test_next_fire_comes_from_the_scheduled_time_not_the_clock():
    # Claimed 700 ms late: the next fire is still on the second.
    assert next_fire_after("* * * * * *", "UTC", T0, T0 + 700, 5000) == (T0 + 1000, 0)


def test_misfire_skips_to_the_next_future_fire_and_counts_the_skipped():
    nxt, skipped = next_fire_after("* * * * * *", "UTC", T0, T0 + 60_500, 5000)
    assert nxt == T0 + 61_000
    assert skipped == 60


def test_run_once_fires_due_jobs_and_reschedules_them(backend, store, sessions):
    d = make_dispatcher(backend, store, sessions)
    d.run_once(T0)  # becomes leader, reconciles an empty database
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
    assert store.claim_due("dead", T0 + 1000, 100)
    assert store.client.zscore(store.keys.schedule, "a") is None
    store.client.delete(store.keys.leader)  # its lease expires
    heir = make_dispatcher(backend, store, sessions, "heir")
    heir.run_once(T0 + 1200)
    assert store.client.zscore(store.keys.schedule, "a") == T0 + 2000
    assert [m.fire_ms for m in ready_messages(store)] == [T0 + 1000]  # not fired twice


def test_schedule_is_rebuilt_from_the_database_when_redis_lost_it(backend, store, sessions):
    add_job(sessions, "kept")
    add_job(sessions, "off", enabled=False)
    d = make_dispatcher(backend, store, sessions)
    d.run_once(T0)
    assert store.client.zscore(store.keys.schedule, "kept") == T0 + 1000
    assert store.client.zscore(store.keys.schedule, "off") is None
    # Redis loses everything of ours (as after a restart without persistence).
    store.client.delete(*store.client.keys(backend.prefix + "*"))
    d.run_once(T0 + 5000)  # notices the missing marker, reacquires lease, rebuilds
    d.run_once(T0 + 5000)
    assert store.client.zscore(store.keys.schedule, "kept") == T0 + 6000
    assert store.client.hexists(store.keys.jobs, "kept")
