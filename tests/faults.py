"""Fault-injection helpers: a TCP proxy that can make a server unreachable,
killing a worker while it verifiably holds a call on the wire, and the
accounting of fires (expected / executed / duplicated / lost / early) and of
their rows."""
from __future__ import annotations

import signal
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import bindparam, create_engine, text

from tests.support import summarize, wait_until

SECTION = "fault injection: fires per scenario"
HEADER = (f"{'scenario':<28}{'expected':>10}{'executed':>10}{'duplicated':>12}{'lost':>6}"
          f"{'unrecorded':>12}{'early':>7}")


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream server until cut()."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()  # unreachable: connections are dropped at once
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        """Make the upstream unreachable: drop every connection, refuse new ones."""
        self.up = False
        with self.lock:
            sockets, self.open = self.open, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        self.listener.close()


@dataclass
class Tally:
    expected: int = 0      # scheduled fires in the observed window
    executed: int = 0      # fires that reached the target at least once
    duplicated: int = 0    # calls of a fire beyond its first (any attempt)
    lost: int = 0          # expected fires never executed
    unrecorded: int = 0    # executed fires with no row in the database
    early: int = 0         # calls that arrived before their scheduled instant

    def add(self, other: "Tally") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def tally_every_second(received, first_ms: int, last_ms: int,
                       failing_attempts: int = 0) -> Tally:
    """Account the fires of one every-second job between two scheduled
    instants. ``failing_attempts``: calls a fire is meant to take before one
    succeeds (a flaky target); any call beyond those is a duplicate."""
    expected = set(range(first_ms, last_ms + 1, 1000))
    calls: dict[int, int] = defaultdict(int)
    early = 0
    for r in received:
        if first_ms <= r.scheduled_ms <= last_ms:
            calls[r.scheduled_ms] += 1
            early += r.arrived_ms < r.scheduled_ms
    return Tally(expected=len(expected), executed=len(set(calls) & expected),
                 duplicated=sum(max(0, n - 1 - failing_attempts) for n in calls.values()),
                 lost=len(expected - set(calls)), early=early)


def calls_per_fire(target, paths) -> dict[str, int]:
    """Calls the target received per execution id, on these paths."""
    counts: dict[str, int] = defaultdict(int)
    for path in paths:
        for r in target.received(path):
            counts[r.headers["X-Jobsched-Execution-Id"]] += 1
    return dict(counts)


def called_twice(target, paths) -> set[str]:
    """The execution ids called more than once."""
    return {e for e, n in calls_per_fire(target, paths).items() if n > 1}


def kill_worker_mid_call(system, target, name: str, kind: str | None = None) -> set[str]:
    """SIGKILL a worker that verifiably holds a call on the wire: stopped
    (SIGSTOP), its in-flight list read, and killed only if the target is
    answering one of those calls right now (of a job of type ``kind``, if
    given). Returns the execution ids it held: only these may be called again."""
    from common.message import FireMessage
    proc = system.procs.procs[name]
    worker_id = f"{system.backend.prefix}{name}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        proc.send_signal(signal.SIGSTOP)
        held = {m.execution_id: m.spec.type for keys in system.shards for m in
                map(FireMessage.decode, system.redis.lrange(keys.inflight(worker_id), 0, -1))}
        on_the_wire = {r.headers["X-Jobsched-Execution-Id"] for r in target.in_progress()}
        if any(e in held and (kind is None or held[e] == kind) for e in on_the_wire):
            system.procs.kill(name)
            return set(held)
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"{name} never held a call on the wire")


def recorded_execution_ids(database_url: str, job_ids: list[str]) -> set[str]:
    return set(rows_by_fire(database_url, job_ids))


@dataclass(frozen=True)
class RowSeen:
    attempt: int
    status: str
    error: str | None
    redelivered: bool
    final: bool


def rows_by_fire(database_url: str, job_ids: list[str]) -> dict[str, list[RowSeen]]:
    """Each recorded fire's rows, by execution id, in attempt order."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT execution_id, attempt, status, error, redelivered, final "
                         "FROM executions WHERE job_id IN :ids ORDER BY attempt, id")
            query = query.bindparams(bindparam("ids", expanding=True))
            found = defaultdict(list)
            for r in conn.execute(query, {"ids": job_ids}):
                found[r[0]].append(RowSeen(r[1], r[2], r[3], bool(r[4]), bool(r[5])))
            return dict(found)
    finally:
        engine.dispose()


def start_jobs(system, target, tag, behaviour="ok", count=4, **fields):
    """Every-second jobs; returns {job id: target path}."""
    jobs = {}
    for i in range(count):
        path = f"/{behaviour}/{tag}/{i}/"   # "/" ends it: not a prefix of another
        jobs[system.api.create(schedule="* * * * * *", api=target.url(path), **fields)
             ["jobId"]] = path
    wait_until(lambda: all(len(target.received(p)) >= 2 for p in jobs.values()), 20,
               message="jobs firing")
    return jobs


def account(name, system, target, jobs, until_ms, failing_attempts=0):
    """Tally every fire of ``jobs`` from its first to ``until_ms``; returns
    the tally and the rows of the fires executed."""
    wait_until(lambda: all(any(r.scheduled_ms >= until_ms for r in target.received(p))
                           for p in jobs.values()), 60, message=f"{name}: fires after the fault")
    total = Tally()
    executed_ids = set()
    for path in jobs.values():
        received = target.received(path)
        first = min(r.scheduled_ms for r in received)
        total.add(tally_every_second(received, first, until_ms, failing_attempts))
        executed_ids |= {r.headers["X-Jobsched-Execution-Id"] for r in received
                         if r.scheduled_ms <= until_ms}
    db_url = system.backend.database_url

    def rows():
        return rows_by_fire(db_url, list(jobs))
    try:
        wait_until(lambda: executed_ids <= set(rows()), 60, interval=0.5,
                   message=f"{name}: executions recorded")
    except AssertionError:
        pass  # counted below
    found = rows()
    total.unrecorded = len(executed_ids - set(found))
    summarize(SECTION, f"{name:<28}{total.expected:>10}{total.executed:>10}"
              f"{total.duplicated:>12}{total.lost:>6}{total.unrecorded:>12}"
              f"{total.early:>7}", HEADER)
    return total, {e: found[e] for e in executed_ids if e in found}
