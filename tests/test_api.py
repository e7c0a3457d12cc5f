"""The REST API over a real database and a real Redis (Flask's test client,
no processes): contract, validation errors, nothing half-written."""
import re

import pytest
from sqlalchemy import func, select

from api.app import create_app
from common.models import Job
from common.settings import Settings
from tests.support import VALID_JOB

def job_count(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_create_answers_201_with_id_and_next_run_and_schedules_it(client, store):
    r = client.post("/jobs", json=VALID_JOB)
    assert r.status_code == 201
    job = r.get_json()
    assert job["jobId"] and job["type"] == "ATLEAST_ONCE" and job["method"] == "POST"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", job["nextRun"])
    second = int(job["nextRun"][17:19])
    assert second % 5 == 0 and job["nextRun"][19:] == ".000Z"
    assert store.client.zscore(store.keys.schedule, job["jobId"]) is not None
    assert client.get(f"/jobs/{job['jobId']}").get_json() == job


def test_type_defaults_to_atleast_once_and_atmost_once_is_accepted(client):
    r = client.post("/jobs", json={"schedule": "* * * * *", "api": "https://example.test/"})
    assert r.status_code == 201 and r.get_json()["type"] == "ATLEAST_ONCE"
    r = client.post("/jobs", json={**VALID_JOB, "type": "ATMOST_ONCE"})
    assert r.status_code == 201 and r.get_json()["type"] == "ATMOST_ONCE"


def test_five_field_cron_fires_at_second_zero(client):
    job = client.post("/jobs", json={**VALID_JOB, "schedule": "* * * * *"}).get_json()
    assert job["nextRun"][17:] == "00.000Z"


def test_job_fields_round_trip(client):
    payload = {**VALID_JOB, "name": "nightly report", "timezone": "Europe/Paris", "method": "PUT",
               "headers": {"Authorization": "Bearer x"}, "body": {"n": [1, 2]},
               "timeoutMs": 2500, "alertWebhook": "http://127.0.0.1:9/alerts",
               "enabled": True, "maxRetries": 5, "retryBackoffMs": 250,
               "misfire": "fire_once", "concurrency": "forbid"}
    job = client.post("/jobs", json=payload).get_json()
    for key, value in payload.items():
        assert job[key if key != "api" else "api"] == value


@pytest.mark.parametrize("payload, field", [
    ({**VALID_JOB, "schedule": "not a cron"}, "schedule"),
    ({**VALID_JOB, "schedule": "61 * * * * *"}, "schedule"),
    ({"schedule": "* * * * * *"}, "api"),
    ({"api": "http://127.0.0.1/"}, "schedule"),
    ({**VALID_JOB, "api": "ftp://127.0.0.1/file"}, "api"),
    ({**VALID_JOB, "api": "not a url"}, "api"),
    ({**VALID_JOB, "type": "EXACTLY_ONCE"}, "type"),
    ({**VALID_JOB, "timezone": "Mars/Olympus"}, "timezone"),
    ({**VALID_JOB, "method": "TRACE"}, "method"),
    ({**VALID_JOB, "timeoutMs": 0}, "timeoutMs"),
    ({**VALID_JOB, "timeoutMs": 10_000_000}, "timeoutMs"),
    ({**VALID_JOB, "timeoutMs": "100"}, "timeoutMs"),
    ({**VALID_JOB, "headers": {"Bad Name": "x"}}, "headers"),
    ({**VALID_JOB, "headers": {"X": 1}}, "headers.X"),
    ({**VALID_JOB, "alertWebhook": "mailto:ops@example.test"}, "alertWebhook"),
    ({**VALID_JOB, "enabled": "yes"}, "enabled"),
    ({**VALID_JOB, "scheduel": "* * * * * *"}, "scheduel"),
    ({**VALID_JOB, "schedule": "0 0 0 31 2 *"}, "schedule"),  # 31 February never comes
    ({**VALID_JOB, "timezone": "America"}, "timezone"),  # a zone directory, not a zone
    ({**VALID_JOB, "headers": {"X-Note": "café €"}}, "headers"),  # € is not Latin-1
    ({**VALID_JOB, "headers": {"Bad:Name": "x"}}, "headers"),
    ({**VALID_JOB, "headers": {"X-Jobsched-Attempt": "9"}}, "headers"),
    ({**VALID_JOB, "maxRetries": -1}, "maxRetries"),
    ({**VALID_JOB, "maxRetries": 21}, "maxRetries"),
    ({**VALID_JOB, "retryBackoffMs": 0}, "retryBackoffMs"),
    ({**VALID_JOB, "misfire": "catch_up_all"}, "misfire"),
    ({**VALID_JOB, "concurrency": "queue"}, "concurrency"),
    # URLs a worker cannot call, or should not (credentials belong in a header)
    ({**VALID_JOB, "api": "http://127.0.0.1:99999/x"}, "api"),
    ({**VALID_JOB, "api": "http://127.0.0.1:abc/x"}, "api"),
    ({**VALID_JOB, "api": "http://127.0.0.1:0/x"}, "api"),
    ({**VALID_JOB, "api": "http://user:secret@example.com/x"}, "api"),
    ({**VALID_JOB, "api": "http://exa mple.com/x"}, "api"),
    ({**VALID_JOB, "api": "http://example.com/a\r\nX-Smuggled: 1"}, "api"),
    ({**VALID_JOB, "api": "http://bad_host!.com/x"}, "api"),
    ({**VALID_JOB, "api": "http://[::1/x"}, "api"),
    ({**VALID_JOB, "api": "http://" + "a" * 64 + ".com/x"}, "api"),
    ({**VALID_JOB, "api": "http://example.com/" + "x" * 2100}, "api"),
    ({**VALID_JOB, "alertWebhook": "https://example.com:70000/hook"}, "alertWebhook"),
    ({**VALID_JOB, "alertWebhook": "https://u:p@example.com/hook"}, "alertWebhook"),
    # headers that would frame the request, or break its lines
    *[({**VALID_JOB, "headers": {name: "1"}}, "headers") for name in (
        "Host", "Content-Length", "transfer-encoding", "Connection", "Keep-Alive", "TE",
        "Trailer", "Upgrade", "Expect", "Proxy-Authorization")],
    ({**VALID_JOB, "headers": {"X-A": "a\x00b"}}, "headers"),
    ({**VALID_JOB, "headers": {"X-A": "a\x1bb"}}, "headers"),
    ({**VALID_JOB, "headers": {"X-A": "a\nb"}}, "headers"),
])
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(client, sessions, store,
                                                                payload, field):
    r = client.post("/jobs", json=payload)
    assert r.status_code == 400, r.get_json()
    error = r.get_json()["error"]
    assert error["field"] == field
    assert error["code"] == "invalid_request" and error["message"]
    assert job_count(sessions) == 0
    assert store.client.zcard(store.keys.schedule) == 0


def test_international_names_and_ip_literals_are_valid_targets(client):
    for url in ("http://bücher.example/x", "https://[2001:db8::1]:8443/x", "http://10.0.0.1/",
                "http://example.com./x", "http://h/x?q=a%20b#frag"):
        r = client.post("/jobs", json={**VALID_JOB, "api": url, "headers": {"X-Tab": "a\tb"}})
        assert r.status_code == 201, (url, r.get_json())


def test_an_error_in_the_middle_of_a_create_leaves_no_row(client, sessions, store):
    """A 500 before the commit: the transaction is rolled back whole."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    def fail(session, flush_context, instances):
        raise RuntimeError("injected in the middle of the create")
    event.listen(Session, "before_flush", fail)
    try:
        r = client.post("/jobs:batch", json={"jobs": [VALID_JOB, VALID_JOB]})
        assert r.status_code == 500 and r.get_json()["error"]["code"] == "internal_error"
        assert client.post("/jobs", json=VALID_JOB).status_code == 500
    finally:
        event.remove(Session, "before_flush", fail)
    assert job_count(sessions) == 0
    assert store.client.hlen(store.keys.jobs) == 0


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"text"', DEEP,
                                 b'{"schedule": "* * * * *", "api": "http://h/", "body": NaN}'])
def test_a_body_that_is_not_a_json_object_is_a_400(client, sessions, raw):
    r = client.post("/jobs", data=raw, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["error"]["message"]
    assert job_count(sessions) == 0


def test_unknown_job_is_404_everywhere(client):
    missing = "00000000-0000-0000-0000-000000000000"
    for r in (client.get(f"/jobs/{missing}"), client.put(f"/jobs/{missing}", json=VALID_JOB),
              client.get(f"/jobs/{missing}/executions")):
        assert r.status_code == 404
        assert r.get_json()["error"]["code"] == "not_found"


def test_put_replaces_the_job_and_its_schedule(client, store):
    job = client.post("/jobs", json=VALID_JOB).get_json()
    r = client.put(f"/jobs/{job['jobId']}", json={**job, "schedule": "0 0 12 * * *",
                                                  "api": "http://127.0.0.1:9999/other"})
    assert r.status_code == 200, r.get_json()
    changed = r.get_json()
    assert changed["api"] == "http://127.0.0.1:9999/other"
    assert changed["nextRun"][11:] == "12:00:00.000Z"
    assert changed["createdAt"] == job["createdAt"]
    spec = store.client.hget(store.keys.jobs, job["jobId"])
    assert b'"v":2' in spec and b"/other" in spec


def test_a_bad_put_leaves_the_job_unchanged(client, store):
    job = client.post("/jobs", json=VALID_JOB).get_json()
    r = client.put(f"/jobs/{job['jobId']}", json={**VALID_JOB, "schedule": "nope"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "schedule"
    assert client.get(f"/jobs/{job['jobId']}").get_json()["schedule"] == VALID_JOB["schedule"]
    assert b'"v":1' in store.client.hget(store.keys.jobs, job["jobId"])


def test_disabling_a_job_takes_it_off_the_schedule(client, store):
    job = client.post("/jobs", json=VALID_JOB).get_json()
    r = client.put(f"/jobs/{job['jobId']}", json={**VALID_JOB, "enabled": False})
    assert r.get_json()["nextRun"] is None
    assert store.client.zscore(store.keys.schedule, job["jobId"]) is None


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_history_limit_is_validated(client, limit):
    job = client.post("/jobs", json=VALID_JOB).get_json()
    r = client.get(f"/jobs/{job['jobId']}/executions?limit={limit}")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "limit"


def test_unknown_route_and_method_answer_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = client.delete("/health")
    assert r.status_code == 405 and "error" in r.get_json()


def test_oversized_request_is_413(client):
    r = client.post("/jobs", data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                    content_type="application/json")
    assert r.status_code == 413


def test_health_reports_each_dependency(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.get_json()
    assert body["database"]["ok"] and body["redis"]["ok"]


def test_health_is_503_when_redis_does_not_answer(backend):
    from tests.support import free_port
    app = create_app(Settings(database_url=backend.database_url,
                              redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    r = app.test_client().get("/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["redis"]["ok"] is False and body["database"]["ok"] is True


def test_database_down_is_a_503_json_error_and_health_says_so(backend):
    from tests.support import free_port
    url = f"mysql+pymysql://root@127.0.0.1:{free_port()}/none"
    client = create_app(Settings(database_url=url, redis_url=backend.redis_url,
                                 redis_prefix=backend.prefix)).test_client()
    r = client.post("/jobs", json=VALID_JOB)
    assert r.status_code == 503
    assert r.get_json()["error"]["code"] == "dependency_unavailable"
    health = client.get("/health")
    assert health.status_code == 503 and health.get_json()["database"]["ok"] is False


def test_retry_misfire_and_overlap_defaults(client):
    job = client.post("/jobs", json=VALID_JOB).get_json()
    assert (job["maxRetries"], job["retryBackoffMs"], job["misfire"], job["concurrency"]) == \
        (3, 1000, "skip", "allow")


def test_replay_of_unknown_execution_is_404(client):
    r = client.post("/executions/nope:123/replay")
    assert r.status_code == 404 and r.get_json()["error"]["field"] == "executionId"


@pytest.mark.parametrize("query, field", [("status=BROKEN", "status"), ("final=maybe", "final"),
                                          ("limit=1000", "limit")])
def test_execution_filters_are_validated(client, query, field):
    r = client.get(f"/executions?{query}")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == field


def _disable_in_the_past(client, sessions, payload, job_id, seconds_ago):
    """Disable the job, then date that back by ``seconds_ago``; returns the
    instant (ms) it now counts as disabled since."""
    from common.timeutil import now_ms
    assert client.put(f"/jobs/{job_id}", json={**payload, "enabled": False}).status_code == 200
    disabled_at = now_ms() - seconds_ago * 1000
    with sessions() as session, session.begin():
        session.get(Job, job_id).updated_at_ms = disabled_at
    return disabled_at


def _skipped_rows(client, job_id):
    rows = client.get(f"/jobs/{job_id}/executions?limit=100").get_json()["executions"]
    return [r for r in rows if r["status"] == "SKIPPED"]


def test_resume_with_skip_records_the_fires_missed_while_disabled(client, sessions):
    from common.timeutil import now_ms
    job = client.post("/jobs", json={**VALID_JOB, "schedule": "* * * * * *"}).get_json()
    disabled_at = _disable_in_the_past(client, sessions, VALID_JOB, job["jobId"], 10)
    before = now_ms()
    r = client.put(f"/jobs/{job['jobId']}", json={**VALID_JOB, "schedule": "* * * * * *"})
    after = now_ms()
    assert r.status_code == 200
    (row,) = _skipped_rows(client, job["jobId"])
    # Whole seconds after the job was disabled, up to the resume (which lands
    # between before and after; the last one may be the fire taken at once).
    fewest, most = before // 1000 - disabled_at // 1000 - 1, after // 1000 - disabled_at // 1000
    skipped = int(row["error"].split(" ", 1)[0])
    assert fewest <= skipped <= most, (row["error"], fewest, most)
    assert " fire(s) skipped while the job was disabled (misfire=skip)" in row["error"]
    assert row["attempt"] == 0


def test_resume_with_fire_once_runs_one_catch_up_now(client, sessions, store):
    payload = {**VALID_JOB, "schedule": "* * * * * *", "misfire": "fire_once"}
    job = client.post("/jobs", json=payload).get_json()
    _disable_in_the_past(client, sessions, payload, job["jobId"], 10)
    resumed = client.put(f"/jobs/{job['jobId']}", json=payload).get_json()
    # The next fire is the last missed one: already due, so it runs at once.
    assert resumed["nextRun"] < resumed["updatedAt"]
    assert store.client.zscore(store.keys.schedule, job["jobId"]) is not None
    (row,) = _skipped_rows(client, job["jobId"])
    assert " skipped while the job was disabled (misfire=fire_once)" in row["error"]


def test_resume_without_missed_fires_records_nothing(client, sessions):
    payload = {**VALID_JOB, "schedule": "0 0 0 1 1 *"}  # once a year
    job = client.post("/jobs", json=payload).get_json()
    client.put(f"/jobs/{job['jobId']}", json={**payload, "enabled": False})
    client.put(f"/jobs/{job['jobId']}", json=payload)
    assert _skipped_rows(client, job["jobId"]) == []


def test_replay_is_refused_when_the_same_attempt_is_already_queued(client, sessions, store):
    from common.models import Execution
    job = client.post("/jobs", json=VALID_JOB).get_json()
    with sessions() as session, session.begin():
        session.add(Execution(execution_id=f"{job['jobId']}:1000", job_id=job["jobId"],
                              attempt=2, redelivered=False, scheduled_at_ms=1000,
                              started_at_ms=1000, finished_at_ms=1000, status="FAILED",
                              duration_ms=0, final=True))
    first = client.post(f"/executions/{job['jobId']}:1000/replay")
    assert first.status_code == 202 and first.get_json()["attempt"] == 3
    again = client.post(f"/executions/{job['jobId']}:1000/replay")
    assert again.status_code == 409
    assert store.client.llen(store.keys.ready) == 1


def test_a_job_given_nothing_but_its_timing_and_target_holds_the_declared_defaults(
        client, sessions):
    import json
    from common import jobs as m
    from common.message import JobSpec
    job = client.post("/jobs", json={"schedule": VALID_JOB["schedule"], "api": VALID_JOB["api"]})
    assert job.status_code == 201
    body = job.get_json()
    assert (body["timezone"], body["method"], body["type"], body["maxRetries"],
            body["retryBackoffMs"], body["misfire"], body["concurrency"]) == (
        m.DEFAULT_TIMEZONE, m.DEFAULT_METHOD, m.DEFAULT_TYPE, m.DEFAULT_MAX_RETRIES,
        m.DEFAULT_RETRY_BACKOFF_MS, m.DEFAULT_MISFIRE, m.DEFAULT_CONCURRENCY)
    with sessions() as session:
        spec = JobSpec.from_job(session.get(Job, body["jobId"]))
    # The model's row, as a spec, is all defaults: its JSON leaves them out.
    assert set(json.loads(spec.to_json())) == {"v", "schedule", "tz", "url"}
    assert JobSpec.from_dict(json.loads(spec.to_json()), spec.id) == spec
