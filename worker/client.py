"""A small asyncio HTTP/1.1 client: keep-alive connection pools, requests
serialised ahead of time and written in one call, responses parsed by
httptools (llhttp).

Why not requests in threads: a worker spends most of its CPU making calls,
and requests costs ~0.4 ms of CPU per call; here a call on a pooled
connection is one ``write`` and one parse. That is what lets a worker send a
second's worth of fires at the second itself.

Only what a job needs, and bounded against hostile targets: one request, no
redirects followed, at most ``READ_LIMIT`` bytes of the answer read and
``MAX_HEAD_BYTES`` / ``MAX_HEADERS`` of its head, one deadline for the whole
call (connect and answer) that nothing restarts. A request is written at most
once: a connection found closed before the write is replaced, but an answer
that does not come after the write is that call's failure, never a second
send (at-most-once depends on it). Idle connections expire after
``IDLE_EXPIRY_S`` and at most ``max_idle`` are kept. Timers run on the
monotonic clock: a step of the wall clock neither freezes nor hurries calls.

The target's name is resolved first and each address checked against the
deny list (SSRF) before any connection is made to it (and so before TLS);
the connection goes to the address that was checked. A denied target reads
"target address not allowed", whether its port is open or not.
"""
from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import certifi
import httptools
from requests.utils import requote_uri

from common.message import reserved_header
from common.targets import DenyList
from common.timeutil import now_ms

READ_LIMIT = 64 * 1024
MAX_HEAD_BYTES = 16 * 1024   # status line and headers of an answer (as h11 and aiohttp)
MAX_HEADERS = 100
IDLE_EXPIRY_S = 30.0
# Characters that would end a header line or the request line early.
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
TIMER_SLACK_S = 0.002


class DeniedAddress(ConnectionError):
    def __init__(self):
        super().__init__("target address not allowed")


class StaleConnection(ConnectionError):
    """The connection was closed before the request was written: nothing was
    sent, so another connection may carry it."""


@dataclass(frozen=True)
class Response:
    sent_ms: int              # when the request was written (epoch ms)
    status: int
    headers: dict[str, str]   # lower-case names
    body: bytes               # at most READ_LIMIT bytes


@dataclass(frozen=True)
class Request:
    origin: tuple[str, str, int]   # scheme, host, port
    data: bytes                    # the whole request, ready to write
    head: bool                     # a HEAD request: the answer has no body


def build_request(method: str, url: str, headers: dict[str, str],
                  body: bytes | None) -> Request:
    """Serialise a request once; ``headers`` override the defaults. Headers
    that frame the request (Host, Content-Length, Transfer-Encoding, ...) and
    control characters are refused (ValueError): the API refuses them too,
    this guards jobs written before it did."""
    parts = urlsplit(requote_uri(url))
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host_header = parts.netloc.rpartition("@")[2]
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    fields = {"host": ("Host", host_header), "accept": ("Accept", "*/*")}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        fields["authorization"] = ("Authorization", "Basic " + base64.b64encode(
            credentials.encode("latin-1")).decode())
    for name, value in headers.items():
        if reserved_header(name) or _UNSENDABLE.search(name) or _UNSENDABLE.search(value):
            raise ValueError(f"header {name!r} cannot be sent as given")
        fields[name.lower()] = (name, value)
    if _UNSENDABLE.search(host_header) or _UNSENDABLE.search(target):
        raise ValueError("the URL cannot be sent as given")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        fields["content-length"] = ("Content-Length", str(len(body or b"")))
    lines = [f"{method} {target} HTTP/1.1"] + [f"{n}: {v}" for n, v in fields.values()]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
    return Request((scheme, parts.hostname or "", port), data, method == "HEAD")


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; answers one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future | None = None   # set while a request is armed
        self._sent = False
        self._parser = None

    # asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self._sent:   # nothing asked (yet): a confused peer, or a 408 before closing
            self._close()
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            cause = e.__context__ if isinstance(e.__context__, ConnectionError) else None
            self._fail(cause or ConnectionError(f"malformed HTTP answer: {e}"))
            return
        if not self._headers_done and self._waiter is not None:
            # A head still incomplete: what the parser holds of it is bounded.
            self._head_size += len(data)
            if self._head_size > MAX_HEAD_BYTES:
                self._fail(ConnectionError("the answer's headers are too large"))
                return
        if self._size >= READ_LIMIT:
            self._finish(reusable=False)   # enough read; the rest is not wanted

    def eof_received(self):
        if self._waiter is not None and self._headers_done:
            self._finish(reusable=False)   # an answer delimited by the close
        return False

    def connection_lost(self, exc):
        self.closed = True
        if self._waiter is None:
            return
        if not self._sent:
            self._fail(StaleConnection("connection closed by the target"))
        else:
            self._fail(ConnectionError("connection closed before the answer"
                                       + (f": {exc}" if exc else "")))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_bytes += len(name) + len(value) + 4
        if self._header_count > MAX_HEADERS or self._header_bytes > MAX_HEAD_BYTES:
            raise ConnectionError(f"the answer's headers exceed {MAX_HEADERS} or "
                                  f"{MAX_HEAD_BYTES // 1024} KiB")
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._request.head and self._parser.get_status_code() >= 200:
            self._finish(reusable=False)

    def on_body(self, body: bytes) -> None:
        if self._size < READ_LIMIT:
            self._body.append(body)
            self._size += len(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (103 Early Hints, ...): the real one follows
            self._headers, self._body, self._size = {}, [], 0
            self._headers_done = False
            return   # (its head counts towards the answer's head: bounded all the same)
        self._finish(reusable=self._parser.should_keep_alive())

    # requests
    def arm(self, request: Request, deadline: float, waiter: asyncio.Future) -> None:
        """Get ready to send ``request``: everything but the write, so that
        the write at the fire time is all that is left. ``waiter`` gets the
        answer; ``deadline`` (loop time) bounds the call."""
        self._waiter = waiter
        self._request = request
        self._parser = httptools.HttpResponseParser(self)
        self._headers, self._body, self._size = {}, [], 0
        self._head_size = self._header_count = self._header_bytes = 0
        self._headers_done = False
        self._got_bytes = self._sent = False
        self._timer = self.loop.call_at(deadline, self._timed_out)
        if self.closed:   # closed by the target while it waited for its turn
            self._fail(StaleConnection("connection closed by the target"))

    def fire(self) -> None:
        if self._waiter is not None and not self._sent:
            if self.closed:
                self._fail(StaleConnection("connection closed by the target"))
                return
            self._sent = True
            self._sent_ms = now_ms()
            self.transport.write(self._request.data)

    def _finish(self, reusable: bool) -> None:
        if self._waiter is None:   # already answered (or failed)
            return
        self._timer.cancel()
        waiter, self._waiter = self._waiter, None
        self._sent = False
        if not waiter.done():
            body = b"".join(self._body)[:READ_LIMIT]
            waiter.set_result(Response(self._sent_ms, self._parser.get_status_code(),
                                       self._headers, body))
        if not reusable:
            self._close()

    def _fail(self, error: Exception) -> None:
        if self._waiter is None:
            return
        self._timer.cancel()
        waiter, self._waiter = self._waiter, None
        self._sent = False
        if not waiter.done():
            waiter.set_exception(error)
        self._close()

    def _timed_out(self) -> None:
        self._fail(TimeoutError())

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def idle(self) -> bool:
        return not self.closed and self._waiter is None


class Client:
    """Connection pools per origin, shared by all calls of one worker."""

    def __init__(self, deny: DenyList, loop: asyncio.AbstractEventLoop, max_idle: int = 1024):
        self.deny = deny
        self.loop = loop
        self.max_idle = max_idle   # idle connections kept, all origins together
        # origin -> idle connections, each with the loop time it became idle
        self._idle: dict[tuple, deque[tuple[_Connection, float]]] = defaultdict(deque)
        self._idle_count = 0
        self._batches: dict[int, tuple[float, list]] = {}   # fire ms -> (loop time, to send)
        self._tls = ssl.create_default_context(cafile=certifi.where())
        self._expiry = loop.call_later(IDLE_EXPIRY_S, self._expire)

    async def reserve(self, origin: tuple, timeout_s: float) -> _Connection | None:
        """A connection ready for a call to be sent later: an idle one of the
        origin or a new one. None when connecting failed: the call meets that
        error itself, at its time."""
        connection = self._take(origin)
        if connection is not None:
            return connection
        try:
            return await self._connect(origin, self.loop.time() + timeout_s)
        except (OSError, TimeoutError, ssl.SSLError):
            return None

    def release(self, origin: tuple, connection: _Connection | None) -> None:
        """A reserved connection whose call will not be made."""
        if connection is not None:
            self._give_back(origin, connection)

    async def request(self, request: Request, timeout_s: float) -> Response:
        """Send ``request`` now."""
        return await self.send(request, now_ms(), timeout_s)

    async def send(self, request: Request, at_ms: int, timeout_s: float,
                   connection: _Connection | None = None) -> Response:
        """Write ``request`` at ``at_ms`` (epoch ms; at once if past) and
        return the answer, or raise TimeoutError / ConnectionError /
        ssl.SSLError / OSError. ``timeout_s`` runs from the send instant, for
        the whole call.

        On ``connection`` when it is still open (reserved ahead: the write is
        all that is left at the fire time), else on an idle or new one. One
        timer writes every request due at the same millisecond in a single
        pass: a second's burst leaves within a few milliseconds."""
        origin = request.origin
        at = self.loop.time() + max(0.0, at_ms / 1000 - time.time())   # on the loop's clock
        deadline = at + timeout_s
        if connection is None or connection.closed:
            connection = self._take(origin)
        if connection is not None:
            try:
                return await self._write(connection, request, at_ms, at, deadline)
            except StaleConnection:
                pass   # closed before the write: nothing was sent
        if at > self.loop.time():
            await asyncio.sleep(at - self.loop.time())
        connection = await self._connect(origin, deadline)
        return await self._write(connection, request, at_ms, self.loop.time(), deadline)

    async def _write(self, connection: _Connection, request: Request, at_ms: int, at: float,
                     deadline: float) -> Response:
        waiter = self.loop.create_future()
        connection.arm(request, deadline, waiter)
        if at > self.loop.time():
            self._batch(at_ms, at).append(connection)
        else:
            connection.fire()
        response = await waiter
        self._give_back(request.origin, connection)
        return response

    def _batch(self, at_ms: int, at: float) -> list[_Connection]:
        entry = self._batches.get(at_ms)
        if entry is None:
            entry = self._batches[at_ms] = (at, [])
            # Woken a little early (the loop's timers are ms-grained and may
            # be late by as much), then the last stretch is waited exactly.
            self.loop.call_at(at - TIMER_SLACK_S, self._send_batch, at_ms)
        return entry[1]

    def _send_batch(self, at_ms: int) -> None:
        at, batch = self._batches.pop(at_ms)
        while self.loop.time() < at:
            pass
        for connection in batch:
            connection.fire()

    def _take(self, origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection, _ = idle.pop()
            self._idle_count -= 1
            if connection.idle:
                return connection
        return None

    def _give_back(self, origin, connection: _Connection) -> None:
        if not connection.idle:
            return
        if self._idle_count >= self.max_idle:
            connection._close()
            return
        self._idle[origin].append((connection, self.loop.time()))
        self._idle_count += 1

    def _expire(self) -> None:
        """Close the connections idle for longer than IDLE_EXPIRY_S (the
        oldest are at the left of each origin's deque)."""
        limit = self.loop.time() - IDLE_EXPIRY_S
        for origin in list(self._idle):
            idle = self._idle[origin]
            while idle and (idle[0][1] < limit or not idle[0][0].idle):
                idle.popleft()[0]._close()
                self._idle_count -= 1
            if not idle:
                del self._idle[origin]
        self._expiry = self.loop.call_later(IDLE_EXPIRY_S / 3, self._expire)

    async def _connect(self, origin, deadline: float) -> _Connection:
        """A new connection to an allowed address of the origin (checked
        before connecting), within the call's deadline."""
        scheme, host, port = origin
        tls = self._tls if scheme == "https" else None
        infos = await asyncio.wait_for(
            self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
            max(0.001, deadline - self.loop.time()))
        allowed = [info[4] for info in infos if not self.deny.denies(info[4][0], host)]
        if not allowed:
            raise DeniedAddress()
        error: Exception | None = None
        for address in allowed:
            try:
                _, connection = await asyncio.wait_for(self.loop.create_connection(
                    lambda: _Connection(self.loop), address[0], address[1], ssl=tls,
                    server_hostname=host if tls else None),
                    max(0.001, deadline - self.loop.time()))
                return connection
            except (OSError, ssl.SSLError) as e:   # the next address, as connect() does
                error = e
        raise error

    def close(self) -> None:
        self._expiry.cancel()
        for idle in self._idle.values():
            for connection, _ in idle:
                connection._close()
        self._idle.clear()
        self._idle_count = 0
