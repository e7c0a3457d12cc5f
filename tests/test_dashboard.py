"""The dashboard in a real browser: Debian's headless Chromium driven by
Playwright, against the real system (api under gunicorn, dispatcher, two
workers) on both backends. Jobs are created through the form, executions
appear on a job's page, a failing job shows on the failures page where its
alert is acknowledged, jobs are paused and resumed from the table, the
system page shows a healthy system, and an API with a token gets the
sign-in prompt. Each test saves screenshots to artifacts/screenshots/."""
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support import wait_until

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
TIMEOUT_MS = 20_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        # As root (CI), Chromium's sandbox cannot start; the pages are our own.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh tab (its own sessionStorage) that fails the test on a script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    script_errors = []
    tab.on("pageerror", lambda error: script_errors.append(str(error)))
    # Chromium logs every 4xx/5xx answer as "Failed to load resource"; the
    # 400s, 401s and 503s here are expected answers, not script errors.
    tab.on("console", lambda m: script_errors.append(m.text) if m.type == "error"
           and "Failed to load resource" not in m.text else None)
    yield tab
    context.close()
    assert not script_errors, script_errors


def screenshot(tab, name: str, backend) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{backend.name}.png"
    tab.screenshot(path=str(path))
    return path


def job_named(api, name: str) -> dict:
    jobs = api.get("/jobs", params={"name": name}).json()["jobs"]
    assert len(jobs) == 1, jobs
    return jobs[0]


def count_at_least(tab, selector: str, n: int) -> None:
    tab.wait_for_function("([s, n]) => document.querySelectorAll(s).length >= n", arg=[selector, n])


def test_create_a_job_through_the_form_with_errors_shown_by_their_fields(system, target, page):
    page.goto(f"{system.api.base}/#/jobs/new")
    page.fill("#field-name", "dash-form")
    page.fill("#field-schedule", "61 * * * * *")
    page.fill("#field-api", target.url("/ok/form"))
    # Read back while typing (GET /schedules/preview), then refused on submit:
    # the API's 400 names the field, and its message is shown next to it.
    schedule_error = page.locator("[data-error-for=schedule]")
    expect(schedule_error).to_contain_text("'61 * * * * *' is not a valid cron expression")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 400 and answer.value.json()["error"]["field"] == "schedule"
    expect(schedule_error).to_contain_text("'61 * * * * *' is not a valid cron expression")
    expect(page.locator("[data-field=schedule]")).to_have_class(re.compile(r"\binvalid\b"))
    screenshot(page, "form-validation-error", system.backend)

    page.fill("#field-schedule", "*/2 * * * * *")
    expect(page.locator("[data-field=schedule] .reading")).to_contain_text("Every 2 seconds")
    expect(schedule_error).to_be_empty()
    page.locator("details.more summary").click()
    page.fill("#field-timeoutMs", "soon")
    page.click("button[type=submit]")
    expect(page.locator("[data-error-for=timeoutMs]")).to_contain_text(
        "timeoutMs: Input should be a valid integer")
    expect(schedule_error).to_be_empty()
    assert system.api.get("/jobs", params={"name": "dash-form"}).json()["jobs"] == []

    page.fill("#field-timeoutMs", "2500")
    page.fill("#field-headers", '{"X-Team": "ops"}')
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job = job_named(system.api, "dash-form")
    assert (job["schedule"], job["api"], job["timeoutMs"], job["headers"]) == (
        "*/2 * * * * *", target.url("/ok/form"), 2500, {"X-Team": "ops"})
    assert page.url.endswith(job["jobId"])
    expect(page.locator("h1")).to_contain_text("dash-form")
    wait_until(lambda: target.received("/ok/form"), 15, message="the form's job fires")


def test_executions_appear_live_on_the_job_page(system, target, page):
    job = system.api.create(name="dash-every-second", schedule="* * * * * *",
                            api=target.url("/ok/page"))
    page.goto(f"{system.api.base}/#/jobs/{job['jobId']}")
    expect(page.locator("dl.facts")).to_contain_text("Every second")
    count_at_least(page, "tr.execution", 3)
    newest = page.locator("tr.execution").first
    expect(newest.locator(".badge").first).to_have_text("SUCCESS")
    expect(newest.locator(".http")).to_have_text("200")
    seen = newest.get_attribute("data-execution-id")
    recorded = system.api.get(f"/jobs/{job['jobId']}/executions?limit=100").json()["executions"]
    assert seen in {e["executionId"] for e in recorded}
    # New executions come in without a reload, and the charts plot them.
    expect(page.locator("tr.execution").first).not_to_have_attribute("data-execution-id", seen)
    count_at_least(page, "[data-chart=duration] circle", 3)
    count_at_least(page, "[data-chart=lateness] circle", 3)
    screenshot(page, "job-page", system.backend)


def test_edit_run_now_and_delete_from_the_job_page(system, target, page):
    # Names are user data: markup in one is shown as text, never run.
    markup = '<img src=x onerror="window.pwned = 1">'
    job = system.api.create(name=markup, schedule="0 0 0 1 1 *", api=target.url("/ok/edit"))
    page.goto(f"{system.api.base}/#/jobs/{job['jobId']}")
    expect(page.locator("h1")).to_contain_text(markup)
    assert page.evaluate("window.pwned") is None

    page.click("text=Edit")
    expect(page.locator("#field-schedule")).to_have_value("0 0 0 1 1 *")
    expect(page.locator("#field-name")).to_have_value(markup)
    page.fill("#field-name", "dash-edited")
    page.fill("#field-schedule", "0 30 9 * * 1-5")
    expect(page.locator("[data-field=schedule] .reading")).to_contain_text(
        "At 09:30, Monday through Friday")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_contain_text("dash-edited")
    expect(page.locator("dl.facts")).to_contain_text("At 09:30, Monday through Friday")
    edited = system.api.get(f"/jobs/{job['jobId']}").json()
    assert (edited["name"], edited["schedule"]) == ("dash-edited", "0 30 9 * * 1-5")

    page.click("[data-action=run-now]")
    expect(page.locator("#notice")).to_contain_text("Queued a run of dash-edited")
    call = wait_until(lambda: target.received("/ok/edit"), 15, message="the run now call")[0]
    assert call.headers["X-Jobsched-Job-Id"] == job["jobId"]
    expect(page.locator("tr.execution .http").first).to_have_text("200")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-action=delete]")
    expect(page).to_have_url(re.compile(r"#/jobs$"))
    assert system.api.get(f"/jobs/{job['jobId']}").status_code == 404


def test_a_failing_job_on_the_failures_page_its_alert_acknowledged(system, target, page):
    job = system.api.create(name="dash-failing", schedule="* * * * * *", maxRetries=0,
                            api=target.url("/status/500/failing"))
    job_id = job["jobId"]
    page.goto(f"{system.api.base}/#/failures")
    failure = page.locator(f"tr.failure[data-job-id='{job_id}']").first
    expect(failure.locator(".http")).to_have_text("500")
    expect(failure.locator(".job-name")).to_have_text("dash-failing")
    expect(failure).to_contain_text("HTTP 500")
    alert = page.locator(f"tr.alert[data-job-id='{job_id}']").first
    expect(alert).to_contain_text("execution_failed")
    alert_id = alert.get_attribute("data-alert-id")
    screenshot(page, "failures", system.backend)
    alert.locator("[data-action=acknowledge]").click()
    expect(page.locator(f"tr.alert[data-alert-id='{alert_id}']")).to_have_count(0)
    alerts = system.api.get("/alerts", params={"jobId": job_id, "limit": 100}).json()["alerts"]
    assert {a["alertId"]: a["acknowledged"] for a in alerts}[int(alert_id)] is True

    # Stop it from the jobs table.
    page.goto(f"{system.api.base}/#/jobs")
    page.fill("input[type=search]", "dash-failing")
    row = page.locator(f"tr[data-job-id='{job_id}']")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row.locator(".last-status")).to_contain_text("FAILED")
    row.locator("[data-action=pause]").click()
    expect(row.locator(".badge.paused")).to_be_visible()
    assert system.api.get(f"/jobs/{job_id}").json()["enabled"] is False


def test_pause_and_resume_from_the_jobs_table(system, target, page):
    job = system.api.create(name="dash-pausable", schedule="* * * * * *",
                            api=target.url("/ok/pausable"))
    job_id = job["jobId"]
    wait_until(lambda: target.received("/ok/pausable"), 15, message="a first fire")
    page.goto(f"{system.api.base}/#/jobs")
    row = page.locator(f"tr[data-job-id='{job_id}']")
    expect(row.locator(".last-status")).to_contain_text("SUCCESS")
    expect(row.locator(".next-runs")).to_contain_text("next:")
    row.locator("[data-action=pause]").click()
    expect(row.locator(".badge.paused")).to_be_visible()
    expect(row.locator(".next-runs")).to_have_count(0)
    paused = system.api.get(f"/jobs/{job_id}").json()
    assert (paused["enabled"], paused["nextRun"]) == (False, None)
    page.select_option("select[aria-label=Show]", "false")
    expect(row).to_be_visible()
    screenshot(page, "jobs-paused", system.backend)
    page.select_option("select[aria-label=Show]", "true")
    expect(row).to_have_count(0)

    page.select_option("select[aria-label=Show]", "")
    row.locator("[data-action=resume]").click()
    expect(row.locator(".badge.active")).to_be_visible()
    assert system.api.get(f"/jobs/{job_id}").json()["enabled"] is True
    before = len(target.received("/ok/pausable"))
    wait_until(lambda: len(target.received("/ok/pausable")) > before, 15,
               message="fires again after resume")
    expect(page.locator("#notice")).to_be_hidden()  # "Resumed …" goes away by itself
    screenshot(page, "jobs", system.backend)


def test_the_system_page_shows_a_healthy_system_live(system, target, page):
    system.api.create(name="dash-system", schedule="* * * * * *", api=target.url("/ok/system"))
    page.goto(f"{system.api.base}/#/system")
    for component in ("database", "redis", "leader", "workers", "readyQueue"):
        expect(page.locator(f"[data-component={component}]")).to_have_attribute("data-ok", "true")
    expect(page.locator("[data-component=workers]")).to_contain_text("2 alive")
    expect(page.locator("[data-component=leader]")).to_contain_text("dispatcher-1")
    # Rates and percentiles need two readings with calls between them.
    expect(page.locator("[data-card='Executions/s'] .value")).to_have_text(
        re.compile(r"^\d+\.\d/s$"))
    expect(page.locator("[data-card='Lateness p50 / p90 / p99'] .value")).to_have_text(
        re.compile(r"^[\d.]+ m?s / [\d.]+ m?s / [\d.]+ m?s$"))
    expect(page.locator("[data-card='Scheduled jobs'] .value")).not_to_have_text("0")
    screenshot(page, "system", system.backend)


def test_the_system_page_shows_each_shard_and_its_leader(make_system, page):
    own = make_system(workers=1, dispatchers=2, shards=4)
    page.goto(f"{own.api.base}/#/system")
    rows = page.locator("#shards tbody tr")
    expect(rows).to_have_count(4)
    for shard in range(4):
        expect(page.locator(f"#shards tr[data-shard='{shard}']")).to_contain_text(
            re.compile(r"dispatcher-[12]"))
    expect(page.locator("[data-card='Leaders'] .value")).to_contain_text("dispatcher-")
    expect(page.locator("[data-component=leader]")).to_have_attribute("data-ok", "true")
    screenshot(page, "system-shards", own.backend)


def test_an_api_with_a_token_gets_the_sign_in_prompt(make_system, page):
    token = "dash-s3cret"
    own = make_system(workers=0, dispatchers=0, JOBSCHED_API_TOKEN=token)
    api = own.api
    assert api.get("/").status_code == 200                       # the page: public
    assert api.get("/dashboard/static/app.js").status_code == 200
    assert api.get("/jobs").status_code == 401                   # the data: not
    api.http.headers["Authorization"] = f"Bearer {token}"
    job = api.create(name="dash-behind-a-token", schedule="0 0 * * * *",
                     api="http://127.0.0.1:9/never")

    page.goto(f"{api.base}/")
    prompt = page.locator("dialog#sign-in")
    expect(prompt).to_be_visible()
    page.fill("#sign-in-token", "wrong")
    page.press("#sign-in-token", "Enter")
    expect(prompt).to_be_visible()
    expect(page.locator("#sign-in-error")).to_have_text("The API refused this token.")
    screenshot(page, "sign-in", own.backend)
    page.fill("#sign-in-token", token)
    page.press("#sign-in-token", "Enter")
    expect(prompt).to_be_hidden()
    expect(page.locator(f"tr[data-job-id='{job['jobId']}']")).to_contain_text(
        "dash-behind-a-token")
    assert page.evaluate("sessionStorage.getItem('jobsched.apiToken')") == token

    # A token the API stops accepting brings the prompt back.
    page.evaluate("sessionStorage.setItem('jobsched.apiToken', 'revoked')")
    page.goto(f"{api.base}/#/failures")
    expect(prompt).to_be_visible()
    expect(page.locator("#sign-in-error")).to_have_text("The API refused this token.")
    page.fill("#sign-in-token", token)
    page.press("#sign-in-token", "Enter")
    expect(page.locator("h2").first).to_have_text("Unacknowledged alerts")
    expect(prompt).to_be_hidden()
    page.click("#sign-out")
    expect(prompt).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('jobsched.apiToken')") is None
