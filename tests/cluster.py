"""A real Redis Cluster on loopback for the tests: three masters and three
replicas of the machine's redis-server, created with
``redis-cli --cluster create``, stopped (and their files removed) at the end."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.support import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisClusterServers:
    def __init__(self, workdir: Path, masters: int = 3, replicas_each: int = 1):
        self.workdir = workdir
        self.ports = [free_port() for _ in range(masters * (1 + replicas_each))]
        self.replicas = masters * replicas_each
        self.processes: dict[int, subprocess.Popen] = {}
        try:
            for port in self.ports:
                self.start_node(port)
            for port in self.ports:
                self.wait_answering(port)
            nodes = [f"127.0.0.1:{port}" for port in self.ports]
            created = subprocess.run([REDIS_CLI, "--cluster", "create", *nodes,
                                      "--cluster-replicas", str(replicas_each), "--cluster-yes"],
                                     timeout=60, capture_output=True, text=True)
            if created.returncode:
                raise RuntimeError(f"redis-cli --cluster create: {created.stdout[-2000:]}")
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> None:
        node_dir = self.workdir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             # The bus port too, from the test process's own range of ports.
             "--cluster-port", str(free_port()),
             "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
             "--save", "", "--appendonly", "no", "--dir", str(node_dir),
             "--logfile", str(node_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_connect_timeout=1)

    def wait_answering(self, port: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.node(port).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.processes[port].poll() is not None:
                    raise RuntimeError(f"redis-server on {port} did not start") from None
                time.sleep(0.05)

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every node says the cluster is ok, and every replica has its
        master's data (a replica that never synced cannot take over)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                infos = [self.node(p).info("replication") for p in self.processes]
                linked = sum(1 for i in infos if i["role"] == "slave"
                             and i.get("master_link_status") == "up")
                if linked == self.replicas and all(
                        self.node(p).cluster("info")["cluster_state"] == "ok"
                        for p in self.processes):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not become ok")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def master_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot, as a live node sees it."""
        node = self.node(next(iter(self.processes)))
        slot = node.cluster("keyslot", key)
        for start, end, master, *_ in node.cluster("slots"):
            if start <= slot <= end:
                return int(master[1])
        raise RuntimeError(f"no node serves slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL one node (its replica takes over after the node timeout)."""
        proc = self.processes.pop(port)
        proc.kill()
        proc.wait()
