"""A lean load target for the benchmark: asyncio HTTP/1.1 with keep-alive,
answering 200 at once and recording, per request, the arrival time and the
X-Jobsched-Execution-Id / X-Jobsched-Attempt headers. On SIGTERM it writes the
records as JSON lines to --out and exits.

    python bench/target.py --port 9100 --out /tmp/arrivals.jsonl
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class Recorder:
    def __init__(self):
        self.records: list[tuple[int, str, str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time_ns() // 1_000_000
                execution, attempt, length = "", "1", 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"x-jobsched-execution-id":
                        execution = value.strip().decode()
                    elif name == b"x-jobsched-attempt":
                        attempt = value.strip().decode()
                    elif name == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if execution:
                    self.records.append((arrived, execution, attempt))
                writer.write(RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def main(port: int, out: str) -> None:
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"target listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await stop.wait()
    with open(out, "w") as f:
        for arrived, execution, attempt in recorder.records:
            f.write(json.dumps({"arrived": arrived, "execution": execution,
                                "attempt": attempt}) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        import uvloop  # optional: faster, if installed
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.port, args.out))
