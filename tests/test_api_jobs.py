"""The job lifecycle and history endpoints over a real database and Redis."""
import threading

import pytest

from common.message import FireMessage
from common.models import Alert
from tests.support import VALID_JOB, create_job, make_client

def test_list_filters_and_pages_with_a_stable_cursor(client):
    ids = [create_job(client, name=f"report {i}", enabled=i % 2 == 0)["jobId"] for i in range(7)]
    seen, cursor = [], None
    while True:
        query = "/jobs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query).get_json()
        seen += [job["jobId"] for job in page["jobs"]]
        create_job(client, name="added while paging")  # newer rows must not shift the pages
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert [i for i in seen if i in ids] == list(reversed(ids))
    enabled = client.get("/jobs?enabled=true&name=report").get_json()["jobs"]
    assert sorted(j["jobId"] for j in enabled) == sorted(ids[0::2])
    assert client.get("/jobs?name=report 3").get_json()["jobs"][0]["jobId"] == ids[3]


@pytest.mark.parametrize("query, field", [("cursor=garbage", "cursor"), ("limit=0", "limit"),
                                          ("enabled=maybe", "enabled")])
def test_list_parameters_are_validated(client, query, field):
    r = client.get(f"/jobs?{query}")
    assert r.status_code == 400 and r.get_json()["error"]["field"] == field


def test_patch_changes_only_the_given_fields_and_validates_the_result(client, store):
    job = create_job(client, name="before", headers={"X-A": "1"})
    r = client.patch(f"/jobs/{job['jobId']}", json={"name": "after", "maxRetries": 0})
    assert r.status_code == 200
    patched = r.get_json()
    assert (patched["name"], patched["maxRetries"], patched["headers"], patched["schedule"]) == \
        ("after", 0, {"X-A": "1"}, VALID_JOB["schedule"])
    bad = client.patch(f"/jobs/{job['jobId']}", json={"schedule": "nope"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "schedule"
    unknown = client.patch(f"/jobs/{job['jobId']}", json={"colour": "red"})
    assert unknown.status_code == 400 and unknown.get_json()["error"]["field"] == "colour"
    assert client.get(f"/jobs/{job['jobId']}").get_json()["name"] == "after"


def test_delete_removes_the_job_and_its_schedule_but_keeps_history(client, store):
    job = create_job(client)
    assert client.delete(f"/jobs/{job['jobId']}").status_code == 204
    assert client.get(f"/jobs/{job['jobId']}").status_code == 404
    assert client.delete(f"/jobs/{job['jobId']}").status_code == 404
    assert store.client.zscore(store.keys.schedule, job["jobId"]) is None
    assert not store.client.hexists(store.keys.jobs, job["jobId"])


def test_pause_and_resume(client, store):
    job = create_job(client)
    paused = client.post(f"/jobs/{job['jobId']}/pause").get_json()
    assert paused["enabled"] is False and paused["nextRun"] is None
    assert store.client.zscore(store.keys.schedule, job["jobId"]) is None
    resumed = client.post(f"/jobs/{job['jobId']}/resume").get_json()
    assert resumed["enabled"] is True and resumed["nextRun"]
    assert store.client.zscore(store.keys.schedule, job["jobId"]) is not None


def test_run_now_queues_one_fire(client, store):
    job = create_job(client, schedule="0 0 0 1 1 *")
    r = client.post(f"/jobs/{job['jobId']}/run")
    assert r.status_code == 202
    queued = r.get_json()
    (raw,) = store.client.lrange(store.keys.ready, 0, -1)
    msg = FireMessage.decode(raw)
    assert msg.execution_id == queued["executionId"] and msg.attempt == 1


def test_next_previews_the_fire_times(client):
    job = create_job(client, schedule="*/15 * * * * *")
    runs = client.get(f"/jobs/{job['jobId']}/next?count=4").get_json()["nextRuns"]
    seconds = [int(r[17:19]) for r in runs]
    assert len(runs) == 4 and all(s % 15 == 0 for s in seconds)
    assert client.get(f"/jobs/{job['jobId']}/next?count=101").status_code == 400


def test_one_time_job_runs_once_at_run_at(client):
    job = create_job(client, schedule="@once", runAt="2030-01-02T03:04:05Z")
    assert job["nextRun"] == "2030-01-02T03:04:05.000Z" and job["runAt"] == job["nextRun"]
    runs = client.get(f"/jobs/{job['jobId']}/next?count=5").get_json()["nextRuns"]
    assert runs == ["2030-01-02T03:04:05.000Z"]


def test_window_bounds_the_fires(client):
    job = create_job(client, schedule="0 0 12 * * *", startAt="2030-01-01T00:00:00Z",
                 endAt="2030-01-03T23:00:00+00:00")
    runs = client.get(f"/jobs/{job['jobId']}/next?count=10").get_json()["nextRuns"]
    assert runs == ["2030-01-01T12:00:00.000Z", "2030-01-02T12:00:00.000Z",
                    "2030-01-03T12:00:00.000Z"]


def test_success_statuses_round_trip(client):
    job = create_job(client, successStatus=[200, "300-303", 404])
    assert job["successStatus"] == ["200", "300-303", "404"]
    assert create_job(client)["successStatus"] == ["200-299"]


@pytest.mark.parametrize("fields, field", [
    ({"schedule": "@once"}, "runAt"),
    ({"runAt": "2030-01-01T00:00:00Z"}, "runAt"),
    ({"schedule": "@once", "runAt": "2030-01-01T00:00:00Z", "endAt": "2030-02-01T00:00:00Z"},
     "endAt"),
    ({"startAt": "2030-01-02T00:00:00Z", "endAt": "2030-01-01T00:00:00Z"}, "endAt"),
    ({"startAt": "tomorrow"}, "startAt"),
    ({"startAt": "2030-01-01T00:00:00"}, "startAt"),  # no time zone
    ({"successStatus": [99]}, "successStatus"),
    ({"successStatus": ["300-200"]}, "successStatus"),
    ({"successStatus": []}, "successStatus"),
    ({"api": "http://169.254.169.254/latest/meta-data"}, "api"),
    ({"alertWebhook": "http://[fd00:ec2::254]/"}, "alertWebhook"),
])
def test_new_fields_are_validated(client, fields, field):
    r = client.post("/jobs", json={**VALID_JOB, **fields})
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["field"] == field


def test_a_body_sent_as_something_else_than_json_is_415(client):
    r = client.post("/jobs", data="schedule=x", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415 and r.get_json()["error"]["code"] == "unsupported_media_type"


def test_batch_creates_all_or_nothing(client, sessions):
    jobs = [{**VALID_JOB, "name": f"b{i}"} for i in range(25)]
    r = client.post("/jobs:batch", json={"jobs": jobs})
    assert r.status_code == 201 and len(r.get_json()["jobs"]) == 25
    jobs[17] = {**VALID_JOB, "schedule": "bad"}
    r = client.post("/jobs:batch", json={"jobs": jobs})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "jobs[17].schedule"
    assert len(client.get("/jobs?limit=100").get_json()["jobs"]) == 25
    too_many = client.post("/jobs:batch", json={"jobs": [VALID_JOB] * 1001})
    assert too_many.status_code in (400, 413)


def test_batch_of_a_thousand(client):
    r = client.post("/jobs:batch", json={"jobs": [VALID_JOB] * 1000})
    assert r.status_code == 201 and len(r.get_json()["jobs"]) == 1000


def test_alert_acknowledgement_and_filters(client, sessions):
    job = create_job(client)
    with sessions() as session, session.begin():
        for i in range(3):
            session.add(Alert(job_id=job["jobId"], execution_id=f"x:{i}", kind="execution_failed",
                              message="m", created_at_ms=i, acknowledged=False))
    alerts = client.get(f"/alerts?jobId={job['jobId']}").get_json()["alerts"]
    r = client.post(f"/alerts/{alerts[0]['alertId']}/ack")
    assert r.status_code == 200 and r.get_json()["acknowledged"] is True
    open_alerts = client.get(f"/alerts?jobId={job['jobId']}&acknowledged=false").get_json()
    assert len(open_alerts["alerts"]) == 2
    assert client.post("/alerts/999999/ack").status_code == 404
    page = client.get(f"/alerts?jobId={job['jobId']}&limit=2").get_json()
    rest = client.get(f"/alerts?jobId={job['jobId']}&cursor={page['nextCursor']}").get_json()
    assert len(page["alerts"]) == 2 and len(rest["alerts"]) == 1 and rest["nextCursor"] is None


def test_token_is_required_when_configured_except_for_health(backend):
    client = make_client(backend, api_token="s3cret")
    assert client.get("/jobs").status_code == 401
    assert client.get("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/health").status_code == 200
    doc = client.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).get_json()
    assert doc["security"] == [{"bearer": []}]


def test_two_tokens_are_accepted_while_rotating(backend):
    client = make_client(backend, api_token="new-one, old-one")
    for token in ("new-one", "old-one"):
        assert client.get("/jobs", headers={"Authorization": f"Bearer {token}"}).status_code \
            == 200
    assert client.get("/jobs", headers={"Authorization": "Bearer new-one,"}).status_code == 401
    assert client.get("/jobs", headers={"Authorization": "Bearer "}).status_code == 401


def test_two_clients_writing_one_job_leave_database_and_redis_agreeing(backend, store):
    client = make_client(backend)
    job = create_job(client)

    statuses = []

    def writer(own, name):
        for i in range(15):
            r = own.put(f"/jobs/{job['jobId']}", json={**VALID_JOB, "name": f"{name}-{i}"})
            statuses.append(r.status_code)
    # Apps built here, not in the threads (see the concurrent patches test).
    threads = [threading.Thread(target=writer, args=(make_client(backend), n))
               for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert statuses == [200] * 30
    final = client.get(f"/jobs/{job['jobId']}").get_json()
    spec = FireMessage.decode(
        FireMessage.encode(job["jobId"], store.client.hget(store.keys.jobs, job["jobId"]).decode(),
                           0).encode())
    assert spec.spec.version == 31  # 1 + 30 writes, each committed once
    assert final["name"] in {"a-14", "b-14"}


def test_openapi_and_docs_are_served(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    assert "/jobs/{jobId}/next" in doc["paths"] and "/jobs:batch" in doc["paths"]
    assert doc["components"]["schemas"]["JobIn"]["required"] == ["schedule", "api"]
    r = client.get("/docs/")
    assert r.status_code == 200 and b"swagger" in r.data.lower()


def test_execution_history_filters_and_pages(client, sessions):
    from common.models import Execution
    job = create_job(client)
    with sessions() as session, session.begin():
        for i in range(9):
            session.add(Execution(
                execution_id=f"{job['jobId']}:{1000 * i}", job_id=job["jobId"], attempt=1,
                redelivered=False, scheduled_at_ms=1000 * i, started_at_ms=1000 * i,
                finished_at_ms=1000 * i, duration_ms=0, final=False,
                status="FAILED" if i % 3 == 0 else "SUCCESS"))
    base = f"/jobs/{job['jobId']}/executions"
    seen, cursor = [], None
    while True:
        page = client.get(base + "?limit=4" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [e["scheduledAt"] for e in page["executions"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == 9 and seen == sorted(seen, reverse=True)
    failed = client.get(base + "?status=FAILED&limit=100").get_json()["executions"]
    assert [e["status"] for e in failed] == ["FAILED"] * 3
    across = client.get(f"/executions?jobId={job['jobId']}&status=SUCCESS&limit=4").get_json()
    rest = client.get(f"/executions?jobId={job['jobId']}&status=SUCCESS&limit=4"
                      f"&cursor={across['nextCursor']}").get_json()
    ids = [e["executionId"] for e in across["executions"] + rest["executions"]]
    assert len(ids) == 6 == len(set(ids))


@pytest.mark.parametrize("fields, field", [
    ({"endAt": "0001-01-01T00:00:00+01:00"}, "endAt"),
    ({"schedule": "@once", "runAt": "9999-12-31T23:59:59-01:00"}, "runAt"),
    ({"startAt": "9999-12-31T23:59:30Z"}, "startAt"),
    ({"headers": {"X-A": " padded"}}, "headers"),
])
def test_out_of_range_instants_and_padded_headers_are_400(client, sessions, fields, field):
    r = client.post("/jobs", json={**VALID_JOB, **fields})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == field
    assert client.get("/jobs").get_json()["jobs"] == []


@pytest.mark.parametrize("values", [[10 ** 30, "x"], [1, "\ud800"], ["zzz", 5], [True, "x"]])
def test_tampered_cursors_are_400(client, values):
    import base64
    import json
    cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode()
    for path in ("/jobs", "/executions", "/alerts"):
        r = client.get(f"{path}?cursor={cursor}")
        assert r.status_code == 400 and r.get_json()["error"]["field"] == "cursor", path


def test_an_infinite_number_in_a_body_is_refused(client):
    r = client.post("/jobs", data='{"schedule": "* * * * *", "api": "http://h/", "body": 1e400}',
                    content_type="application/json")
    assert r.status_code == 400


def test_single_success_codes_survive_pause_and_patch(client):
    job = create_job(client, successStatus=[204])
    assert client.post(f"/jobs/{job['jobId']}/pause").status_code == 200
    r = client.patch(f"/jobs/{job['jobId']}", json={"name": "x"})
    assert r.status_code == 200 and r.get_json()["successStatus"] == ["204"]


def test_a_one_job_batch_names_its_field_with_the_index(client):
    r = client.post("/jobs:batch", json={"jobs": [{**VALID_JOB, "timeoutMs": 10 ** 9}]})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "jobs[0].timeoutMs"


def test_405_says_which_methods_are_allowed(client):
    r = client.delete("/jobs")
    assert r.status_code == 405 and "POST" in r.headers["Allow"]


def test_concurrent_patches_of_different_fields_are_both_kept(backend):
    client = make_client(backend)
    job = create_job(client)

    answers = []

    def patch(own, field, value):
        for _ in range(10):
            r = own.patch(f"/jobs/{job['jobId']}", json={field: value})
            answers.append((r.status_code, r.get_json().get("error")))
    # Each thread its own app, built here: building apps in threads at once
    # can trip CPython 3.11's ast.parse ("AST constructor recursion depth
    # mismatch") inside werkzeug's route compiler.
    threads = [threading.Thread(target=patch, args=(make_client(backend), *a))
               for a in (("name", "n"), ("maxRetries", 7))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [(200, None)] * 20
    final = client.get(f"/jobs/{job['jobId']}").get_json()
    assert (final["name"], final["maxRetries"]) == ("n", 7)
