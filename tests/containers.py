"""Docker plumbing for tests/test_compose_up.py: stand-in images built from
Debian packages, the Compose command this machine has, a deployment of the
real docker-compose.yml in a copy of the repository, and what the containers
and the demo target tell.

Stand-ins, because this machine reaches package registries but no image
registry: python:3.11-slim, mysql:8.4 and redis:7.4 cannot be pulled here.
Each stand-in starts from a Debian base made by debootstrap (trusting the
host's CA bundle, as this network inspects TLS) and adds Debian's Python 3.11,
MariaDB or Redis, with entrypoints that honour what the official images do
(tests/standins/)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STANDINS = Path(__file__).resolve().parent / "standins"
DEBIAN_MIRROR = os.environ.get("JOBSCHED_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

# The run's terminal summary (tests/support.py summarize): notes, then a table.
NOTES = "docker compose"
SECTION = "docker compose: fires per scenario"
HEADER = (f"{'scenario':<28}{'expected':>10}{'executed':>10}{'duplicated':>12}{'lost':>6}"
          f"{'early':>7}{'late p99 (ms)':>15}{'max':>7}")


def run(*args, timeout: float = 600, env: dict | None = None, cwd: Path | None = None,
        check: bool = True) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {done.returncode}:\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def docker(*args, **kwargs) -> str:
    return run("docker", *args, **kwargs)


def engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def compose_command() -> list[str]:
    """Docker Compose v2 if the engine has it, else docker-compose (1.29 is
    what Debian packages); the compose file keeps to what both read."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise AssertionError("no Compose: install Docker Compose v2 or docker-compose")


# -- stand-in images ------------------------------------------------------

@dataclass
class StandIns:
    base: str      # the debootstrap base
    python: str    # for python:3.11-slim (BASE_IMAGE)
    mysql: str     # for mysql:8.4 (MYSQL_IMAGE)
    redis: str     # for redis:7.4 (REDIS_IMAGE)

    @property
    def all(self) -> list[str]:
        return [self.python, self.mysql, self.redis, self.base]


def build_standins(tag: str) -> StandIns:
    images = StandIns(*(f"jobsched-standin-{tag}/{name}" for name in
                        ("debian:bookworm", "python:3.11", "mysql:mariadb", "redis:7")))
    with tempfile.TemporaryDirectory(prefix="jobsched-rootfs-") as tmp:
        rootfs = Path(tmp) / "bookworm"
        run("debootstrap", "--variant=minbase", "--include=ca-certificates", "bookworm",
            str(rootfs), DEBIAN_MIRROR, timeout=600)
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", images.base], stdin=tar.stdout,
                                  capture_output=True, text=True, timeout=300)
        tar.wait()
        assert imported.returncode == 0 and tar.returncode == 0, imported.stderr
    builds = {name: subprocess.Popen(
        ["docker", "build", "--quiet", "--build-arg", f"BASE={images.base}",
         "--tag", getattr(images, name), "--file", f"{name}.Dockerfile", "."],
        cwd=STANDINS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("python", "mysql", "redis")}
    for name, build in builds.items():
        out, err = build.communicate(timeout=600)
        assert build.returncode == 0, f"stand-in {name}: {out}{err}"
    return images


def remove_images(*names: str) -> None:
    run("docker", "image", "rm", "--force", *names, check=False, timeout=300)


# -- a deployment ---------------------------------------------------------

def copy_deployable(dest: Path) -> None:
    """What a user's checkout holds for `docker compose up`: the compose files,
    .env.example, the Dockerfile and its context (what .dockerignore lets in)."""
    dest.mkdir(parents=True)
    for name in ("docker-compose.yml", "docker-compose.cluster.yml", ".env.example",
                 "Dockerfile", ".dockerignore"):
        shutil.copy2(ROOT / name, dest / name)
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        if line.startswith("!"):
            source = ROOT / line[1:]
            if source.is_dir():
                shutil.copytree(source, dest / line[1:],
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, dest / line[1:])


class Deployment:
    """The real docker-compose.yml, run by ``compose`` in ``workdir`` (a copy
    of the repository) as project ``project``."""

    def __init__(self, compose: list[str], workdir: Path, project: str, image: str,
                 url: str):
        self.compose = compose
        self.workdir = workdir
        self.project = project
        self.image = image          # the jobsched image it builds
        self.url = url              # the API on its published port
        self.api = None             # a requests.Session carrying the token
        # The shell's variables win over .env in Compose: none of ours may leak in.
        dotenv = {line.partition("=")[0] for line in (workdir / ".env").read_text().splitlines()
                  if "=" in line and not line.startswith("#")}
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("JOBSCHED_") and k not in dotenv}
        self.env["COMPOSE_PROJECT_NAME"] = project
        self.commands: list[str] = []   # as a user would type them
        self.jobs: set[str] = set()     # what the test created
        self.accounted_ms = 0           # fires counted up to here

    def __call__(self, *args: str, timeout: float = 600) -> str:
        self.commands.append(" ".join([*self.compose, *args]))
        return run(*self.compose, *args, timeout=timeout, env=self.env, cwd=self.workdir)

    def quietly(self, *args: str, timeout: float = 600) -> None:
        """A command whose failure the caller can live with (cleaning up)."""
        run(*self.compose, *args, timeout=timeout, env=self.env, cwd=self.workdir, check=False)

    def containers(self, service: str, all_states: bool = False) -> list[str]:
        ids = docker("ps", *(["--all"] if all_states else []), "--quiet", "--no-trunc",
                     "--filter", f"label=com.docker.compose.project={self.project}",
                     "--filter", f"label=com.docker.compose.service={service}")
        return sorted(ids.split())

    def one(self, service: str) -> str:
        (container,) = self.containers(service)
        return container

    def inspect(self, container: str, template: str) -> str:
        return docker("inspect", "--format", template, container).strip()

    def health(self, container: str) -> str:
        return self.inspect(container, "{{if .State.Health}}{{.State.Health.Status}}"
                                       "{{else}}{{.State.Status}}{{end}}")

    def pid(self, container: str) -> int:
        return int(self.inspect(container, "{{.State.Pid}}"))

    def restarts(self, container: str) -> int:
        return int(self.inspect(container, "{{.RestartCount}}"))

    def running(self, container: str) -> bool:
        return self.inspect(container, "{{.State.Running}}") == "true"

    def hostname(self, container: str) -> str:
        return self.inspect(container, "{{.Config.Hostname}}")

    def redis(self, *command: str) -> str:
        return docker("exec", self.one("redis"), "redis-cli", "--raw", *command).strip()

    def demo_calls(self) -> list["Call"]:
        log = docker("logs", self.one("demo-target"))
        return [Call.parse(m) for m in _CALL.finditer(log)]


_CALL = re.compile(r"^(?P<arrived>\S+) \w+ \S+ execution=(?P<job>[^:\s]+):(?P<fire>\d+) "
                   r"attempt=(?P<attempt>\d+)", re.M)


@dataclass(frozen=True)
class Call:
    """One line of the demo target's log: a call as it arrived."""
    job_id: str
    scheduled_ms: int
    arrived_ms: int
    attempt: int

    @property
    def execution_id(self) -> str:
        return f"{self.job_id}:{self.scheduled_ms}"

    @classmethod
    def parse(cls, m: re.Match) -> "Call":
        arrived = datetime.fromisoformat(m["arrived"])
        # round, not int: 58.123 s is 58122.99… ms in binary floating point
        return cls(m["job"], int(m["fire"]), round(arrived.timestamp() * 1000), int(m["attempt"]))


def answer(predicate):
    """``predicate`` for wait_until: a docker command that fails while a
    container restarts counts as not yet."""
    def ask():
        try:
            return predicate()
        except AssertionError:
            return None
    return ask
