"""The worker's HTTP client (worker/client.py) against real sockets: a raw
server whose answers the tests write byte for byte, and the recording
Target."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from common.targets import DEFAULT_DENY, DenyList
from common.timeutil import now_ms
from tests.support import Target
from worker.client import READ_LIMIT, Client, build_request

ALLOW = DenyList.build(DEFAULT_DENY, deny_loopback=False)
CLOSE = b"<close>"
DENY_LOOPBACK = DenyList.build(DEFAULT_DENY, deny_loopback=True)


class RawServer:
    """Answers each request on a connection with the next canned answer;
    ``None`` closes the connection instead (the request read, no answer), and
    an answer ending in CLOSE is sent, then the connection closed (a server
    dropping an idle keep-alive connection). Counts connections accepted."""

    def __init__(self, answers: list[bytes | None]):
        self.answers = list(answers)
        self.connections = 0
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket):
        buffer = b""
        with conn:
            while self.answers:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                self.requests.append(head)
                answer = self.answers.pop(0)
                if answer is None:
                    return
                try:
                    conn.sendall(answer.removesuffix(CLOSE))
                except (BrokenPipeError, ConnectionResetError):
                    return   # the client gave up on the answer (a test of exactly that)
                if b"Connection: close" in answer or answer.endswith(CLOSE):
                    return

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.sock.close()


def run(coro_fn, deny=ALLOW):
    async def main():
        client = Client(deny, asyncio.get_running_loop())
        try:
            return await coro_fn(client)
        finally:
            client.close()
    return asyncio.run(main())


def get(url: str, method: str = "GET", body: bytes | None = None):
    return build_request(method, url, {"User-Agent": "t"}, body)


def test_request_is_serialised_with_host_length_and_overrides():
    request = build_request("POST", "http://u%40x:p%3A@example.com:8080/a b?q=1#frag",
                            {"Accept": "application/json", "X-One": "1"}, b"{}")
    head, _, body = request.data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /a%20b?q=1 HTTP/1.1"
    assert "Host: example.com:8080" in lines
    assert "Accept: application/json" in lines and "Accept: */*" not in lines
    assert "Content-Length: 2" in lines and body == b"{}"
    assert "Authorization: Basic dUB4OnA6" in lines   # base64 of "u@x:p:"
    assert request.origin == ("http", "example.com", 8080)
    assert build_request("GET", "https://example.com", {}, None).origin == \
        ("https", "example.com", 443)


@pytest.mark.parametrize("headers", [{"Content-Length": "0"}, {"Transfer-Encoding": "chunked"},
                                     {"host": "other"}, {"Connection": "close"},
                                     {"Proxy-Authorization": "x"}, {"X-A": "a\r\nX-B: smuggled"},
                                     {"X-A": "a\x00"}])
def test_headers_that_would_reframe_the_request_are_refused(headers):
    """A job's headers go out on connections other jobs share: none of
    them may change where a request ends (jobs written before the API
    refused them meet this)."""
    with pytest.raises(ValueError):
        build_request("POST", "http://example.com/", headers, b"{}")


def test_keep_alive_reuses_one_connection():
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = RawServer([answer] * 3)

    async def three(client):
        return [await client.request(get(server.url()), 5) for _ in range(3)]
    responses = run(three)
    assert [(r.status, r.body) for r in responses] == [(200, b"ok")] * 3
    assert server.connections == 1
    server.close()


def test_chunked_close_delimited_head_and_interim_answers():
    server = RawServer([
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nz",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",   # HEAD: no body follows
    ])
    closing = RawServer([b"HTTP/1.1 500 Oops\r\nRetry-After: 7\r\nConnection: close\r\n\r\n"
                         b"until the end"])

    async def calls(client):
        return [await client.request(get(server.url()), 5),
                await client.request(get(server.url()), 5),
                await client.request(get(server.url(), "HEAD"), 5),
                await client.request(get(closing.url()), 5)]
    chunked, interim, head, close_delimited = run(calls)
    assert (chunked.status, chunked.body) == (200, b"abcde")
    assert (interim.status, interim.body) == (201, b"z")
    assert (head.status, head.body) == (200, b"")
    assert (close_delimited.status, close_delimited.body) == (500, b"until the end")
    assert close_delimited.headers["retry-after"] == "7"
    server.close()
    closing.close()


def test_a_large_answer_is_read_only_up_to_the_limit():
    size = 10 * READ_LIMIT
    server = RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size])
    response = run(lambda client: client.request(get(server.url()), 5))
    assert response.status == 200 and len(response.body) == READ_LIMIT
    server.close()


def test_an_idle_connection_the_target_closed_is_replaced():
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = RawServer([answer + CLOSE, answer])   # closed once idle, keep-alive or not

    async def two(client):
        first = await client.request(get(server.url()), 5)
        await asyncio.sleep(0.2)   # the close reaches the client before the next write
        return first, await client.request(get(server.url()), 5)
    first, second = run(two)
    assert first.status == second.status == 200
    assert server.connections == 2 and len(server.requests) == 2
    server.close()


def test_a_request_the_target_read_without_answering_is_never_sent_again():
    """At-most-once depends on it: bytes written are never written twice,
    on this connection or another."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = RawServer([answer, None, answer, answer])   # reads the 2nd, then hangs up

    async def two(client):
        await client.request(get(server.url()), 5)
        return await client.request(get(server.url()), 5)
    with pytest.raises(ConnectionError, match="closed before the answer"):
        run(two)
    assert len(server.requests) == 2 and server.connections == 1
    fresh = RawServer([None, answer])   # the same on a connection just opened
    with pytest.raises(ConnectionError, match="closed before the answer"):
        run(lambda client: client.request(get(fresh.url()), 5))
    assert len(fresh.requests) == 1 and fresh.connections == 1
    server.close()
    fresh.close()


def test_timeout_refused_and_denied():
    silent = socket.create_server(("127.0.0.1", 0))   # accepts, never answers
    refused = socket.create_server(("127.0.0.1", 0))
    refused_port = refused.getsockname()[1]
    refused.close()

    async def hang(client):
        return await client.request(get(f"http://127.0.0.1:{silent.getsockname()[1]}/"), 0.3)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        run(hang)
    assert 0.25 <= time.monotonic() - started < 2
    with pytest.raises(ConnectionRefusedError):
        run(lambda client: client.request(get(f"http://127.0.0.1:{refused_port}/"), 2))
    silent.close()


def test_a_denied_address_is_never_connected_to_open_port_or_not():
    """Checked before connecting (and so before TLS): the same error whether
    a port is open or closed, so the answers map nothing."""
    open_port = RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    errors = []
    for url in (f"http://localhost:{open_port.port}/", f"http://127.0.0.1:{closed_port}/",
                f"https://localhost:{open_port.port}/"):
        with pytest.raises(ConnectionError) as e:
            run(lambda client, u=url: client.request(get(u), 2), DENY_LOOPBACK)
        errors.append(str(e.value))
    assert errors == ["target address not allowed"] * 3
    assert open_port.connections == 0
    open_port.close()


def test_an_endless_or_crowded_head_fails_the_call_early_and_bounded():
    endless = RawServer([b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * 2_000_000])
    crowded = RawServer([b"HTTP/1.1 200 OK\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(200)) + b"Content-Length: 0\r\n\r\n"])
    for server, message in ((endless, "too large"), (crowded, "exceed 100")):
        started = time.monotonic()
        with pytest.raises(ConnectionError, match=message):
            run(lambda client, s=server: client.request(get(s.url()), 10))
        assert time.monotonic() - started < 5   # not held until the 10 s deadline
        server.close()


def test_idle_connections_expire_and_the_pool_is_capped(monkeypatch):
    import worker.client
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    servers = [RawServer([answer] * 3) for _ in range(3)]
    monkeypatch.setattr(worker.client, "IDLE_EXPIRY_S", 0.3)

    async def scenario():
        client = Client(ALLOW, asyncio.get_running_loop(), max_idle=2)
        for server in servers:   # three origins, one connection each
            await client.request(get(server.url()), 5)
        kept = client._idle_count
        await asyncio.sleep(0.6)   # past the expiry, and a sweep
        expired = client._idle_count
        await client.request(get(servers[0].url()), 5)   # after expiry: a new connection
        client.close()
        return kept, expired
    kept, expired = asyncio.run(scenario())
    assert (kept, expired) == (2, 0)
    assert servers[0].connections == 2
    for server in servers:
        server.close()


def test_a_step_of_the_wall_clock_does_not_move_a_send(monkeypatch):
    """A fire is held on the monotonic clock: the wall clock stepping back an
    hour after it was armed neither freezes it nor sends it early."""
    import worker.client
    target = Target()
    at_ms = now_ms() + 300
    real = time.time

    async def send(client):
        pending = asyncio.ensure_future(client.send(get(target.url("/ok/clock")), at_ms, 5))
        await asyncio.sleep(0.05)
        monkeypatch.setattr(worker.client.time, "time", lambda: real() - 3600)
        return await asyncio.wait_for(pending, 3)
    try:
        response = run(send)
    finally:
        monkeypatch.setattr(worker.client.time, "time", real)
    assert response.status == 200
    (arrival,) = [r.arrived_ms for r in target.received("/ok/clock")]
    assert at_ms <= arrival < at_ms + 200
    target.close()


def test_requests_due_at_one_instant_are_sent_then_and_not_before():
    target = Target()
    at_ms = now_ms() + 300

    async def burst(client):
        requests = [build_request("POST", target.url(f"/ok/{i}"), {}, b"{}") for i in range(20)]
        return await asyncio.gather(*(client.send(r, at_ms, 5) for r in requests))
    responses = run(burst)
    assert [r.status for r in responses] == [200] * 20
    assert all(r.sent_ms >= at_ms for r in responses)
    arrivals = [r.arrived_ms for r in target.received("/ok/")]
    assert len(arrivals) == 20 and min(arrivals) >= at_ms
    target.close()
