"""Targets that misbehave on purpose, against the real processes: an endless
head, an endless body, no answer, a hang-up after the request, a slow drip,
interim answers, chunked trailers, a Content-Length that lies. Each costs
only its own job: its attempts fail (or succeed) with a clear error, the
worker's other job stays on time, and the worker's memory stays bounded."""
import asyncio
import statistics
import threading
import time

import psutil
import pytest

from tests.support import wait_until

pytestmark = pytest.mark.slow

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class HostileServer:
    """One behaviour per path (the first segment)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.requests: dict[str, int] = {}
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._connection, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(10)

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.port}/{behaviour}"

    async def _connection(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                behaviour = path.strip("/").split("/")[0]
                self.requests[behaviour] = self.requests.get(behaviour, 0) + 1
                if not await getattr(self, "_" + behaviour.replace("-", "_"))(writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _endless_head(self, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        while True:
            writer.write(b"a" * 4096)
            await writer.drain()
            await asyncio.sleep(0.001)

    async def _endless_body(self, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1000\r\n" + b"b" * 4096 + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.001)

    async def _never(self, writer):
        await asyncio.sleep(3600)

    async def _drop(self, writer):
        return False   # read the request, hang up without a word

    async def _drip(self, writer):
        for byte in OK:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)
        return True

    async def _interim(self, writer):
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
                     + OK)
        return True

    async def _trailers(self, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
                     b"2\r\nok\r\n0\r\nX-T: done\r\n\r\n")
        return True

    async def _short(self, writer):   # says 100 bytes, sends 10, then nothing
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await asyncio.sleep(3600)

    def close(self):
        async def shut():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()
        asyncio.run_coroutine_threadsafe(shut(), self.loop)
        self.thread.join(10)
        self.loop.close()


# behaviour -> what its attempts must be recorded as
EXPECTED = {"endless-head": ("FAILED", "headers are too large"),
            "endless-body": ("SUCCESS", None),   # 64 KiB read, the rest not wanted
            "never": ("FAILED", "timeout after 1000 ms"),
            "drop": ("FAILED", "closed before the answer"),
            "drip": ("FAILED", "timeout after 1000 ms"),
            "interim": ("SUCCESS", None),
            "trailers": ("SUCCESS", None),
            "short": ("FAILED", "timeout after 1000 ms")}


SAMPLES = 20   # fires of the healthy job measured, alone and beside the hostile targets


def lateness(target, path, since_ms):
    return [r.arrived_ms - r.scheduled_ms for r in target.received(path)
            if r.scheduled_ms >= since_ms]


def p90(values):
    return statistics.quantiles(values, n=10)[8] if len(values) > 1 else values[0]


def test_hostile_targets_cost_only_their_own_jobs(make_system, target):
    system = make_system(workers=1)
    hostile = HostileServer()
    worker = psutil.Process(system.procs.procs["worker-1"].pid)
    try:
        system.api.create(schedule="* * * * * *", api=target.url("/ok/healthy"))
        began = time.time_ns() // 1_000_000
        wait_until(lambda: len(lateness(target, "/ok/healthy", began)) >= SAMPLES, 40,
                   message="the healthy job alone")
        alone = lateness(target, "/ok/healthy", began)
        rss_before = worker.memory_info().rss
        jobs = {name: system.api.create(schedule="* * * * * *", api=hostile.url(name),
                                        timeoutMs=1000, maxRetries=0)["jobId"]
                for name in EXPECTED}
        wait_until(lambda: all(hostile.requests.get(name, 0) >= 3 for name in EXPECTED), 30,
                   message="every hostile target called a few times")
        mixed_from = time.time_ns() // 1_000_000
        wait_until(lambda: len(lateness(target, "/ok/healthy", mixed_from)) >= SAMPLES, 40,
                   message="the healthy job among them")
        beside = lateness(target, "/ok/healthy", mixed_from)
        rss_after = worker.memory_info().rss
        for name, (status, error) in EXPECTED.items():
            rows = wait_until(lambda j=jobs[name]: system.api.get(
                f"/jobs/{j}/executions?limit=5").json()["executions"], 15,
                message=f"{name} recorded")
            assert rows[0]["status"] == status, (name, rows[0])
            assert error is None or error in rows[0]["error"], (name, rows[0])
        # Each hostile call was made once per fire: none re-sent.
        fires = {name: len({r["executionId"] for r in system.api.get(
            f"/jobs/{jobs[name]}/executions?limit=100").json()["executions"]})
            for name in EXPECTED}
        assert all(hostile.requests[n] <= fires[n] + 2 for n in EXPECTED), (hostile.requests,
                                                                           fires)
    finally:
        hostile.close()
    print(f"healthy job lateness p90: alone {p90(alone)} ms, beside hostile targets "
          f"{p90(beside)} ms (max {max(beside)}); worker RSS "
          f"+{(rss_after - rss_before) // 1024} KiB")
    # p90 of 20 fires: one fire delayed by the machine (another test's image
    # build beside this one) does not decide it; a hostile target holding
    # the worker's loop delays every fire, and its timeouts (1 s) the worst.
    assert p90(beside) <= p90(alone) + 20, (sorted(alone), sorted(beside))
    assert max(beside) <= 250, sorted(beside)
    assert rss_after - rss_before < 50 * 1024 * 1024, (rss_before, rss_after)
    assert worker.is_running()
