"""docker-compose.yml for real, as an operator runs it: the jobsched image
built from the Dockerfile, the compose file brought up in a copy of the
repository (`cp .env.example .env`, then `up -d --scale worker=3`) on
stand-in images of python, mysql and redis (tests/containers.py says why),
and 50 every-second jobs calling the demo target while a worker and the
leading dispatcher are SIGKILLed, Redis restarts, and the whole deployment
goes down and up again. Then, on the same images, the same deployment on a
Redis Cluster (docker-compose.cluster.yml: 3 masters, 3 replicas, 8 shards
shared by the 2 dispatchers), up, up again, down and up on new addresses.
Fires are counted from the demo target's log, one window per scenario, the
windows back to back; the table is printed at the end of the run."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from common.message import FireMessage
from tests.containers import (HEADER, NOTES, SECTION, Deployment, StandIns, answer,
                              build_standins, compose_command, copy_deployable, docker,
                              engine_answers, remove_images, run)
from tests.faults import Tally, tally_every_second
from tests.support import free_port, summarize, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

JOBS = 50
WORKERS = 3
LEASE_S = 5.0           # JOBSCHED_LEADER_LEASE_MS as .env.example leaves it
UP = ("--profile", "demo", "up", "-d", "--scale", f"worker={WORKERS}")
DOWN = ("--profile", "demo", "down")
PREFIX = "jobsched:"    # JOBSCHED_REDIS_PREFIX as .env.example leaves it
OPERATIONS = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()


def edit_env(path: Path, **values: str) -> None:
    """Set KEY=value in .env as a user edits it: the line (commented out or
    not) is replaced; a key the file lacks is added."""
    lines = path.read_text().splitlines()
    for key, value in values.items():
        hits = ([i for i, text in enumerate(lines) if text.startswith(f"{key}=")]
                or [i for i, text in enumerate(lines) if re.match(rf"#\s*{key}=", text)])
        if hits:
            lines[hits[0]] = f"{key}={value}"
        else:
            lines.append(f"{key}={value}")
    path.write_text("\n".join(lines) + "\n")


@dataclass
class Images:
    """What every deployment of the module runs on: the stand-ins and the
    jobsched image (built by the first `up`), built once. One deployment is
    up at a time (two would share this machine's 2 cores)."""
    compose: list[str]
    tag: str
    standins: StandIns
    image: str
    live: tuple[Deployment, tuple[str, ...]] | None = None

    def one_at_a_time(self, d: Deployment, down: tuple[str, ...]) -> None:
        """``d`` comes up next: the deployment up before is removed first."""
        self.remove_live()
        self.live = (d, down)

    def remove_live(self) -> None:
        if self.live:
            (d, down), self.live = self.live, None
            remove(d, down)


def remove(d: Deployment, down: tuple[str, ...]) -> None:
    """``down --volumes``: nothing of the project is left."""
    d.api.close()
    d.quietly(*down, "--volumes")
    label = f"label=com.docker.compose.project={d.project}"
    left = docker("ps", "--all", "--quiet", "--filter", label)
    assert not left.split(), f"containers left behind: {left}"
    left = docker("volume", "ls", "--quiet", "--filter", label)
    assert not left.split(), f"volumes left behind: {left}"


@pytest.fixture(scope="module")
def images():
    if not engine_answers():
        if os.environ.get("CI"):
            pytest.fail("no Docker engine answers; .ci/run installs docker.io and starts it")
        pytest.skip("no Docker engine answers here (CI installs one: see .ci/run)")
    compose = compose_command()
    tag = uuid.uuid4().hex[:8]
    started = time.monotonic()
    standins = build_standins(tag)
    summarize(NOTES, "STAND-IN IMAGES: this machine reaches package registries but no image "
                 "registry, so python:3.11-slim, mysql:8.4 and redis:7.4 are stood in for by "
                 "images built here from Debian bookworm packages (debootstrap; Python 3.11, "
                 "MariaDB 10.11, Redis 7.0; tests/standins/), named in .env. "
                 f"Built in {time.monotonic() - started:.0f} s.")
    engine = docker("version", "--format", "{{.Server.Version}}").strip()
    summarize(NOTES, f"Compose: {' '.join(compose)} ({run(*compose, 'version').splitlines()[0]}); "
                 f"Docker engine {engine}")
    built = Images(compose, tag, standins, f"jobsched-test-{tag}:latest")
    try:
        yield built
    finally:
        try:
            built.remove_live()
        finally:
            remove_images(built.image, *standins.all)


def deploy(images: Images, tmp_path_factory, project: str) -> Deployment:
    """A copy of the repository as a user has it after `cp .env.example .env`
    and setting the token, the image names and the demo target's exception."""
    workdir = tmp_path_factory.mktemp(project) / "jobsched"
    copy_deployable(workdir)
    shutil.copyfile(workdir / ".env.example", workdir / ".env")
    token = secrets.token_hex(32)
    port = free_port()
    edit_env(workdir / ".env", JOBSCHED_API_TOKEN=token, MYSQL_PASSWORD=secrets.token_hex(12),
             JOBSCHED_TARGET_ALLOW="demo-target", API_PORT=str(port),
             BASE_IMAGE=images.standins.python, MYSQL_IMAGE=images.standins.mysql,
             REDIS_IMAGE=images.standins.redis, JOBSCHED_IMAGE=images.image)
    d = Deployment(images.compose, workdir, f"jobsched{project}{images.tag}", images.image,
                   f"http://127.0.0.1:{port}")
    d.api = requests.Session()
    d.api.headers["Authorization"] = f"Bearer {token}"
    return d


@pytest.fixture(scope="module")
def deployment(images, tmp_path_factory):
    d = deploy(images, tmp_path_factory, "test")
    images.one_at_a_time(d, DOWN)
    try:
        started = time.monotonic()
        d(*UP)
        summarize(NOTES, f"`up -d --scale worker={WORKERS}` (jobsched image built from the "
                     f"Dockerfile) in {time.monotonic() - started:.0f} s")
        yield d
    finally:
        if images.live and images.live[0] is d:
            images.remove_live()


# -- accounting -----------------------------------------------------------

def fires_of(d, job_ids) -> dict[str, list]:
    calls = defaultdict(list)
    for call in d.demo_calls():
        if call.job_id in job_ids:
            calls[call.job_id].append(call)
    return calls


def every_job_fired(d, since_ms: int = 0) -> dict[str, list] | None:
    """Every job's calls (one read of the log), once each job has a call of a
    fire scheduled at or after ``since_ms``; None until then."""
    fires = fires_of(d, d.jobs)
    if len(fires) == len(d.jobs) and all(any(c.scheduled_ms >= since_ms for c in calls)
                                  for calls in fires.values()):
        return fires
    return None


def account(d, name: str, until_ms: int, may_repeat=frozenset(),
            late_limit_ms: int | None = None) -> Tally:
    """Tally every fire of the jobs from the end of the last window to
    ``until_ms``; a fire may be called twice only if it is in ``may_repeat``
    (the fires a killed worker held), and no later than ``late_limit_ms``
    after its instant, if given."""
    first_ms = d.accounted_ms + 1000
    fires = wait_until(lambda: every_job_fired(d, until_ms), 90, interval=0.5,
                       message=f"{name}: every job fired up to the end of the window")
    total, repeated, lateness = Tally(), set(), []
    for calls in fires.values():
        total.add(tally_every_second(calls, first_ms, until_ms))
        seen = set()
        for c in calls:
            if first_ms <= c.scheduled_ms <= until_ms:
                lateness.append(c.arrived_ms - c.scheduled_ms)
                if c.execution_id in seen:
                    repeated.add(c.execution_id)
                seen.add(c.execution_id)
    lateness.sort()
    summarize(SECTION, f"{name:<28}{total.expected:>10}{total.executed:>10}{total.duplicated:>12}"
              f"{total.lost:>6}{total.early:>7}{lateness[len(lateness) * 99 // 100]:>15}"
              f"{lateness[-1]:>7}", HEADER)
    d.accounted_ms = until_ms
    assert total.lost == 0, (name, total)
    assert total.early == 0, (name, total)
    assert repeated <= set(may_repeat), (name, repeated - set(may_repeat))
    assert late_limit_ms is None or lateness[-1] < late_limit_ms, (name, lateness[-10:])
    return total


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def next_second(after_s: float = 0) -> int:
    return (now_ms() // 1000 + 1 + int(after_s)) * 1000


def api_ok(d) -> bool:
    try:
        return d.api.get(f"{d.url}/health", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def wait_healthy(d, timeout: float = 180, services=("mysql", "redis", "api")) -> None:
    for service in services:
        for container in d.containers(service):
            wait_until(answer(lambda c=container: d.health(c) == "healthy"), timeout,
                       interval=0.5, message=f"{service} healthy")
    wait_until(lambda: api_ok(d), 60, interval=0.5, message="API answering on its port")


def restarted(d, container: str, restarts_before: int) -> bool:
    return d.restarts(container) > restarts_before and d.running(container)


def history(d, job_id: str) -> set[str]:
    ids, cursor = set(), None
    while True:
        page = d.api.get(f"{d.url}/jobs/{job_id}/executions",
                         params={"limit": 100, **({"cursor": cursor} if cursor else {})},
                         timeout=10).json()
        ids |= {e["executionId"] for e in page["executions"]}
        cursor = page.get("nextCursor")
        if not cursor:
            return ids


# -- scenarios, in order, on one deployment -------------------------------

def test_up_runs_migrate_and_every_healthcheck_passes_and_the_api_needs_the_token(deployment):
    d = deployment
    (migrate,) = d.containers("migrate", all_states=True)
    wait_until(answer(lambda: d.inspect(migrate, "{{.State.Status}}") == "exited"), 60,
               message="migrate finished")
    assert d.inspect(migrate, "{{.State.ExitCode}}") == "0"
    wait_healthy(d)
    assert len(d.containers("dispatcher")) == 2
    assert len(d.containers("worker")) == WORKERS
    assert requests.get(f"{d.url}/jobs", timeout=5).status_code == 401
    assert requests.get(f"{d.url}/jobs", timeout=5,
                        headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert d.api.get(f"{d.url}/jobs", timeout=5).status_code == 200

    def deep():
        body = d.api.get(f"{d.url}/health", params={"deep": 1}, timeout=5).json()
        return body["status"] == "ok" and body["workers"]["alive"] == WORKERS and body
    deep_health = wait_until(deep, 60, interval=0.5, message="deep health ok, all workers")
    assert deep_health["leader"]["ok"]


def test_every_second_jobs_miss_nothing_for_30_s(deployment):
    d = deployment
    body = {"jobs": [{"name": f"compose-{i}", "schedule": "* * * * * *",
                      "api": f"http://demo-target:8080/compose/{i}"} for i in range(JOBS)]}
    created = d.api.post(f"{d.url}/jobs:batch", json=body, timeout=30)
    assert created.status_code == 201, created.text
    d.jobs = {job["jobId"] for job in created.json()["jobs"]}
    assert len(d.jobs) == JOBS
    fires = wait_until(lambda: every_job_fired(d), 30, interval=0.5,
                       message="every job fired once")
    d.accounted_ms = max(min(c.scheduled_ms for c in calls) for calls in fires.values())
    account(d, "steady, 30 s", d.accounted_ms + 30_000, late_limit_ms=1000)


def test_a_killed_worker_has_its_fires_redelivered_and_comes_back(deployment):
    d = deployment
    victim = d.containers("worker")[0]
    restarts, pid = d.restarts(victim), d.pid(victim)
    (worker_id,) = [w for w in d.redis("SMEMBERS", PREFIX + "workers").split()
                    if w.startswith(d.hostname(victim) + "-")]
    # Stopped first, so what it held at the kill is known exactly: only these
    # fires may reach the target twice (at-least-once).
    # Killed while it holds fires (between a second's calls it may hold none).
    deadline = time.monotonic() + 30
    while True:
        os.kill(pid, signal.SIGSTOP)
        held = {FireMessage.decode(m.encode()).execution_id for m in
                d.redis("LRANGE", f"{PREFIX}inflight:{worker_id}", "0", "-1").splitlines()
                if m}
        if held or time.monotonic() > deadline:
            break
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.07)
    assert held, "the worker never held a fire"
    os.kill(pid, signal.SIGKILL)   # from the host: a crash, not a manual stop
    wait_until(answer(lambda: restarted(d, victim, restarts)), 60, interval=0.5,
               message="compose's restart policy brings the worker back")
    summarize(NOTES, f"worker SIGKILL: it held {len(held)} fires; restarted by the policy")
    account(d, "worker SIGKILL", next_second(5), may_repeat=held)


def test_a_dispatcher_takes_the_lease_within_the_lease_time_when_the_leader_is_killed(
        deployment):
    d = deployment
    leader, since = d.redis("GET", PREFIX + "leader"), d.redis("GET", PREFIX + "leader:since")
    (victim,) = [c for c in d.containers("dispatcher")
                 if leader.startswith(d.hostname(c) + "-")]
    restarts = d.restarts(victim)
    killed = time.monotonic()
    os.kill(d.pid(victim), signal.SIGKILL)
    wait_until(answer(lambda: d.redis("GET", PREFIX + "leader:since") not in ("", since)),
               LEASE_S + 10, interval=0.1, message="a dispatcher takes the lease")
    takeover = time.monotonic() - killed
    new_leader = d.redis("GET", PREFIX + "leader")
    # The standby, or the killed one restarted by the policy: whichever asks first.
    by = "the standby" if new_leader.split("-")[0] != leader.split("-")[0] else "the restarted one"
    summarize(NOTES, f"leader SIGKILL: lease taken after {takeover:.1f} s by {by}")
    # The lease runs out at most LEASE_S after the kill; a standby asks every
    # 0.5 s; each look at Redis here is a `docker exec` (~0.1-0.2 s).
    assert takeover <= LEASE_S + 1.0, takeover
    wait_until(answer(lambda: restarted(d, victim, restarts)), 60, interval=0.5,
               message="compose's restart policy brings the dispatcher back")
    account(d, "leader SIGKILL", next_second(5))


def jobs_in_redis(d) -> int:
    """Jobs on the schedule or claimed (pending): each job is in exactly one
    of the two, read in one atomic step (a claim moves all due jobs at once,
    and a restart may fall between a claim and its reschedule)."""
    return int(d.redis("EVAL", "return redis.call('ZCARD', KEYS[1]) + "
                       "redis.call('ZCARD', KEYS[2])", "2", PREFIX + "schedule",
                       PREFIX + "pending"))


def test_redis_restarted_keeps_the_schedule_through_aof(deployment):
    d = deployment
    probe = f"{PREFIX}compose-test-probe"
    assert d.redis("SET", probe, "kept") == "OK"
    assert jobs_in_redis(d) == JOBS
    d("restart", "redis")
    wait_until(answer(lambda: d.redis("PING") == "PONG"), 60, interval=0.2,
               message="redis answering again")
    # Read at once, before anything could rebuild it: what AOF kept.
    assert d.redis("GET", probe) == "kept"
    assert jobs_in_redis(d) == JOBS
    d.redis("DEL", probe)
    account(d, "redis restart", next_second(5))


def test_down_then_up_resumes_the_jobs_and_keeps_the_history(deployment):
    d = deployment
    some = sorted(d.jobs)[:3]
    before = {job: history(d, job) for job in some}
    assert all(len(ids) >= 30 for ids in before.values()), {j: len(i) for j, i in before.items()}
    d(*DOWN)
    assert not d.containers("api") and not d.containers("worker")
    volumes = docker("volume", "ls", "--quiet", "--filter",
                     f"label=com.docker.compose.project={d.project}").split()
    assert len(volumes) == 2, volumes   # mysql-data and redis-data kept
    d(*UP)
    wait_healthy(d)
    up_ms = now_ms()
    for job in some:
        assert before[job] <= history(d, job), job
    # Fires due while it was down run late or are skipped, as each job's
    # misfire policy says; counted from here, the jobs fire as before.
    d.accounted_ms = next_second()
    account(d, "down, then up", next_second(10), late_limit_ms=1000)
    caught_up = [c for calls in fires_of(d, d.jobs).values() for c in calls
                 if c.scheduled_ms < up_ms]
    summarize(NOTES, f"down, then up: {len(caught_up)} fires due before the system was back "
                 "were called after it, late (misfire grace)")


def test_the_image_runs_unprivileged(deployment):
    d = deployment
    for service in ("api", "dispatcher", "worker", "demo-target"):
        for container in d.containers(service):
            rows = docker("top", container, "-eo", "pid,uid").splitlines()[1:]
            uids = {row.split()[1] for row in rows}
            assert uids == {"10001"}, (service, rows)
    size = int(docker("image", "inspect", "--format", "{{.Size}}", d.image))
    summarize(NOTES, f"jobsched image: {size / 1e6:.0f} MB (on the stand-in base; "
                 "python:3.11-slim's own base is smaller)")
    assert size < 700e6, size


def test_the_deploy_docs_show_the_commands_the_test_ran(deployment):
    deploy = OPERATIONS[OPERATIONS.index("## Deploy"):]
    for command in dict.fromkeys(deployment.commands):
        shown = command.replace("docker-compose ", "docker compose ")
        assert shown in deploy, f"docs/operations.md's deploy section lacks `{shown}`"


# -- the same on a Redis Cluster: docker-compose.cluster.yml --------------
# Brought up after the deployment above is removed, on the same images.

CLUSTER_FILES = ("-f", "docker-compose.yml", "-f", "docker-compose.cluster.yml")
CLUSTER_WORKERS = 2
CLUSTER_UP = (*CLUSTER_FILES, "--profile", "demo", "up", "-d", "--scale",
              f"worker={CLUSTER_WORKERS}")
CLUSTER_DOWN = (*CLUSTER_FILES, "--profile", "demo", "down")
NODES = ("redis", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6")
SHARDS = 8            # JOBSCHED_SHARDS as docker-compose.cluster.yml has it unless .env sets it
CLUSTER_JOBS = 16     # every shard likely holds some; both dispatchers surely lead some


@pytest.fixture(scope="module")
def cluster(images, tmp_path_factory):
    d = deploy(images, tmp_path_factory, "cluster")
    images.one_at_a_time(d, CLUSTER_DOWN)
    try:
        built = bool(docker("image", "ls", "--quiet", images.image).strip())
        started = time.monotonic()
        d(*CLUSTER_UP)
        summarize(NOTES, f"cluster: `-f docker-compose.yml -f docker-compose.cluster.yml up` "
                     f"in {time.monotonic() - started:.0f} s"
                     + ("" if built else " (with the jobsched image build)"))
        yield d
    finally:
        if images.live and images.live[0] is d:
            images.remove_live()


def node_says(d, node: str, *command: str) -> str:
    return docker("exec", d.one(node), "redis-cli", *command).replace("\r", "")


def cluster_info(d, node: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in node_says(d, node, "cluster", "info").splitlines()
                if ":" in line)


@dataclass(frozen=True)
class Node:
    """A line of CLUSTER NODES."""
    id: str
    address: str        # ip:port@bus-port
    hostname: str       # as the node announces itself
    flags: frozenset
    master: str         # the master's id, for a replica
    link: str
    slots: tuple

    @classmethod
    def parse(cls, line: str) -> "Node":
        node_id, endpoint, flags, master, _, _, _, link, *slots = line.split()
        address, _, hostname = endpoint.partition(",")
        return cls(node_id, address, hostname, frozenset(flags.split(",")), master, link,
                   tuple(slots))


def cluster_ok(d) -> list[Node] | None:
    """The nodes, once every node says cluster_state:ok and knows the 6."""
    for node in NODES:
        info = cluster_info(d, node)
        if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != "6":
            return None
    return [Node.parse(line) for line in node_says(d, "redis", "cluster", "nodes").splitlines()
            if line.strip()]


def shard_leaders(d) -> list[str | None]:
    """Each shard's leader, as GET /stats tells."""
    shards = d.api.get(f"{d.url}/stats", timeout=5).json()["queue"]["shards"]
    return [s["leader"] for s in sorted(shards, key=lambda s: s["shard"])]


def test_cluster_up_forms_3_masters_and_3_replicas_then_starts_jobsched(cluster):
    d = cluster
    for one_shot in ("redis-cluster-init", "migrate"):
        (container,) = d.containers(one_shot, all_states=True)
        wait_until(answer(lambda c=container: d.inspect(c, "{{.State.Status}}") == "exited"),
                   60, message=f"{one_shot} finished")
        assert d.inspect(container, "{{.State.ExitCode}}") == "0", docker("logs", container)
    # Every node's healthcheck: cluster_state:ok.
    wait_healthy(d, services=("mysql", *NODES, "api"))
    nodes = wait_until(answer(lambda: cluster_ok(d)), 30, interval=0.5,
                       message="every node: cluster_state:ok, 6 nodes known")
    assert {n.hostname for n in nodes} == set(NODES)    # each announces its service name
    masters = [n for n in nodes if "master" in n.flags]
    replicas = [n for n in nodes if "slave" in n.flags]
    assert len(masters) == 3 and all(m.slots for m in masters), nodes
    assert len(replicas) == 3 and not any(r.slots for r in replicas), nodes
    assert sorted(r.master for r in replicas) == sorted(m.id for m in masters)   # one each
    assert all(n.link == "connected" and not n.flags & {"fail", "fail?"} for n in nodes), nodes
    assert cluster_info(d, "redis")["cluster_slots_ok"] == "16384"
    assert len(d.containers("dispatcher")) == 2
    assert len(d.containers("worker")) == CLUSTER_WORKERS

    def deep():
        body = d.api.get(f"{d.url}/health", params={"deep": 1}, timeout=5).json()
        return body["status"] == "ok" and body["workers"]["alive"] == CLUSTER_WORKERS and body
    wait_until(deep, 60, interval=0.5, message="deep health ok (every shard led), all workers")


def test_cluster_the_two_dispatchers_share_the_8_shard_leases_4_4(cluster):
    d = cluster

    def split():
        leaders = shard_leaders(d)
        count = Counter(leaders)
        return len(leaders) == SHARDS and None not in count and \
            sorted(count.values()) == [4, 4] and count
    count = wait_until(split, 3 * LEASE_S + 10, interval=0.5,
                       message="8 shards, each led, 4 by each dispatcher")
    # A dispatcher's id: <hostname>-<pid>-<random>.
    assert {leader.rsplit("-", 2)[0] for leader in count} == \
        {d.hostname(c) for c in d.containers("dispatcher")}
    metrics = d.api.get(f"{d.url}/metrics", timeout=5).text
    led = re.findall(r'^jobsched_dispatcher_leader\{(.*)\} 1\.0$', metrics, re.M)
    assert len(led) == SHARDS and all('shard="' in labels for labels in led), led
    summarize(NOTES, f"cluster: the 2 dispatchers lead the {SHARDS} shards "
                 f"{'/'.join(map(str, count.values()))} (GET /stats)")


def test_cluster_every_second_jobs_spread_over_the_masters_and_miss_nothing(cluster):
    d = cluster
    body = {"jobs": [{"name": f"cluster-{i}", "schedule": "* * * * * *",
                      "api": f"http://demo-target:8080/cluster/{i}"}
                     for i in range(CLUSTER_JOBS)]}
    created = d.api.post(f"{d.url}/jobs:batch", json=body, timeout=30)
    assert created.status_code == 201, created.text
    d.jobs = {job["jobId"] for job in created.json()["jobs"]}
    fires = wait_until(lambda: every_job_fired(d), 30, interval=0.5,
                       message="every job fired once")
    d.accounted_ms = max(min(c.scheduled_ms for c in calls) for calls in fires.values())
    account(d, "cluster: steady, 15 s", d.accounted_ms + 15_000, late_limit_ms=1000)

    # The shards' keys on all three masters; jobs in shards each dispatcher leads.
    masters = [n for n in cluster_ok(d) if "master" in n.flags]
    assert all(int(node_says(d, m.hostname, "dbsize")) > 0 for m in masters), masters

    def both_dispatching():
        shards = d.api.get(f"{d.url}/stats", timeout=5).json()["queue"]["shards"]
        return len({s["leader"] for s in shards if s["scheduled"]}) == 2
    wait_until(both_dispatching, 10, interval=0.5,
               message="jobs in shards led by each of the two dispatchers")


def test_cluster_up_again_finds_it_formed_and_changes_nothing(cluster):
    d = cluster
    before = {service: d.containers(service) for service in ("api", "dispatcher", "worker")}
    d(*CLUSTER_UP)
    (init,) = d.containers("redis-cluster-init", all_states=True)
    wait_until(answer(lambda: d.inspect(init, "{{.State.Status}}") == "exited"), 60,
               message="redis-cluster-init finished again")
    assert d.inspect(init, "{{.State.ExitCode}}") == "0", docker("logs", init)
    assert "formed already" in docker("logs", init)
    assert before == {service: d.containers(service) for service in before}
    account(d, "cluster: up again", next_second(3))


def test_cluster_down_then_up_on_new_addresses_resumes(cluster):
    """Every container comes back on another address: the nodes' nodes.conf
    name the old ones, and redis-cluster-init has them meet again."""
    d = cluster
    network = f"{d.project}_default"
    subnet = d.inspect(network, "{{(index .IPAM.Config 0).Subnet}}")
    before = {n.hostname: n.address for n in cluster_ok(d)}
    d(*CLUSTER_DOWN)
    # The old subnet taken meanwhile, so the project's network gets another.
    squat = docker("network", "create", "--subnet", subnet, f"{d.project}-squat").strip()
    try:
        d(*CLUSTER_UP)
    finally:
        docker("network", "rm", squat)
    wait_healthy(d, services=("mysql", *NODES, "api"))
    nodes = wait_until(answer(lambda: cluster_ok(d)), 60, interval=0.5,
                       message="every node: cluster_state:ok again")
    after = {n.hostname: n.address for n in nodes}
    assert set(after) == set(NODES)
    assert all(after[name] != before[name] for name in NODES), (before, after)
    d.accounted_ms = next_second()
    account(d, "cluster: down, up (new IPs)", next_second(5), late_limit_ms=1000)


def test_cluster_down_with_volumes_leaves_nothing(cluster):
    d = cluster
    d(*CLUSTER_DOWN, "--volumes")
    label = f"label=com.docker.compose.project={d.project}"
    assert not docker("ps", "--all", "--quiet", "--filter", label).split()
    assert not docker("volume", "ls", "--quiet", "--filter", label).split()


def test_the_cluster_docs_show_the_commands_the_test_ran(cluster):
    start = OPERATIONS.index("## Compose on a Redis Cluster")
    end = OPERATIONS.find("\n## ", start)
    section = OPERATIONS[start:end if end != -1 else None]
    for command in dict.fromkeys(cluster.commands):
        shown = command.replace("docker-compose ", "docker compose ")
        assert shown in section, f"docs/operations.md's cluster section lacks `{shown}`"
