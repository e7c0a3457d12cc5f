"""Random bytes as a target's answer, fed to the worker's response parser
(worker/client.py) in random chunks: every outcome is an answer or a
ConnectionError, never another exception, and what is kept stays within the
client's bounds."""
import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.client import MAX_HEAD_BYTES, MAX_HEADERS, READ_LIMIT, _Connection, build_request

VALID = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
         b"HTTP/1.1 204 No Content\r\n\r\n",
         b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         b"HTTP/1.0 200 OK\r\n\r\nuntil the close",
         b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]


class Transport:
    def write(self, data):
        pass

    def abort(self):
        pass


def answer_to(data: bytes, cuts: list[int], close: bool):
    loop = asyncio.new_event_loop()
    try:
        connection = _Connection(loop)
        connection.connection_made(Transport())
        waiter = loop.create_future()
        connection.arm(build_request("GET", "http://h/", {}, None), loop.time() + 60, waiter)
        connection.fire()
        start = 0
        for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
            if cut > start and connection._waiter is not None:
                connection.data_received(data[start:cut])
            start = max(start, cut)
        if close and connection._waiter is not None:
            connection.eof_received()
            connection.connection_lost(None)
        if not waiter.done():
            return None   # still waiting for more: the deadline would end it
        return waiter.exception() or waiter.result()
    finally:
        loop.close()


mutated = st.builds(lambda base, at, junk: base[:at] + junk + base[at:],
                    st.sampled_from(VALID), st.integers(0, 200), st.binary(max_size=64))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=4096), mutated),
       cuts=st.lists(st.integers(0, 5000), max_size=8), close=st.booleans())
def test_any_bytes_make_an_answer_or_a_connection_error(data, cuts, close):
    outcome = answer_to(data, cuts, close)
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, ConnectionError), repr(outcome)
    elif outcome is not None:
        assert 100 <= outcome.status <= 999 and len(outcome.body) <= READ_LIMIT
        assert len(outcome.headers) <= MAX_HEADERS


@settings(max_examples=50, deadline=None)
@given(size=st.integers(MAX_HEAD_BYTES + 1, 4 * MAX_HEAD_BYTES),
       cuts=st.lists(st.integers(0, 70_000), max_size=6))
def test_a_head_past_the_bound_is_refused_however_it_is_cut(size, cuts):
    data = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * size + b"\r\n\r\nok"
    outcome = answer_to(data, cuts, close=False)
    assert isinstance(outcome, ConnectionError) and "headers" in str(outcome)
