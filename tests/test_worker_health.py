"""A worker whose result writer dies must not go on taking work it never
records: it exits non-zero (to be started again), its heartbeat stops, and
what it took is left in its in-flight list for the reaper. The worker runs as
a real process with its writer broken on purpose."""
import subprocess
import sys

import pytest

from common.keys import Keys
from common.message import FireMessage, JobSpec
from tests.support import python_env

pytestmark = pytest.mark.slow

BROKEN_WRITER = """
from worker import results

def broken(self):
    raise RuntimeError("the writer broken on purpose")

results.ResultWriter._run = broken
from worker.__main__ import main
main()
"""


def test_a_worker_whose_writer_died_exits_non_zero_and_takes_no_work(backend):
    keys, redis = Keys(backend.prefix), backend.redis()
    spec = JobSpec(id="j", version=1, schedule="* * * * * *", timezone="UTC",
                   url="http://127.0.0.1:1/")
    redis.rpush(keys.ready, FireMessage.encode(spec.id, spec.to_json(), 1000))
    env = python_env(**backend.env(), JOBSCHED_WORKER_ID="w-broken",
                     JOBSCHED_WORKER_HEARTBEAT_TTL_MS=1500)
    done = subprocess.run([sys.executable, "-c", BROKEN_WRITER], env=env, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "the result writer stopped on an unexpected error" in done.stderr
    assert "an essential thread died; exiting" in done.stderr
    # Not taken, or left in its in-flight list for the reaper; never lost.
    assert redis.llen(keys.ready) + redis.llen(keys.inflight("w-broken")) == 1
    redis.close()
