"""What users do while jobs fire, one scenario at a time, against the real
processes on both backends: edits never duplicate a fire, a delete racing an
edit stops the job, a pause or an edit reaches fires already queued, a
one-time job runs once however slow its target, and an at-most-once call is
never sent twice. (tests/test_history.py mixes all of these at random.)"""
import socket
import threading
import time

import pytest

from tests.support import wait_until

pytestmark = pytest.mark.slow

SLACK_MS = 150   # a call that passed its last check may be written this much later


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def calls_per_fire(received) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in received:
        e = r.headers["X-Jobsched-Execution-Id"]
        counts[e] = counts.get(e, 0) + 1
    return counts


def at_offset(ms: int) -> None:
    """Wait until ``ms`` past a whole second (every-second jobs fire on it)."""
    wait_until(lambda: now_ms() % 1000 >= ms and now_ms() % 1000 < ms + 50, 3, interval=0.002)


def let_time_pass(system, target, fires: int) -> None:
    """Wait for ``fires`` more calls of a control job: observing that nothing
    happens needs time to pass, measured by something that does happen."""
    path = f"/control/{now_ms()}"
    system.api.create(schedule="* * * * * *", api=target.url(path))
    wait_until(lambda: len(target.received(path)) >= fires, fires + 10,
               message=f"{fires} fires of the control job")


def rows(system, job_id, limit=100):
    return system.api.get(f"/jobs/{job_id}/executions?limit={limit}").json()["executions"]


def test_edits_never_duplicate_a_fire(system, target):
    jobs = [system.api.create(schedule="* * * * * *", api=target.url(f"/edit/{i}"))["jobId"]
            for i in range(10)]
    wait_until(lambda: all(target.received(f"/edit/{i}") for i in range(10)), 15,
               message="firing")
    began = now_ms()
    while now_ms() < began + 6000:   # each job renamed again and again, racing its claims
        for job_id in jobs:
            assert system.api.patch(f"/jobs/{job_id}", json={"name": str(now_ms())}) \
                .status_code == 200
    until = now_ms()
    wait_until(lambda: all(any(r.scheduled_ms > until for r in target.received(f"/edit/{i}"))
                           for i in range(10)), 15, message="fires after the edits")
    for i in range(10):
        received = target.received(f"/edit/{i}")
        assert max(calls_per_fire(received).values()) == 1, calls_per_fire(received)
        fires = sorted(r.scheduled_ms for r in received if began <= r.scheduled_ms <= until)
        assert fires == list(range(fires[0], fires[-1] + 1, 1000))   # none lost either


def test_a_delete_racing_an_edit_stops_the_job(system, target):
    jobs = [system.api.create(schedule="* * * * * *", api=target.url(f"/race/{i}"))["jobId"]
            for i in range(10)]
    wait_until(lambda: all(target.received(f"/race/{i}") for i in range(10)), 15,
               message="firing")
    answered = {}

    def race(i, job_id):
        barrier = threading.Barrier(2)

        def patch():
            barrier.wait()
            system.api.patch(f"/jobs/{job_id}", json={"name": "racing"})

        def delete():
            barrier.wait()
            assert system.api.delete(f"/jobs/{job_id}").status_code == 204
        threads = [threading.Thread(target=patch), threading.Thread(target=delete)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        answered[i] = now_ms()
    racers = [threading.Thread(target=race, args=(i, job_id)) for i, job_id in enumerate(jobs)]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    let_time_pass(system, target, 3)   # the fires that would have come: none may
    late = [r for i in range(10) for r in target.received(f"/race/{i}")
            if r.arrived_ms > answered[i] + SLACK_MS]
    assert late == []
    assert all(system.api.get(f"/jobs/{job_id}").status_code == 404 for job_id in jobs)


def test_a_pause_reaches_a_fire_already_queued(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/paused"))["jobId"]
    wait_until(lambda: len(target.received("/paused")) >= 2, 15, message="firing")
    at_offset(650)   # the next fire was claimed 150 ms ago (500 ms ahead)
    fire = now_ms() // 1000 * 1000 + 1000
    assert system.api.post(f"/jobs/{job}/pause").status_code == 200
    paused = now_ms()
    skipped = wait_until(lambda: [r for r in rows(system, job) if r["status"] == "SKIPPED"],
                         10, message="the queued fire recorded as skipped")
    assert skipped[0]["executionId"] == f"{job}:{fire}"
    assert "paused before the call" in skipped[0]["error"]
    assert [r for r in target.received("/paused") if r.arrived_ms > paused + SLACK_MS] == []


def test_an_edit_reaches_a_fire_already_queued(system, target):
    job = system.api.create(schedule="* * * * * *", api=target.url("/before-edit"),
                            body={"v": 1})["jobId"]
    wait_until(lambda: len(target.received("/before-edit")) >= 2, 15, message="firing")
    at_offset(650)
    fire = now_ms() // 1000 * 1000 + 1000
    r = system.api.patch(f"/jobs/{job}", json={"api": target.url("/after-edit"),
                                               "body": {"v": 2}})
    assert r.status_code == 200
    after = wait_until(lambda: target.received("/after-edit"), 10, message="edited fire")
    assert after[0].scheduled_ms == fire and after[0].json() == {"v": 2}
    assert [r for r in target.received("/before-edit") if r.scheduled_ms >= fire] == []


def test_a_one_time_job_with_a_slow_target_runs_once(make_system, target):
    # Reconcile passes every 300 ms: none may queue the fire again while its
    # call (4 s) is in progress or after it.
    system = make_system(JOBSCHED_RECONCILE_INTERVAL_MS=300)
    run_at = now_ms() + 1500
    job = system.api.create(schedule="@once", runAt=_iso(run_at), api=target.url("/sleep/4000/once"),
                            timeoutMs=60_000)["jobId"]
    wait_until(lambda: target.received("/sleep/4000/once"), 10, message="the fire")
    state = wait_until(lambda: system.api.get(f"/jobs/{job}").json()["state"] == "finished"
                       and system.api.get(f"/jobs/{job}").json(), 10, message="finished")
    assert state["nextRun"] is None and state["finishedAt"] == _iso(run_at)
    # Through edits that leave its timing alone, pause and resume: still finished.
    assert system.api.patch(f"/jobs/{job}", json={"name": "renamed"}).json()["state"] == \
        "finished"
    system.api.post(f"/jobs/{job}/pause")
    assert system.api.post(f"/jobs/{job}/resume").json()["state"] == "finished"
    wait_until(lambda: [r for r in rows(system, job) if r["status"] == "SUCCESS"], 15,
               message="its row")
    let_time_pass(system, target, 3)   # reconcile passes, a second call's time
    assert len(target.received("/sleep/4000/once")) == 1
    assert [r["status"] for r in rows(system, job)] == ["SUCCESS"]
    # A new instant is a new fire.
    again = now_ms() + 1000
    r = system.api.patch(f"/jobs/{job}", json={"runAt": _iso(again)})
    assert r.json()["state"] == "active"
    wait_until(lambda: len(target.received("/sleep/4000/once")) == 2, 10, message="new fire")


def test_an_at_most_once_call_is_never_sent_twice(system):
    """A target that reads the request and hangs up without answering."""
    server = socket.create_server(("127.0.0.1", 0))
    requests = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                if data:
                    requests.append(data)
    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/hangs-up"
    job = system.api.create(schedule="@once", runAt=_iso(now_ms() + 1000), api=url,
                            type="ATMOST_ONCE", timeoutMs=5000)["jobId"]
    row = wait_until(lambda: rows(system, job), 15, message="its row")[0]
    assert row["status"] == "FAILED" and "closed before the answer" in row["error"]
    assert row["final"] and row["attempt"] == 1
    assert len(requests) == 1   # recorded after its only call: no second one follows
    server.close()


def _iso(ms: int) -> str:
    from common.timeutil import iso_ms
    return iso_ms(ms)
