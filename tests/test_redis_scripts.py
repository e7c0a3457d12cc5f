"""The Lua scripts against a real Redis server: atomic claim, fencing,
rescheduling that yields to a concurrent API write, requeue of dead workers."""
import json

from common.message import FireMessage, JobSpec


GRACE = 60_000


def spec(job_id: str, version: int = 1, schedule: str = "* * * * * *", **fields) -> str:
    return JobSpec(id=job_id, version=version, schedule=schedule, timezone="UTC",
                   url="http://127.0.0.1:1/x", **fields).to_json()


def test_lease_is_exclusive_and_renewable(store):
    assert store.hold_lease("a", 1000)
    assert store.hold_lease("a", 1000)
    assert not store.hold_lease("b", 1000)
    store.client.delete(store.keys.leader)
    assert store.hold_lease("b", 1000)
    assert not store.hold_lease("a", 1000)


def test_claim_queues_one_message_per_due_job_and_parks_it_in_pending(store):
    k = store.keys
    store.hold_lease("me", 5000)
    store.upsert_job("due", spec("due"), 1000, 1)
    store.upsert_job("later", spec("later"), 5000, 1)
    claimed = store.claim_due("me", 2000, 100, GRACE)
    assert [(job_id, fire, queued) for job_id, fire, _, queued in claimed] == \
        [("due", 1000, True)]
    ready = store.client.lrange(k.ready, 0, -1)
    assert len(ready) == 1
    msg = FireMessage.decode(ready[0])
    assert (msg.spec.id, msg.fire_ms, msg.attempt, msg.redeliveries) == ("due", 1000, 1, 0)
    assert msg.execution_id == "due:1000"
    assert store.client.zscore(k.pending, "due") == 1000
    assert store.client.zscore(k.schedule, "due") is None
    assert store.client.zscore(k.schedule, "later") == 5000


def test_claim_is_bounded_per_call(store):
    store.hold_lease("me", 5000)
    for i in range(25):
        store.upsert_job(f"j{i}", spec(f"j{i}"), 1000 + i, 1)
    assert len(store.claim_due("me", 10_000, 10, GRACE)) == 10
    assert len(store.claim_due("me", 10_000, 10, GRACE)) == 10
    assert len(store.claim_due("me", 10_000, 10, GRACE)) == 5
    assert store.client.llen(store.keys.ready) == 25


def test_a_dispatcher_without_the_lease_is_fenced(store):
    store.hold_lease("leader", 5000)
    store.upsert_job("j", spec("j"), 1000, 1)
    assert store.claim_due("ex-leader", 2000, 100, GRACE) is None
    assert store.client.llen(store.keys.ready) == 0
    claimed = store.claim_due("leader", 2000, 100, GRACE)
    assert store.reschedule("ex-leader", [("j", 1000, 2000)]) is None
    assert store.client.zscore(store.keys.pending, "j") == 1000
    assert claimed


def test_reschedule_yields_to_an_api_write_made_after_the_claim(store):
    k = store.keys
    store.hold_lease("me", 5000)
    store.upsert_job("j", spec("j", 1), 1000, 1)
    store.claim_due("me", 1500, 100, GRACE)
    store.upsert_job("j", spec("j", 2, "*/10 * * * * *"), 10_000, 2)  # PUT meanwhile
    assert store.reschedule("me", [("j", 1000, 2000)]) == 0
    assert store.client.zscore(k.schedule, "j") == 10_000
    assert store.client.zscore(k.pending, "j") is None


def test_upsert_never_replaces_a_newer_version(store):
    assert store.upsert_job("j", spec("j", 3), 3000, 3)
    assert not store.upsert_job("j", spec("j", 2), 2000, 2)
    assert json.loads(store.client.hget(store.keys.jobs, "j"))["v"] == 3
    assert store.client.zscore(store.keys.schedule, "j") == 3000


def test_upsert_of_the_earliest_fire_wakes_the_dispatcher(store):
    k = store.keys
    store.upsert_job("late", spec("late"), 9000, 1)
    assert store.client.llen(k.wake) == 1
    store.client.delete(k.wake)
    store.upsert_job("later", spec("later"), 10_000, 1)
    assert store.client.llen(k.wake) == 0
    store.upsert_job("early", spec("early"), 1000, 1)
    assert store.client.llen(k.wake) == 1


def test_disabled_job_leaves_the_schedule(store):
    store.upsert_job("j", spec("j"), 1000, 1)
    store.upsert_job("j", spec("j", 2), None, 2)
    assert store.client.zscore(store.keys.schedule, "j") is None
    assert store.client.hexists(store.keys.jobs, "j")


def test_dead_worker_messages_are_requeued_with_a_redelivery_mark(store):
    k = store.keys
    store.hold_lease("leader", 5000)
    raw = FireMessage.encode(spec("j"), 1000)
    store.client.sadd(k.workers, "w1")
    store.client.rpush(k.inflight("w1"), raw)
    store.client.set(k.heartbeat("w1"), "1", px=5000)
    assert store.requeue_dead_worker("w1", "leader") == 0  # still alive
    assert store.requeue_dead_worker("w1", "not-leader") is None
    store.client.delete(k.heartbeat("w1"))
    assert store.requeue_dead_worker("w1", "leader") == 1
    (requeued,) = store.client.lrange(k.ready, 0, -1)
    msg = FireMessage.decode(requeued)
    assert (msg.execution_id, msg.redeliveries, msg.attempt) == ("j:1000", 1, 1)
    assert store.client.llen(k.inflight("w1")) == 0
    assert not store.client.sismember(k.workers, "w1")


def test_a_restarted_worker_hands_back_its_previous_inflight(store):
    k = store.keys
    store.client.rpush(k.inflight("w1"), FireMessage.encode(spec("j"), 1000))
    store.client.set(k.heartbeat("w1"), "1", px=5000)  # its previous life's heartbeat
    assert store.requeue_own_leftovers("w1") == 1
    assert store.client.llen(k.ready) == 1


def test_a_misfired_fire_is_not_queued_under_skip_but_is_under_fire_once(store):
    store.hold_lease("me", 5000)
    store.upsert_job("skip", spec("skip"), 1000, 1)
    store.upsert_job("once", spec("once", misfire="fire_once"), 1000, 1)
    store.upsert_job("ontime", spec("ontime"), 119_000, 1)
    claimed = {job_id: queued for job_id, _, _, queued in store.claim_due("me", 120_000, 100,
                                                                            GRACE)}
    assert claimed == {"skip": False, "once": True, "ontime": True}
    queued = {FireMessage.decode(m).spec.id for m in store.client.lrange(store.keys.ready, 0, -1)}
    assert queued == {"once", "ontime"}


def test_reschedule_queues_skip_records_atomically_and_not_when_fenced(store):
    k = store.keys
    store.hold_lease("me", 5000)
    store.upsert_job("j", spec("j"), 1000, 1)
    store.claim_due("me", 1000, 100, GRACE)
    record = FireMessage.encode_skip(spec("j"), 1000, 3000, 3, "misfire")
    assert store.reschedule("other", [("j", 1000, 4000)], [record]) is None
    assert store.client.llen(k.ready) == 1  # only the claimed fire
    assert store.reschedule("me", [("j", 1000, 4000)], [record]) == 1
    skip = FireMessage.decode(store.client.lrange(k.ready, -1, -1)[0])
    assert skip.skip == {"reason": "misfire", "count": 3, "last": 3000}
    assert skip.execution_id == "j:1000"


def test_due_retries_move_to_ready_and_only_for_the_leader(store):
    k = store.keys
    store.hold_lease("me", 5000)
    store.client.zadd(k.retry, {"early": 1000, "late": 9000})
    assert store.promote_retries("other", 5000, 100) is None
    assert store.promote_retries("me", 5000, 100) == 1
    assert store.client.lrange(k.ready, 0, -1) == [b"early"]
    assert store.client.zrange(k.retry, 0, -1) == [b"late"]


def test_running_mark_excludes_other_fires_but_not_a_redelivery(store):
    assert store.acquire_running("j", "j:1000", 5000)
    assert not store.acquire_running("j", "j:2000", 5000)
    assert store.acquire_running("j", "j:1000", 5000)  # the same fire, redelivered
    store.release_running("j", "j:2000")  # not the holder: no effect
    assert not store.acquire_running("j", "j:2000", 5000)
    store.release_running("j", "j:1000")
    assert store.acquire_running("j", "j:2000", 5000)


def test_hand_back_moves_only_messages_still_in_flight(store):
    k = store.keys
    store.client.rpush(k.inflight("w1"), b"a", b"b")
    assert store.hand_back("w1", [b"a", b"gone"]) == 1
    assert store.client.lrange(k.ready, 0, -1) == [b"a"]
    assert store.client.lrange(k.inflight("w1"), 0, -1) == [b"b"]


def test_enqueue_once_refuses_a_repeated_token(store):
    assert store.enqueue_once("x:4", "m", 60_000)
    assert not store.enqueue_once("x:4", "m", 60_000)
    assert store.client.lrange(store.keys.ready, 0, -1) == [b"m"]


def test_streaks_apply_in_order_and_report_what_ended(store):
    assert store.apply_streaks([("j", "F"), ("j", "F")]) == [1, 2]
    # A success then a new failure in one batch: the failure is not erased.
    assert store.apply_streaks([("j", "S"), ("j", "F")]) == [2, 1]
    assert store.apply_streaks([("j", "S"), ("k", "S")]) == [1, 0]
    assert store.client.hlen(store.keys.fail_streaks) == 0


def test_pop_moves_the_oldest_ready_messages_to_the_tail_of_in_flight(store):
    k = store.keys
    store.client.rpush(k.ready, "m1", "m2", "m3", "m4", "m5")
    assert store.pop_ready("w", 2) == [b"m1", b"m2"]
    assert store.pop_ready("w", 10) == [b"m3", b"m4", b"m5"]
    assert store.pop_ready("w", 10) == []
    # Oldest at the head: acknowledging (LREM from the head) finds it first.
    assert store.client.lrange(k.inflight("w"), 0, -1) == [b"m1", b"m2", b"m3", b"m4", b"m5"]
    assert store.client.llen(k.ready) == 0
