"""Make one HTTP call for one fire message and describe what happened.

Fires go through the asyncio client (worker/client.py)."""
from __future__ import annotations

import ssl
from functools import lru_cache

from common.jobs import FAILED, SUCCESS
from common.message import FireMessage
from common.timeutil import iso_ms, now_ms
from worker.client import Client, Request, build_request
from worker.outcome import Outcome, failed
from worker.retry import parse_retry_after

USER_AGENT = "jobsched/0.1"


def fire_headers(msg: FireMessage) -> dict[str, str]:
    spec = msg.spec
    headers = {"User-Agent": USER_AGENT}
    if spec.content_type:
        headers["Content-Type"] = spec.content_type
    headers.update(spec.headers)
    headers["X-Jobsched-Job-Id"] = spec.id
    headers["X-Jobsched-Execution-Id"] = msg.execution_id
    headers["X-Jobsched-Scheduled-At"] = _scheduled_at(msg.fire_ms)
    headers["X-Jobsched-Attempt"] = str(msg.attempt)
    return headers


@lru_cache(maxsize=4096)
def _scheduled_at(fire_ms: int) -> str:
    # A second's fires share their instant: formatted once.
    return iso_ms(fire_ms)


def prepare(msg: FireMessage) -> Request:
    spec = msg.spec
    return build_request(spec.method, spec.url, fire_headers(msg), _encode(spec.body))


async def call(client: Client, msg: FireMessage, request: Request, snippet_bytes: int,
               at_ms: int, connection=None) -> Outcome:
    """Make the call at ``at_ms`` (at once if past), on the connection
    reserved for it if any."""
    spec = msg.spec
    timeout_s = spec.timeout_ms / 1000.0
    started = max(at_ms, now_ms())
    try:
        # Redirects are not followed: a 3xx is reported, not chased to
        # wherever it points.
        response = await client.send(request, at_ms, timeout_s, connection)
        started = response.sent_ms
    except TimeoutError:
        return failed(msg, f"timeout after {spec.timeout_ms} ms", started)
    except (OSError, ssl.SSLError) as e:   # ConnectionError, DNS, TLS
        return failed(msg, f"connection failed: {_describe(e)}", started)
    except Exception as e:  # noqa: BLE001 - any failure of one call is that call's result
        return failed(msg, f"request failed: {_describe(e)}", started)
    code = response.status
    ok = spec.succeeded(code)
    finished = now_ms()
    retry_after = response.headers.get("retry-after") if code in (429, 503) else None
    return Outcome(msg, started, finished, SUCCESS if ok else FAILED, code,
                   None if ok else f"HTTP {code}",
                   response.body[:snippet_bytes].decode("utf-8", "replace") or None,
                   parse_retry_after(retry_after, finished))


def _encode(body: str | None) -> bytes | None:
    return None if body is None else body.encode("utf-8")


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
