"""Load targets for the benchmark: nginx (Debian's nginx-light) when it is
installed (apt-get install nginx-light), else the asyncio target in
bench/target.py.

Both answer 200 at once and record, per request, when it arrived (epoch ms,
when its first byte was read) and its X-Jobsched-Execution-Id and
X-Jobsched-Attempt headers. nginx (arrival = ``$msec - $request_time``) uses
a fraction of the CPU of any Python server, and so leaves the machine's
cores to the scheduler.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

NGINX_CONF = """\
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  log_format fires '$msec $request_time $http_x_jobsched_execution_id $http_x_jobsched_attempt';
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      access_log {dir}/arrivals.log fires buffer=1m flush=1s;
      return 200 "ok";
    }}
  }}
}}
"""


class NginxTarget:
    name = "nginx"

    def __init__(self, port: int, workdir: Path):
        self.port, self.dir = port, workdir / "nginx"
        self.dir.mkdir()
        conf = self.dir / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(NGINX_CONF.format(user=user, dir=self.dir, port=port))
        self.proc = subprocess.Popen([shutil.which("nginx"), "-c", str(conf), "-p",
                                      str(self.dir)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def pids(self) -> list[int]:
        """The master and its worker processes (for CPU accounting)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [self.proc.pid] + [int(p) for p in children.read_text().split()]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)  # graceful: flushes the buffered log
        self.proc.wait(30)

    def arrivals(self) -> list[tuple[int, str, str]]:
        out = []
        for line in (self.dir / "arrivals.log").read_text().splitlines():
            logged, took, execution, attempt = line.split(" ")
            if execution != "-":
                # $msec is when the log line is written; $request_time goes
                # back to the first byte read: the request's arrival.
                out.append((round((float(logged) - float(took)) * 1000), execution, attempt))
        return out


class PythonTarget:
    name = "asyncio"

    def __init__(self, port: int, workdir: Path):
        self.out = workdir / "arrivals.jsonl"
        self.proc = subprocess.Popen([sys.executable, str(HERE / "target.py"), "--port",
                                      str(port), "--out", str(self.out)],
                                     stdout=subprocess.DEVNULL)

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)

    def arrivals(self) -> list[tuple[int, str, str]]:
        records = (json.loads(line) for line in self.out.read_text().splitlines())
        return [(r["arrived"], r["execution"], r["attempt"]) for r in records]


def start_target(kind: str, port: int, workdir: Path):
    if kind == "auto":
        kind = "nginx" if shutil.which("nginx") else "asyncio"
    return NginxTarget(port, workdir) if kind == "nginx" else PythonTarget(port, workdir)
