"""The live API (gunicorn, real database and Redis) against its own OpenAPI
document, fuzzed by schemathesis: no request it generates may get a 5xx, and
every answer must match the documented status codes, content type and
schema; 200 examples per operation, and sequences of calls that follow the
document's links (create, then read, change, pause, run, delete...). Runs on
both backends."""
from typing import NamedTuple

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks

from tests.backends import Backend
from tests.support import Api, Processes, free_port, python_env, wait_until

pytestmark = pytest.mark.slow

EXAMPLES = 200   # per operation and mode


@pytest.fixture(scope="module")
def live_api(servers, tmp_path_factory):
    backend = servers.new_backend()
    port = free_port()
    procs = Processes(python_env(**backend.env(), JOBSCHED_API_PORT=port,
                                 JOBSCHED_API_PROCESSES=1, JOBSCHED_LOG_LEVEL="WARNING"),
                      tmp_path_factory.mktemp("contract"))
    procs.start("api", "api")
    url = f"http://127.0.0.1:{port}"
    api = Api(url)
    try:
        wait_until(api.healthy, 30, message="API healthy")
        seed(api)
        yield LiveApi(url, backend, api)
    finally:
        procs.stop_all()


# "positive_data_acceptance" is left out on purpose: JSON Schema cannot say
# which strings are valid cron expressions, so a schema-valid job may still be
# (rightly) refused with a 400 naming the field.
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.response_headers_conformance]


class LiveApi(NamedTuple):
    url: str
    backend: Backend
    api: Api


def seed(api: Api) -> None:
    # Something to find: a job, so that reads of existing resources are exercised too.
    api.create(schedule="*/5 * * * * *", api="http://127.0.0.1:9/contract", name="seed")


def checks_for(path: str) -> list:
    # Health answers 503 by design when a part is down (here: no dispatcher or
    # worker runs); that 503 is documented, which status_code_conformance checks.
    if path in ("/health", "/ready"):
        return [c for c in CHECKS if c is not checks.not_a_server_error]
    return CHECKS


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_matches_its_contract(live_api, mode):
    """Positive: requests the schema allows. Negative: requests it forbids
    (wrong types, missing fields, out-of-range values), which must get a
    documented 4xx and never a 5xx."""
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    fuzzed = []
    for operation in operations:
        chosen = checks_for(operation.path)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case):
            # Called within this iteration, so the loop variable is current.
            case.call_and_validate(checks=chosen)  # noqa: B023
        try:
            fuzz()
            fuzzed.append(operation.label)
        except Unsatisfiable:
            # Negative mode only: nothing in the operation can be wrong (no
            # body, no query; a path id is any string), e.g. GET /health.
            assert mode == GenerationMode.NEGATIVE, operation.label
            assert not (operation.body or operation.query), operation.label
    assert len(fuzzed) >= 11, fuzzed


def valid_timing(job: dict) -> dict:
    kept = {k: v for k, v in job.items() if k not in ("runAt", "startAt", "endAt",
                                                      "alertWebhook")}
    return {**kept, "schedule": "*/5 * * * * *", "timezone": "UTC",
            "api": "http://127.0.0.1:9/contract"}


def test_call_sequences_along_the_links_keep_the_contract(live_api):
    """Stateful: each step follows a link of the previous answer (a created
    job is read, replaced, patched, paused, resumed, run, deleted, its fire
    replayed), so calls reach the jobs that exist, not only 404s."""
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")

    @schema.hook("map_body")
    def mostly_valid_jobs(ctx, body):
        """JSON Schema cannot say which strings are crons: without help, nearly
        every generated job is (rightly) refused and the links never fire.
        Most job bodies get a valid timing and target; the rest stay random."""
        if not isinstance(body, dict) or hash(repr(body)) % 4 == 0:
            return body
        if ctx.operation.label in ("POST /jobs", "PUT /jobs/{jobId}"):
            return valid_timing(body)
        if ctx.operation.label == "POST /jobs:batch" and isinstance(body.get("jobs"), list):
            return {"jobs": [valid_timing(job) for job in body["jobs"]
                             if isinstance(job, dict)] or [valid_timing({})]}
        return body

    class Workflow(schema.as_state_machine()):
        def setup(self):
            # Each sequence starts from the same state. Hypothesis replays a
            # sequence's choices (to explore around it and to shrink); answers
            # that depend on what earlier sequences left behind (a job already
            # queued, a deleted seed) would make a replay take another path.
            live_api.backend.reset()
            seed(live_api.api)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            for check in checks_for(case.operation.path):
                case.validate_response(response, checks=[check], transport_kwargs=kwargs)

    Workflow.run(settings=settings(max_examples=EXAMPLES, stateful_step_count=6,
                                   deadline=None, database=None,
                                   suppress_health_check=list(HealthCheck)))
