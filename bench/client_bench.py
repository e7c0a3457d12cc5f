"""The workers' HTTP client against aiohttp, CPU per call, in one run.

Both make the same calls to the same nginx target (bench/targets.py): POST
with the headers a worker sends, 64 at a time on kept-alive connections, and
both check each target address against the deny list before connecting
(ours in worker/client.py; aiohttp through a resolver that drops denied
addresses, so its connector only ever connects to allowed ones). CPU is this
process's user+system time per call, after a warm-up. jobsched keeps its own
client only while it is at least 1.5x cheaper (issue 13).

    .venv/bin/pip install -r bench/requirements.txt
    .venv/bin/python bench/client_bench.py --calls 20000
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from common.targets import DEFAULT_DENY, DenyList
from targets import start_target
from worker.client import Client, build_request
from run import free_port, write_results

HEADERS = {"User-Agent": "jobsched/0.1", "Content-Type": "application/json",
           "X-Jobsched-Job-Id": "3f0c1d2e-aaaa-bbbb-cccc-0123456789ab",
           "X-Jobsched-Execution-Id": "3f0c1d2e-aaaa-bbbb-cccc-0123456789ab:1764654000000",
           "X-Jobsched-Scheduled-At": "2026-12-02T10:00:00.000Z", "X-Jobsched-Attempt": "1"}
BODY = b'{"hello":"world"}'
DENY = DenyList.build(DEFAULT_DENY, deny_loopback=False)


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses the deny list allows."""

    def __init__(self):
        self.inner = DefaultResolver()

    async def resolve(self, host, port=0, family=socket.AF_INET):
        found = [r for r in await self.inner.resolve(host, port, family)
                 if not DENY.denies(r["host"])]
        if not found:
            raise OSError("target address not allowed")
        return found

    async def close(self):
        await self.inner.close()


async def ours(url: str, calls: int, concurrency: int) -> None:
    client = Client(DENY, asyncio.get_running_loop())
    remaining = calls

    async def one():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            response = await client.request(build_request("POST", url, HEADERS, BODY), 5)
            assert response.status == 200
    await asyncio.gather(*(one() for _ in range(concurrency)))
    client.close()


async def theirs(url: str, calls: int, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency, resolver=CheckedResolver())
    remaining = calls
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     skip_auto_headers=("Accept-Encoding",)) as session:
        async def one():
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with session.post(url, data=BODY, headers=HEADERS, allow_redirects=False,
                                        timeout=aiohttp.ClientTimeout(total=5)) as response:
                    await response.read()
                    assert response.status == 200
        await asyncio.gather(*(one() for _ in range(concurrency)))


def measure(fn, url: str, calls: int, concurrency: int) -> dict:
    asyncio.run(fn(url, min(2000, calls), concurrency))   # warm-up
    cpu, wall = time.process_time(), time.monotonic()
    asyncio.run(fn(url, calls, concurrency))
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return {"cpu_us_per_call": cpu / calls * 1e6, "calls_per_s": calls / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        target = start_target("auto", port, Path(tmp))
        time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/"
        results = {"jobsched": [], "aiohttp": []}
        try:
            for _ in range(args.rounds):   # alternated, so drift of the machine hits both
                results["jobsched"].append(measure(ours, url, args.calls, args.concurrency))
                results["aiohttp"].append(measure(theirs, url, args.calls, args.concurrency))
        finally:
            target.stop()
    print(f"{args.calls} POST calls, {args.concurrency} at a time, target {target.name}, "
          f"aiohttp {aiohttp.__version__}")
    print(f"{'client':<10}{'CPU µs/call (each round)':>34}{'calls/s (best)':>16}")
    best = {}
    for name, rounds in results.items():
        cpu = [r["cpu_us_per_call"] for r in rounds]
        best[name] = min(cpu)
        print(f"{name:<10}{' '.join(f'{c:8.1f}' for c in cpu):>34}"
              f"{max(r['calls_per_s'] for r in rounds):>16.0f}")
    ratio = best["aiohttp"] / best["jobsched"]
    print(f"aiohttp costs {ratio:.2f}x the CPU of jobsched's client per call "
          f"(best round of each); the bar to keep it is 1.5x")
    write_results("client", {"calls": args.calls, "concurrency": args.concurrency,
                             "rounds": results, "ratio": ratio})


if __name__ == "__main__":
    main()
