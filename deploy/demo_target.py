"""A target to try jobsched with: answers 200 to any call and logs it.

    python deploy/demo_target.py            # listens on 0.0.0.0:8080
"""
import http.server
import os


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        print(f"{self.command} {self.path} job={self.headers.get('X-Jobsched-Job-Id')} "
              f"scheduled={self.headers.get('X-Jobsched-Scheduled-At')}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(os.environ.get("DEMO_TARGET_PORT", "8080"))
    http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
