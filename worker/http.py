"""Make one HTTP call for one fire message and describe what happened."""
from __future__ import annotations

from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy

import requests

from common.message import FireMessage
from common.targets import DenyList
from common.timeutil import iso_ms, now_ms
from worker.guard import guarded_adapter
from worker.retry import parse_retry_after

SUCCESS = "SUCCESS"
FAILED = "FAILED"
SKIPPED = "SKIPPED"
# Not a recorded status: an attempt put back for later (a retry that found
# another fire of its job running, under concurrency=forbid).
DEFERRED = "DEFERRED"
USER_AGENT = "jobsched/0.1"
READ_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    message: FireMessage
    started_ms: int
    finished_ms: int
    status: str
    http_status: int | None
    error: str | None
    response_snippet: str | None
    retry_after_ms: int | None = None   # the target's Retry-After on a 429/503


def make_session(pool_size: int, deny: DenyList) -> requests.Session:
    session = requests.Session()
    adapter = guarded_adapter(deny, pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Cookies from one job's target must never reach another job's target.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.trust_env = False
    return session


def fire_headers(msg: FireMessage) -> dict[str, str]:
    spec = msg.spec
    headers = {"User-Agent": USER_AGENT}
    if spec.content_type:
        headers["Content-Type"] = spec.content_type
    headers.update(spec.headers)
    headers["X-Jobsched-Job-Id"] = spec.id
    headers["X-Jobsched-Execution-Id"] = msg.execution_id
    headers["X-Jobsched-Scheduled-At"] = iso_ms(msg.fire_ms)
    headers["X-Jobsched-Attempt"] = str(msg.attempt)
    return headers


def call(session: requests.Session, msg: FireMessage, snippet_bytes: int) -> Outcome:
    spec = msg.spec
    timeout_s = spec.timeout_ms / 1000.0
    started = now_ms()
    try:
        # Redirects are not followed: a 3xx is reported, not chased to
        # wherever it points.
        with session.request(spec.method, spec.url, data=_encode(spec.body),
                             headers=fire_headers(msg), timeout=(timeout_s, timeout_s),
                             allow_redirects=False, stream=True) as response:
            content = _read_some(response, started + spec.timeout_ms)
            code = response.status_code
            retry_after = response.headers.get("Retry-After") if code in (429, 503) else None
    except requests.Timeout:
        return _failed(msg, started, f"timeout after {spec.timeout_ms} ms")
    except requests.ConnectionError as e:
        return _failed(msg, started, f"connection failed: {_root_cause(e)}")
    except requests.RequestException as e:
        return _failed(msg, started, f"request failed: {_root_cause(e)}")
    except Exception as e:  # noqa: BLE001 - any failure of one call is that call's result
        return _failed(msg, started, f"request failed: {type(e).__name__}: {e}")
    ok = spec.succeeded(code)
    finished = now_ms()
    return Outcome(msg, started, finished, SUCCESS if ok else FAILED, code,
                   None if ok else f"HTTP {code}",
                   content[:snippet_bytes].decode("utf-8", "replace") or None,
                   parse_retry_after(retry_after, finished))


def skipped(msg: FireMessage, reason: str) -> Outcome:
    """A fire that was not called, recorded as such (nothing silently dropped)."""
    now = now_ms()
    return Outcome(msg, now, now, SKIPPED, None, reason, None)


def deferred(msg: FireMessage) -> Outcome:
    now = now_ms()
    return Outcome(msg, now, now, DEFERRED, None, None, None)


def _encode(body: str | None) -> bytes | None:
    return None if body is None else body.encode("utf-8")


def _read_some(response: requests.Response, deadline_ms: int) -> bytes:
    """Read at most READ_LIMIT bytes, and not past the call's deadline: the
    read timeout applies to each chunk, so a target trickling its answer
    could otherwise hold the call for ever."""
    chunks, size = [], 0
    for chunk in response.iter_content(8192):
        chunks.append(chunk)
        size += len(chunk)
        if size >= READ_LIMIT:
            break
        if now_ms() > deadline_ms:
            raise requests.Timeout("the answer took longer than the timeout")
    return b"".join(chunks)


def _failed(msg: FireMessage, started: int, error: str) -> Outcome:
    return Outcome(msg, started, now_ms(), FAILED, None, error[:1000], None)


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    if error.args and isinstance(error.args[-1], BaseException):
        error = error.args[-1]
    return str(error) or type(error).__name__
