"""A target to try jobsched with: answers 200 to any call and logs it, one
line per call:

    <arrived, ISO ms> <method> <path> execution=<id> attempt=<n> scheduled=<ISO ms>

    python deploy/demo_target.py            # listens on 0.0.0.0:8080
"""
import http.server
import os
import sys
import threading
from datetime import datetime, timezone

_write = threading.Lock()   # one call, one whole line, however many threads answer


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        arrived = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        line = (f"{arrived} {self.command} {self.path} "
                f"execution={self.headers.get('X-Jobsched-Execution-Id')} "
                f"attempt={self.headers.get('X-Jobsched-Attempt')} "
                f"scheduled={self.headers.get('X-Jobsched-Scheduled-At')}\n")
        with _write:
            sys.stdout.write(line)
            sys.stdout.flush()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    # Workers open many connections at once (a second's fires of many jobs):
    # the default backlog of 5 drops their SYNs, and each retry costs 1 s.
    request_queue_size = 1024
    daemon_threads = True


if __name__ == "__main__":
    port = int(os.environ.get("DEMO_TARGET_PORT", "8080"))
    Server(("0.0.0.0", port), Handler).serve_forever()
