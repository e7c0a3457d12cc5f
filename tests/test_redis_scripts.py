"""The Lua scripts against a real Redis server: atomic claim, fencing,
rescheduling that yields to a concurrent API write, the guarded publish,
per-fire marks, and handing on the messages of dead workers."""
import json
import time

from common.message import FireMessage, JobSpec
from tests.support import judged_dead


GRACE = 60_000


def spec(job_id: str, version: int = 1, schedule: str = "* * * * * *", **fields) -> str:
    fields.setdefault("url", "http://127.0.0.1:1/x")
    return JobSpec(id=job_id, version=version, schedule=schedule, timezone="UTC",
                   **fields).to_json()


def put(store, job_id, spec_json, next_fire, version, enabled=True):
    return store.publish_job(job_id, spec_json, version, next_fire, enabled)


def test_lease_is_exclusive_and_renewable(store):
    assert store.hold_lease("a", 1000)
    assert store.hold_lease("a", 1000)
    assert not store.hold_lease("b", 1000)
    store.client.delete(store.keys.leader)
    assert store.hold_lease("b", 1000)
    assert not store.hold_lease("a", 1000)


def test_only_the_holder_releases_the_lease(store):
    assert store.hold_lease("a", 60_000)
    store.release_lease("b")   # not its lease: kept
    assert not store.hold_lease("b", 60_000)
    store.release_lease("a")
    assert store.hold_lease("b", 60_000)


def test_claim_queues_one_message_per_due_job_and_parks_it_in_pending(store):
    k = store.keys
    store.hold_lease("me", 5000)
    put(store, "due", spec("due"), 1000, 1)
    put(store, "later", spec("later"), 5000, 1)
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
        put(store, f"j{i}", spec(f"j{i}"), 1000 + i, 1)
    assert len(store.claim_due("me", 10_000, 10, GRACE)) == 10
    assert len(store.claim_due("me", 10_000, 10, GRACE)) == 10
    assert len(store.claim_due("me", 10_000, 10, GRACE)) == 5
    assert store.client.llen(store.keys.ready) == 25


def test_a_dispatcher_without_the_lease_is_fenced(store):
    store.hold_lease("leader", 5000)
    put(store, "j", spec("j"), 1000, 1)
    assert store.claim_due("ex-leader", 2000, 100, GRACE) is None
    assert store.client.llen(store.keys.ready) == 0
    claimed = store.claim_due("leader", 2000, 100, GRACE)
    assert store.reschedule("ex-leader", [("j", 1000, 2000)]) is None
    assert store.client.zscore(store.keys.pending, "j") == 1000
    assert claimed


def test_reschedule_yields_to_an_api_write_made_after_the_claim(store):
    k = store.keys
    store.hold_lease("me", 5000)
    put(store, "j", spec("j", 1), 1000, 1)
    store.claim_due("me", 1500, 100, GRACE)
    put(store, "j", spec("j", 2, "*/10 * * * * *"), 10_000, 2)  # PUT meanwhile
    assert store.reschedule("me", [("j", 1000, 2000)]) == 0
    assert store.client.zscore(k.schedule, "j") == 10_000
    assert store.client.zscore(k.pending, "j") is None


def test_publish_never_replaces_a_newer_version(store):
    assert put(store, "j", spec("j", 3), 3000, 3) == ("written", None)
    assert put(store, "j", spec("j", 2), 2000, 2) == ("stale", None)
    assert json.loads(store.client.hget(store.keys.jobs, "j"))["v"] == 3
    assert store.client.zscore(store.keys.schedule, "j") == 3000


def test_the_same_version_only_repairs_a_job_off_the_schedule(store):
    k = store.keys
    assert put(store, "j", spec("j", 3), 3000, 3) == ("written", None)
    assert put(store, "j", spec("j", 3), 5000, 3) == ("stale", None)   # no re-timing
    assert store.client.zscore(k.schedule, "j") == 3000
    store.client.zrem(k.schedule, "j")   # e.g. a reconcile of a job Redis lost track of
    assert put(store, "j", spec("j", 3), 5000, 3) == ("written", None)
    assert store.client.zscore(k.schedule, "j") == 5000


def test_an_edit_never_schedules_a_fire_already_claimed(store):
    k = store.keys
    store.hold_lease("me", 5000)
    put(store, "j", spec("j", 1), 10_000, 1)
    store.claim_due("me", 9_500, 100, GRACE, ahead_ms=500)   # claimed ahead of its time
    # An edit within that half second computes the same fire from its clock.
    assert put(store, "j", spec("j", 2), 10_000, 2) == ("refused", 10_000)
    assert put(store, "j", spec("j", 2), 9_000, 2) == ("refused", 10_000)
    assert put(store, "j", spec("j", 2), 11_000, 2) == ("written", None)
    store.reschedule("me", [("j", 10_000, 11_000)])   # yields to the edit's entry
    claimed = store.claim_due("me", 11_000, 100, GRACE)
    assert [(job_id, fire) for job_id, fire, _, _ in claimed] == [("j", 11_000)]
    assert store.client.llen(k.ready) == 2   # 10 s and 11 s, once each


def test_claimed_fires_are_forgotten_a_minute_after_their_time(store):
    store.hold_lease("me", 5000)
    put(store, "old", spec("old"), 1000, 1)
    store.claim_due("me", 1000, 100, GRACE)
    assert store.client.zscore(store.keys.claimed, "old") == 1000
    store.claim_due("me", 1000 + 61_000, 100, GRACE)
    assert store.client.zscore(store.keys.claimed, "old") is None


def test_a_deleted_job_is_never_written_again(store):
    k = store.keys
    put(store, "j", spec("j", 1), 3000, 1)
    store.apply_streaks([("j", "F")])
    store.acquire_running("j", "j:2000", 60_000)
    store.remove_job("j", 1234)
    assert store.client.zscore(k.deleted, "j") == 1234
    assert not store.client.hexists(k.fail_streaks, "j")   # nothing of it is left
    assert not store.client.exists(k.running("j"))
    # An edit whose Redis write lands after the delete: refused.
    assert put(store, "j", spec("j", 2), 4000, 2) == ("deleted", None)
    assert not store.client.hexists(k.jobs, "j")
    assert store.client.zscore(k.schedule, "j") is None
    assert store.prune_tombstones(1235) == 1


def test_a_claimed_last_fire_makes_the_job_finished_until_the_database_says_so(store):
    k = store.keys
    store.hold_lease("me", 5000)
    once = JobSpec(id="o", version=4, schedule="@once", timezone="UTC",
                   url="http://127.0.0.1:1/x", run_at_ms=1000).to_json()
    put(store, "o", once, 1000, 4)
    store.claim_due("me", 1000, 100, GRACE)
    store.reschedule("me", [("o", 1000, None)])
    assert store.finished_jobs() == {"o": (4, 1000)}
    # A later write of the same timing cannot bring the fire back, however
    # long after: the finished entry is its floor.
    store.client.delete(k.claimed)
    assert put(store, "o", once.replace('"v":4', '"v":5'), 1000, 5) == ("refused", 1000)
    assert put(store, "o", once.replace('"v":4', '"v":5'), None, 5) == ("written", None)
    assert store.finished_jobs() == {"o": (5, 1000)}
    store.forget_finished("o", 4, 1000)   # an older entry: kept
    assert store.finished_jobs() == {"o": (5, 1000)}
    store.forget_finished("o", 5, 1000)
    assert store.finished_jobs() == {}
    # A new timing with a fire after it schedules the job again.
    assert put(store, "o", once.replace('"v":4', '"v":6'), 9000, 6) == ("written", None)
    assert store.client.zscore(k.schedule, "o") == 9000


def test_upsert_of_the_earliest_fire_wakes_the_dispatcher(store):
    k = store.keys
    put(store, "late", spec("late"), 9000, 1)
    assert store.client.llen(k.wake) == 1
    store.client.delete(k.wake)
    put(store, "later", spec("later"), 10_000, 1)
    assert store.client.llen(k.wake) == 0
    put(store, "early", spec("early"), 1000, 1)
    assert store.client.llen(k.wake) == 1


def test_disabled_job_leaves_the_schedule(store):
    put(store, "j", spec("j"), 1000, 1)
    put(store, "j", spec("j", 2, enabled=False), None, 2, enabled=False)
    assert store.client.zscore(store.keys.schedule, "j") is None
    assert store.client.hexists(store.keys.jobs, "j")
    assert store.finished_jobs() == {}   # paused, not finished


def in_flight(store, worker, *messages):
    store.client.sadd(store.keys.workers, worker)
    store.client.rpush(store.keys.inflight(worker), *messages)


def test_dead_worker_messages_are_requeued_with_a_redelivery_mark(store):
    k = store.keys
    store.hold_lease("leader", 5000)
    raw = FireMessage.encode("j", spec("j"), 1000)
    in_flight(store, "w1", raw)
    store.client.set(k.heartbeat("w1"), "1", px=5000)
    assert store.release_dead_worker("w1", "leader", 60_000, 0).total == 0  # still alive
    assert store.release_dead_worker("w1", "not-leader", 60_000, 0) is None
    store.client.delete(k.heartbeat("w1"))
    # Found lapsed once: not yet; a beat apart, with no beat between: dead.
    assert store.release_dead_worker("w1", "leader", 60_000, 200).total == 0
    assert store.release_dead_worker("w1", "leader", 60_000, 200).total == 0
    time.sleep(0.25)
    assert store.release_dead_worker("w1", "leader", 60_000, 200).requeued == 1
    (requeued,) = store.client.lrange(k.ready, 0, -1)
    msg = FireMessage.decode(requeued)
    assert (msg.execution_id, msg.redeliveries, msg.attempt) == ("j:1000", 1, 1)
    assert store.client.llen(k.inflight("w1")) == 0
    assert not store.client.sismember(k.workers, "w1")


def test_a_beat_between_the_two_findings_of_a_lapse_keeps_the_worker_alive(store):
    """Redis stopped answering past a heartbeat's lifetime: the leader found
    the lapse, then the worker beat; the lapse found later is a new one."""
    k = store.keys
    store.hold_lease("leader", 5000)
    in_flight(store, "w1", FireMessage.encode("j", spec("j"), 1000))
    assert store.release_dead_worker("w1", "leader", 60_000, 200).total == 0
    store.beat("w1", 1)   # its beat, lapsed again a millisecond later
    time.sleep(0.25)
    assert store.release_dead_worker("w1", "leader", 60_000, 200).total == 0
    assert store.client.llen(k.inflight("w1")) == 1
    time.sleep(0.25)
    assert store.release_dead_worker("w1", "leader", 60_000, 200).requeued == 1


def test_a_dead_workers_marked_calls_go_by_their_type(store):
    """At-least-once: called again (same execution id); at-most-once: never
    again, a lost record instead; a fire another worker holds: dropped."""
    k = store.keys
    store.hold_lease("leader", 5000)
    least = FireMessage.encode("least", spec("least"), 1000)
    most = FireMessage.encode("most", spec("most", type="ATMOST_ONCE"), 1000)
    other = FireMessage.encode("other", spec("other"), 1000)
    unmarked = FireMessage.encode("fresh", spec("fresh", type="ATMOST_ONCE"), 1000)
    in_flight(store, "w1", least, most, other, unmarked)
    assert store.begin_fires("w1", [(FireMessage.decode(m), False) for m in (least, most)]) == \
        ["go", "go"]
    store.client.set(k.fire_mark("other:1000", 1), "w2")
    released = judged_dead(store, "w1")
    assert (released.requeued, released.lost, released.dropped) == (2, 1, 1)
    ready = {m.spec.id: m for m in map(FireMessage.decode, store.client.lrange(k.ready, 0, -1))}
    assert set(ready) == {"least", "most", "fresh"}
    assert ready["least"].redeliveries == 1 and not ready["least"].lost
    assert ready["most"].lost and ready["most"].redeliveries == 0
    assert ready["fresh"].redeliveries == 1 and not ready["fresh"].lost
    assert store.client.get(k.fire_mark("least:1000", 1)) == b"r:1"   # its copy calls again
    assert store.client.get(k.fire_mark("most:1000", 1)) == b"done"
    assert store.client.get(k.fire_mark("other:1000", 1)) == b"w2"


def test_a_restarted_worker_hands_on_its_previous_inflight(store):
    k = store.keys
    raw = FireMessage.encode("j", spec("j"), 1000)
    store.client.rpush(k.inflight("w1"), raw)
    store.client.set(k.heartbeat("w1"), "1", px=5000)  # its previous life's heartbeat
    assert store.release("w1", store.inflight("w1"), 60_000).requeued == 1
    assert store.client.llen(k.ready) == 1


def test_begin_marks_each_fire_once_and_checks_its_job_as_it_is_now(store):
    k = store.keys
    store.client.set(k.initialized, 1)
    put(store, "same", spec("same", 2), 9000, 2)
    put(store, "edited", spec("edited", 3, url="http://127.0.0.1:1/new"), 9000, 3)
    put(store, "paused", spec("paused", 3, enabled=False), None, 3, enabled=False)
    fires = {name: FireMessage.encode(name, spec(name, 2), 1000) for name in
             ("same", "edited", "paused", "gone")}
    manual = FireMessage.encode("paused", spec("paused", 2), 2000, manual=True)
    in_flight(store, "w1", *fires.values(), manual)
    answers = store.begin_fires("w1", [(FireMessage.decode(m), False) for m in
                                       (*fires.values(), manual)])
    assert answers[0] == "go"
    assert json.loads(answers[1])["url"] == "http://127.0.0.1:1/new"   # the current spec
    assert answers[2:] == ["paused", "deleted", answers[4]]
    assert json.loads(answers[4])["v"] == 3   # run now: a paused job runs, as it is now
    # A second message of the same attempts: none may be called.
    in_flight(store, "w2", *fires.values())
    again = store.begin_fires("w2", [(FireMessage.decode(m), False) for m in fires.values()])
    assert again == ["taken"] * 4
    # The next attempt of a fire is a new mark.
    retry = FireMessage.decode(fires["same"]).next_attempt()
    in_flight(store, "w2", retry)
    assert store.begin_fires("w2", [(FireMessage.decode(retry.encode()), False)]) == ["go"]


def test_a_message_asking_again_with_its_ticket_gets_its_first_answer(store):
    """The answer to a first ask can be lost with the connection after Redis
    took the mark (a failover, say): the same message asking again with its
    ticket is answered as the first time, never "taken", so the fire is not
    dropped; another message of the fire (another ticket) is refused."""
    k = store.keys
    store.publish_job("j", spec("j"), 1, None, True)
    store.client.set(k.initialized, 1)
    raw = FireMessage.encode("j", spec("j"), 1000)
    msg = FireMessage.decode(raw)
    assert store.begin_fires("w1", [(msg, False, "w1#7")]) == ["go"]
    assert store.client.get(k.fire_mark("j:1000", 1)) == b"w1#7"
    assert store.begin_fires("w1", [(msg, False, "w1#7")]) == ["go"]   # asked again
    assert store.begin_fires("w1", [(msg, False, "w1#8")]) == ["taken"]   # a copy
    assert store.begin_fires("w1", [(msg, False)]) == ["taken"]
    # The reaper knows a ticket for its worker's: an at-most-once fire so
    # marked is recorded as lost, never handed on to be called again.
    most = FireMessage.encode("m", spec("m", type="ATMOST_ONCE"), 1000)
    in_flight(store, "w1", raw, most)
    store.publish_job("m", spec("m", type="ATMOST_ONCE"), 1, None, True)
    assert store.begin_fires("w1", [(FireMessage.decode(most), False, "w1#9")]) == ["go"]
    store.client.set(k.fire_mark("j:1000", 1), "w10#1")   # another worker's, not w1's
    released = store.release("w1", [raw, most], 60_000)
    assert (released.requeued, released.lost, released.dropped) == (0, 1, 1)
    assert store.client.get(k.fire_mark("m:1000", 1)) == b"done"


def test_only_the_copy_the_reaper_queued_may_call(store):
    """A worker stalled past its heartbeat keeps a message the reaper handed
    on: that one is refused, the copy queued in its place is called."""
    k = store.keys
    store.hold_lease("leader", 5000)
    raw = FireMessage.encode("j", spec("j"), 1000)
    in_flight(store, "w1", raw)
    assert judged_dead(store, "w1").requeued == 1
    (copy,) = store.client.lrange(k.ready, 0, -1)
    assert store.client.get(k.fire_mark("j:1000", 1)) == b"r:1"
    assert store.begin_fires("w1", [(FireMessage.decode(raw), False)]) == ["taken"]
    assert store.begin_fires("w2", [(FireMessage.decode(copy), False)]) == ["go"]
    assert store.client.get(k.fire_mark("j:1000", 1)) == b"w2"
    # Handed on again before its call (its worker died too): still one copy.
    in_flight(store, "w2", copy)
    store.client.delete(k.fire_mark("j:1000", 1))
    store.client.set(k.fire_mark("j:1000", 1), "r:1")
    assert store.release("w2", [copy], 60_000).requeued == 1
    again = store.client.lrange(k.ready, 0, 0)[0]
    assert FireMessage.decode(again).redeliveries == 2
    assert store.begin_fires("w3", [(FireMessage.decode(copy), False)]) == ["taken"]
    assert store.begin_fires("w3", [(FireMessage.decode(again), False)]) == ["go"]


def test_a_message_held_past_a_heartbeat_must_still_be_in_flight(store):
    """Even once the marks of a fire handed on have expired, a worker back
    from a long stall does not call what it no longer holds."""
    k = store.keys
    gone, kept = (FireMessage.encode(n, spec(n, type="ATMOST_ONCE"), 1000) for n in ("g", "k"))
    in_flight(store, "w1", kept)
    assert store.begin_fires("w1", [(FireMessage.decode(gone), True),
                                    (FireMessage.decode(kept), True)]) == ["taken", "go"]
    assert store.client.get(k.fire_mark("g:1000", 1)) is None


def test_while_redis_rebuilds_a_fire_of_an_unknown_job_runs(store):
    raw = FireMessage.encode("j", spec("j"), 1000)   # no "initialized": Redis lost its data
    in_flight(store, "w1", raw)
    assert store.begin_fires("w1", [(FireMessage.decode(raw), False)]) == ["go"]


def test_acknowledge_settles_marks_and_reports_what_was_no_longer_in_flight(store):
    k = store.keys
    a, b = (FireMessage.decode(FireMessage.encode(n, spec(n), 1000)) for n in ("a", "b"))
    in_flight(store, "w1", a.raw)
    store.begin_fires("w1", [(a, False)])
    found = store.acknowledge("w1", [(a, "done"), (b, None)], {"retry-msg": 5000}, 60_000)
    assert found == [True, False]
    assert store.client.get(k.fire_mark("a:1000", 1)) == b"done"
    assert 0 < store.client.pttl(k.fire_mark("a:1000", 1)) <= 60_000
    assert store.client.zscore(k.retry, "retry-msg") == 5000
    assert store.client.llen(k.inflight("w1")) == 0


def test_a_misfired_fire_is_not_queued_under_skip_but_is_under_fire_once(store):
    store.hold_lease("me", 5000)
    put(store, "skip", spec("skip"), 1000, 1)
    put(store, "once", spec("once", misfire="fire_once"), 1000, 1)
    put(store, "ontime", spec("ontime"), 119_000, 1)
    claimed = {job_id: queued for job_id, _, _, queued in store.claim_due("me", 120_000, 100,
                                                                            GRACE)}
    assert claimed == {"skip": False, "once": True, "ontime": True}
    queued = {FireMessage.decode(m).spec.id for m in store.client.lrange(store.keys.ready, 0, -1)}
    assert queued == {"once", "ontime"}


def test_reschedule_queues_skip_records_atomically_and_not_when_fenced(store):
    k = store.keys
    store.hold_lease("me", 5000)
    put(store, "j", spec("j"), 1000, 1)
    store.claim_due("me", 1000, 100, GRACE)
    record = FireMessage.encode_skip("j", spec("j"), 1000, 3000, 3, "misfire")
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


def test_release_moves_only_messages_still_in_flight(store):
    k = store.keys
    a, b, gone = (FireMessage.encode(n, spec(n), 1000) for n in ("a", "b", "gone"))
    store.client.rpush(k.inflight("w1"), a, b)
    assert store.release("w1", [a.encode(), gone.encode()], 60_000).requeued == 1
    assert [FireMessage.decode(m).spec.id for m in store.client.lrange(k.ready, 0, -1)] == ["a"]
    assert store.client.lrange(k.inflight("w1"), 0, -1) == [b.encode()]


def test_enqueue_once_refuses_a_repeated_token(store):
    assert store.enqueue("x", "m", "x:4", 60_000) == "queued"
    assert store.enqueue("x", "m", "x:4", 60_000) == "repeated"
    assert store.enqueue("x", "n") == "queued"
    assert store.client.lrange(store.keys.ready, 0, -1) == [b"m", b"n"]


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


def test_spooled_results_leave_with_their_messages_and_come_back_from_a_dead_writer(store):
    k = store.keys
    store.hold_lease("leader", 5000)
    a = FireMessage.decode(FireMessage.encode("a", spec("a"), 1000).encode())
    in_flight(store, "w1", a.raw)
    # The database is down: the result is kept in the spool as its message leaves.
    assert store.acknowledge("w1", [(a, "done")], {}, 60_000, ["entry-a"]) == [True]
    assert store.client.llen(k.inflight("w1")) == 0
    assert store.client.lrange(k.results, 0, -1) == [b"entry-a"]
    assert store.client.get(k.fire_mark("a:1000", 1)) == b"done"
    # w2 takes it to write, then dies before it is written: handed back.
    assert store.take_results("w2", 10) == [b"entry-a"]
    assert store.take_results("w2", 10) == [b"entry-a"]   # still its own to finish
    store.client.sadd(k.workers, "w2")
    judged_dead(store, "w2")
    assert store.client.lrange(k.results, 0, -1) == [b"entry-a"]
    assert store.take_results("w3", 10) == [b"entry-a"]
    store.results_written("w3")
    assert store.spooled() == 0 and store.take_results("w3", 10) == []
