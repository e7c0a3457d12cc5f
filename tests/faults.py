"""Fault-injection helpers: a TCP proxy that can make a server unreachable,
and the accounting of fires (expected / executed / duplicated / lost)."""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

from sqlalchemy import bindparam, create_engine, text

# Filled by the fault tests, printed at the end of the run (conftest).
REPORT: list[tuple[str, "Tally"]] = []


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
    duplicated: int = 0    # extra deliveries of the same fire and attempt
    lost: int = 0          # expected fires never executed
    unrecorded: int = 0    # executed fires with no row in the database

    def add(self, other: "Tally") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def tally_every_second(received, first_ms: int, last_ms: int) -> Tally:
    """Account the fires of one every-second job between two scheduled instants."""
    expected = set(range(first_ms, last_ms + 1, 1000))
    deliveries: dict[tuple[int, str], int] = {}
    for r in received:
        if first_ms <= r.scheduled_ms <= last_ms:
            key = (r.scheduled_ms, r.headers["X-Jobsched-Attempt"])
            deliveries[key] = deliveries.get(key, 0) + 1
    executed = {fire for fire, _ in deliveries}
    return Tally(expected=len(expected), executed=len(executed & expected),
                 duplicated=sum(n - 1 for n in deliveries.values()),
                 lost=len(expected - executed))


def recorded_execution_ids(database_url: str, job_ids: list[str]) -> set[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT DISTINCT execution_id FROM executions WHERE job_id IN :ids")
            query = query.bindparams(bindparam("ids", expanding=True))
            rows = conn.execute(query, {"ids": job_ids})
            return {r[0] for r in rows}
    finally:
        engine.dispose()
