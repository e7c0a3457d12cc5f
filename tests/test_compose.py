"""docker-compose.yml without a Docker engine: its structure is checked, and
each service's exact command runs here with the settings of .env.example,
the service names ``mysql`` and ``redis`` mapped to this machine's MariaDB
and Redis (127.0.0.1), and /app (the image's working directory) mapped to
the repository. The api answers its healthcheck, a dispatcher takes the
lease and the workers run a job."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pymysql
import pytest
import redis
import yaml

from tests.containers import compose_command
from tests.support import Api, Target, free_port, python_env, wait_until

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# The override that puts the same deployment on a Redis Cluster (-f after it).
CLUSTER = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
NODES = ("redis", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6")
JOBSCHED = ("migrate", "api", "dispatcher", "worker")
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


class Refused(Exception):
    """Compose's ${VAR:?message} met an unset or empty VAR."""


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message}."""
    def one(m):
        name, kind, text = m.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise Refused(f"{name}: {text}")
        return text or ""
    if isinstance(value, str):
        return _VARIABLE.sub(one, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def test_services_dependencies_and_healthchecks():
    assert set(SERVICES) == {"mysql", "redis", "migrate", "api", "dispatcher", "worker",
                             "demo-target"}
    mysql, store = SERVICES["mysql"], SERVICES["redis"]
    assert re.fullmatch(r"mysql:8(\.\d+)*", interpolate(mysql["image"], {}))
    assert any(v.endswith(":/var/lib/mysql") for v in mysql["volumes"])
    assert "mysqladmin" in mysql["healthcheck"]["test"]
    assert re.fullmatch(r"redis:7(\.\d+)*", interpolate(store["image"], {}))
    assert "--appendonly" in store["command"] and "yes" in store["command"]
    assert any(v.endswith(":/data") for v in store["volumes"])
    assert "ping" in store["healthcheck"]["test"]
    assert SERVICES["migrate"]["command"] == ["migrate"]
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"]["mysql"]["condition"] == "service_healthy"
    for name in ("api", "dispatcher", "worker"):
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["mysql"]["condition"] == "service_healthy", name
    api = SERVICES["api"]
    assert any(p.endswith(":8000") for p in api["ports"])
    assert "/health" in " ".join(api["healthcheck"]["test"])
    assert "gunicorn.conf.py" in " ".join(api["command"])
    assert SERVICES["dispatcher"]["deploy"]["replicas"] == 2
    worker = SERVICES["worker"]
    assert "container_name" not in worker and "ports" not in worker   # --scale worker=N
    assert worker["stop_grace_period"]
    for name in JOBSCHED:
        env = SERVICES[name]["environment"]
        assert "@mysql:3306/" in env["JOBSCHED_DATABASE_URL"]
        assert env["JOBSCHED_REDIS_URL"].startswith("redis://redis:6379")
        # The short form: docker-compose 1.29 rejects the long one (v2.24+).
        assert SERVICES[name]["env_file"] == ".env"


def test_env_example_covers_every_setting_and_variable():
    documented = set(re.findall(r"^#?\s*(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    settings = set(re.findall(r'"(JOBSCHED_\w+)"', (ROOT / "common/settings.py").read_text()))
    per_container = {"JOBSCHED_DATABASE_URL", "JOBSCHED_REDIS_URL", "JOBSCHED_API_HOST",
                     "JOBSCHED_API_PORT", "JOBSCHED_WORKER_ID", "JOBSCHED_DISPATCHER_ID"}
    assert settings - per_container - documented == set()
    used = {variable for name in ("docker-compose.yml", "docker-compose.cluster.yml")
            for variable in _VARIABLE.findall((ROOT / name).read_text())}
    assert {name for name, _, _ in used} - documented == set()


def test_env_example_as_copied_carries_no_usable_secret():
    """cp .env.example .env, unedited: compose refuses to start the API, with
    a message saying what to set; the token and webhook secret are empty."""
    env = env_example()
    assert not env.get("JOBSCHED_API_TOKEN") and not env.get("JOBSCHED_WEBHOOK_SECRET")
    with pytest.raises(Refused, match="set JOBSCHED_API_TOKEN in .env"):
        interpolate(SERVICES["api"]["environment"], env)
    # Jobs in compose call the public internet only, unless allowed by name.
    assert SERVICES["worker"]["environment"]["JOBSCHED_TARGET_DENY"] == \
        "${JOBSCHED_TARGET_DENY:-private}"


def test_the_api_refuses_to_listen_beyond_loopback_without_a_token(tmp_path):
    gunicorn = local(command_of("api"), free_port())
    for host, extra, refused in (("0.0.0.0", {}, True), ("127.0.0.1", {}, False),
                                 ("0.0.0.0", {"JOBSCHED_AUTH": "none"}, False)):
        env = python_env(JOBSCHED_API_HOST=host, JOBSCHED_API_PORT=free_port(),
                         JOBSCHED_DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite", **extra)
        proc = subprocess.Popen(gunicorn + ["--check-config"], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = proc.communicate(timeout=60)[0].decode()
        assert (proc.returncode != 0) == refused, (host, extra, out[-2000:])
        assert ("without JOBSCHED_API_TOKEN" in out) == refused, out[-2000:]


def test_dockerfile_is_slim_non_root_and_installs_the_package_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", dockerfile, re.M)
    user = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    installs = re.findall(r"pip install ([^&\n]+)", dockerfile)
    assert installs and all(i.strip() == "." for i in installs)   # no -e, no [test]
    assert "COPY deploy deploy" in dockerfile


@pytest.fixture
def compose_env():
    """.env.example as a user would edit it: their own database and user on
    this MariaDB, a key prefix of their own on this Redis."""
    tag = uuid.uuid4().hex[:8]
    env = {**env_example(), "MYSQL_DATABASE": f"jobsched_compose_{tag}",
           "MYSQL_USER": f"jc_{tag}", "MYSQL_PASSWORD": f"pw-{tag}",
           "JOBSCHED_REDIS_PREFIX": f"jobsched-compose-{tag}:",
           "JOBSCHED_API_TOKEN": f"token-{uuid.uuid4().hex}",
           # the test's target listens on loopback: an internal target, allowed
           "JOBSCHED_TARGET_ALLOW": "127.0.0.1"}
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {env['MYSQL_DATABASE']}")
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"CREATE USER '{env['MYSQL_USER']}'@'{host}' "
                        f"IDENTIFIED BY '{env['MYSQL_PASSWORD']}'")
            cur.execute(f"GRANT ALL ON {env['MYSQL_DATABASE']}.* TO "
                        f"'{env['MYSQL_USER']}'@'{host}'")
    yield env
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {env['MYSQL_DATABASE']}")
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"DROP USER IF EXISTS '{env['MYSQL_USER']}'@'{host}'")
    admin.close()
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=env["JOBSCHED_REDIS_PREFIX"] + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def local(words: list[str], api_port: int) -> list[str]:
    """A container's command as it runs here."""
    out = []
    for word in words:
        word = word.replace("/app/", f"{ROOT}/").replace("127.0.0.1:8000",
                                                         f"127.0.0.1:{api_port}")
        out.append(word)
    if (BIN / out[0]).exists():   # jobsched, gunicorn, python: the project's venv
        out[0] = str(BIN / out[0])
    return out


def service_env(name: str, env: dict[str, str], api_port: int) -> dict[str, str]:
    service = SERVICES[name]
    variables = {k: v for k, v in env.items() if k.startswith("JOBSCHED_")}  # env_file
    variables.update(interpolate(service["environment"], env))
    for key, value in variables.items():   # service names -> this machine
        variables[key] = value.replace("@mysql:", "@127.0.0.1:").replace(
            "redis://redis:", "redis://127.0.0.1:")
    if name == "api":
        variables["JOBSCHED_API_PORT"] = str(api_port)   # the "ports" mapping
    return python_env(**variables)


def command_of(name: str) -> list[str]:
    service = SERVICES[name]
    entrypoint = service.get("entrypoint", ["jobsched"])   # the image's ENTRYPOINT
    return entrypoint + service["command"]


@pytest.mark.slow
def test_each_service_runs_its_command_as_written(compose_env, tmp_path):
    api_port = free_port()
    logs, procs = [], []

    def start(name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}-{len(procs)}.log", "wb")
        logs.append(log)
        proc = subprocess.Popen(local(command_of(name), api_port), cwd=tmp_path,
                                env=service_env(name, compose_env, api_port),
                                stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    target = Target()
    try:
        migrate = subprocess.run(local(command_of("migrate"), api_port), cwd=tmp_path,
                                 env=service_env("migrate", compose_env, api_port),
                                 capture_output=True, timeout=120)
        assert migrate.returncode == 0, migrate.stderr.decode()[-2000:]
        start("api")
        dispatchers = [start("dispatcher") for _ in range(SERVICES["dispatcher"]["deploy"]
                                                          ["replicas"])]
        for _ in range(2):   # docker compose up --scale worker=2
            start("worker")
        for name in ("api", "mysql", "redis"):   # each healthcheck, as written
            test = interpolate(SERVICES[name]["healthcheck"]["test"], compose_env)
            assert test[0] == "CMD"
            command = local(test[1:], api_port)
            wait_until(lambda command=command: subprocess.run(
                command, capture_output=True).returncode == 0,
                timeout=60, message=f"{name} healthcheck")
        api = Api(f"http://127.0.0.1:{api_port}")
        api.http.headers["Authorization"] = f"Bearer {compose_env['JOBSCHED_API_TOKEN']}"
        assert api.get("/jobs").status_code == 200
        assert Api(api.base).get("/jobs").status_code == 401   # the token is required
        leader_key = compose_env["JOBSCHED_REDIS_PREFIX"] + "leader"
        client = redis.Redis(host="127.0.0.1", port=6379)
        # A dispatcher's id: <hostname>-<pid>-<random, new on each run>.
        ids = tuple(f"{socket.gethostname()}-{p.pid}-" for p in dispatchers)
        wait_until(lambda: (client.get(leader_key) or b"").decode().startswith(ids),
                   timeout=30, message="a dispatcher holding the lease")
        job = api.create(schedule="* * * * * *", api=target.url("/compose"))
        wait_until(lambda: len(target.received("/compose")) >= 2, timeout=30,
                   message="the workers calling the job")
        wait_until(lambda: any(e["status"] == "SUCCESS" for e in api.get(
            f"/jobs/{job['jobId']}/executions").json()["executions"]), timeout=30,
            message="a recorded execution")
        client.close()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        assert [proc.wait(60) for proc in procs] == [0] * len(procs)
    except BaseException:
        for path in sorted(tmp_path.glob("*.log")):
            print(f"----- {path.name} -----\n{path.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
        target.close()


def test_commands_are_exec_form_and_their_files_exist():
    """Exec-form commands only (they run the same here and in a container),
    and every file they name under /app is in the repository."""
    for name, service in [*SERVICES.items(), *CLUSTER["services"].items()]:
        for key in ("command", "entrypoint"):
            if key in service:
                assert isinstance(service[key], list), (name, key)
                assert shlex.join(service[key]).count("&&") == 0
                for word in service[key]:
                    if word.startswith("/app/"):
                        assert (ROOT / word.removeprefix("/app/")).is_file(), (name, word)
    assert (ROOT / "deploy" / "demo_target.py").is_file()


# -- docker-compose.cluster.yml -----------------------------------------------

def test_the_default_deployment_is_left_as_it_was():
    """`docker compose up` without the override: one Redis, no cluster
    setting, no profile beyond demo; the override only adds to it."""
    assert [s.get("profiles") for s in SERVICES.values() if s.get("profiles")] == [["demo"]]
    for name in JOBSCHED:
        env = SERVICES[name]["environment"]
        assert not {"JOBSCHED_REDIS_CLUSTER", "JOBSCHED_SHARDS"} & set(env), name
    assert "redis-2" not in (ROOT / "docker-compose.yml").read_text()
    assert set(CLUSTER["services"]) == {*NODES, "redis-cluster-init", "api", "dispatcher",
                                        "worker"}
    assert "profiles" not in str(CLUSTER)


def test_cluster_nodes_announce_their_names_keep_aof_and_report_cluster_state():
    volumes = set()
    for node in NODES:
        service = CLUSTER["services"][node]
        assert service["image"] == SERVICES["redis"]["image"], node
        command = service["command"]
        options = dict(zip(command[1::2], command[2::2]))
        assert command[0] == "redis-server" and len(command) % 2 == 1, node
        assert options["--cluster-enabled"] == "yes" and options["--appendonly"] == "yes"
        assert options["--cluster-announce-hostname"] == node
        assert options["--cluster-preferred-endpoint-type"] == "hostname"
        assert options["--dir"] == "/data"
        (volume,) = service["volumes"]   # replaces the single Redis's redis-data on redis
        assert volume.endswith(":/data"), node
        volumes.add(volume)
        assert "cluster_state:ok" in " ".join(service["healthcheck"]["test"])
        assert service["restart"] == "unless-stopped"
    assert len(volumes) == len(NODES)


def test_cluster_init_forms_it_once_and_jobsched_waits_for_it():
    init = CLUSTER["services"]["redis-cluster-init"]
    assert init["restart"] == "no"
    assert set(init["depends_on"]) == set(NODES)
    script = init["command"][2].replace("$$", "$")   # Compose's escape of $
    assert init["command"][:2] == ["sh", "-c"]
    create = re.search(r"redis-cli --cluster create ([^;]*);;", script.replace("\\\n", " "))
    assert create and create[1].split() == [f"{node}:6379" for node in NODES] + [
        "--cluster-replicas", "1", "--cluster-yes"]
    assert "cluster meet" in script   # a later `up`: the nodes meet again, not created again
    check = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    for name in ("api", "dispatcher", "worker"):
        service = CLUSTER["services"][name]
        assert service["depends_on"]["redis-cluster-init"]["condition"] == \
            "service_completed_successfully"
        # `redis` already, from docker-compose.yml; all six: `down` stops these first.
        assert {n for n, d in service["depends_on"].items()
                if d["condition"] == "service_healthy"} == set(NODES) - {"redis"}
        env = service["environment"]
        assert env["JOBSCHED_REDIS_CLUSTER"] == "true"
        assert re.search(r"\{[^}]+\}", env["JOBSCHED_REDIS_PREFIX"])   # a hash tag
        assert interpolate(env["JOBSCHED_SHARDS"], {}) == "8"
        assert interpolate(env["JOBSCHED_SHARDS"], {"JOBSCHED_SHARDS": "16"}) == "16"
        # docker-compose.yml's URL names `redis`: a node, from which the client learns the rest.
        assert SERVICES[name]["environment"]["JOBSCHED_REDIS_URL"] == "redis://redis:6379/0"


def test_compose_merges_the_override_as_intended(tmp_path):
    """What Compose itself makes of the two files (no engine needed): the
    node's volume replaces redis-data, environments and dependencies add up."""
    try:
        compose = compose_command()
    except AssertionError:
        pytest.skip("no Compose here (CI installs docker-compose: see .ci/run)")
    for name in ("docker-compose.yml", "docker-compose.cluster.yml", ".env.example"):
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text()
                                   .replace("JOBSCHED_API_TOKEN=\n", "JOBSCHED_API_TOKEN=t\n"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBSCHED_", "COMPOSE_"))}
    merged = yaml.safe_load(subprocess.run(
        [*compose, "-f", "docker-compose.yml", "-f", "docker-compose.cluster.yml", "config"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout)["services"]
    alone = yaml.safe_load(subprocess.run([*compose, "config"], cwd=tmp_path, env=env,
                                          capture_output=True, text=True,
                                          check=True).stdout)["services"]
    # (Compose v2 leaves the demo out without its profile; 1.29 lists it.)
    assert set(alone) - {"demo-target"} == set(SERVICES) - {"demo-target"}
    (volume,) = merged["redis"]["volumes"]   # "source:target:rw" (1.29) or a mapping (v2)
    assert "redis-cluster-1" in str(volume) and "/data" in str(volume), volume
    for name in ("api", "dispatcher", "worker"):
        assert merged[name]["environment"]["JOBSCHED_REDIS_CLUSTER"] == "true"
        assert merged[name]["environment"]["JOBSCHED_SHARDS"] == "8"
        assert "@mysql:3306/" in merged[name]["environment"]["JOBSCHED_DATABASE_URL"]
        assert {"migrate", "mysql", *NODES, "redis-cluster-init"} == set(merged[name]["depends_on"])
        assert "JOBSCHED_REDIS_CLUSTER" not in alone[name]["environment"]
    assert merged["migrate"] == alone["migrate"] and merged["mysql"] == alone["mysql"]
