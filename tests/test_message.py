"""The fire message codec (common/message.py): every format still decodes,
the Lua scripts write and edit messages the Python reads, and no Lua script
builds or reads JSON by hand."""
import json
import re
from pathlib import Path

import pytest

from common.message import (MESSAGE_FORMAT, FireMessage, JobSpec, timing_of_spec,
                            version_of_spec, waiting_since)
from tests.support import judged_dead

LUA = Path(__file__).resolve().parent.parent / "common" / "lua"
SPEC = JobSpec(id="j", version=3, schedule="* * * * * *", timezone="UTC",
               url="http://127.0.0.1:1/x", headers={"X-A": "b\"c"}, body='{"k": "v/w"}')
# The spec as stored before format 3 (with the id), and messages as jobsched
# wrote them before format 2, byte for byte.
STORED_WITH_ID = SPEC.to_json().replace('{"v":3,', '{"v":3,"id":"j",', 1)
FORMAT_1 = {
    "call": b'{"r":0,"t":1764700000000,"a":1,"spec":' + STORED_WITH_ID.encode() + b"}",
    "manual": b'{"r":2,"t":1764700000000,"a":3,"m":1,"spec":' + STORED_WITH_ID.encode() + b"}",
    "lost": b'{"r":0,"lost":1,"t":1764700000000,"a":1,"spec":' + STORED_WITH_ID.encode()
            + b"}",
    "skip": b'{"r":0,"t":1764700000000,"a":0,"skip":{"reason": "misfire", "count": 4, '
            b'"last": 1764700003000},"spec":' + STORED_WITH_ID.encode() + b"}",
}
FORMAT_2 = json.dumps({"v": 2, "r": 0, "t": "1764700000000", "a": 1,
                       "spec": STORED_WITH_ID}).encode()


def test_format_1_messages_still_decode():
    call, manual, lost, skip = (FireMessage.decode(FORMAT_1[k])
                                for k in ("call", "manual", "lost", "skip"))
    assert (call.spec, call.fire_ms, call.attempt, call.redeliveries) == \
        (SPEC, 1764700000000, 1, 0)
    assert not (call.manual or call.lost or call.record)
    assert (manual.manual, manual.attempt, manual.redeliveries) == (True, 3, 2)
    assert lost.lost and lost.record and lost.spec == SPEC
    assert skip.skip == {"reason": "misfire", "count": 4, "last": 1764700003000}
    assert waiting_since(FORMAT_1["call"]) == 1764700000000
    assert waiting_since(FORMAT_1["manual"]) is None


def test_format_2_messages_and_specs_stored_with_their_id_still_decode():
    msg = FireMessage.decode(FORMAT_2)
    assert (msg.spec, msg.fire_ms, msg.execution_id) == (SPEC, 1764700000000, "j:1764700000000")
    assert timing_of_spec(STORED_WITH_ID.encode()) == timing_of_spec(SPEC.to_json().encode()) \
        == SPEC.timing
    assert version_of_spec(STORED_WITH_ID.encode()) == 3


def test_format_3_carries_the_job_id_beside_the_stored_spec_and_round_trips():
    """The stored spec leaves the id out (the key it is stored under says
    it): the message carries it."""
    assert '"id"' not in SPEC.to_json() and SPEC.to_json().startswith('{"v":3,"schedule":')
    raw = FireMessage.encode(SPEC.id, SPEC.to_json(), 1764700000123, attempt=2, redeliveries=1,
                             manual=True)
    fields = json.loads(raw)
    assert fields["v"] == MESSAGE_FORMAT == 3 and fields["spec"] == SPEC.to_json()
    assert fields["j"] == "j"
    msg = FireMessage.decode(raw.encode())
    assert (msg.spec, msg.fire_ms, msg.attempt, msg.redeliveries, msg.manual) == \
        (SPEC, 1764700000123, 2, 1, True)
    assert FireMessage.decode(msg.next_attempt().encode()).attempt == 3
    skip = FireMessage.decode(FireMessage.encode_skip(SPEC.id, SPEC.to_json(), 1000, 5000, 5,
                                                      "misfire").encode())
    assert skip.skip == {"reason": "misfire", "count": 5, "last": 5000} and skip.fire_ms == 1000


@pytest.mark.parametrize("raw", [b'{"v":4,"r":0,"t":"1","a":1,"spec":"{}"}', b"[1]",
                                 b'{"v":"2","r":0,"t":"1","a":1,"spec":"{}"}', b"not json"])
def test_a_message_of_an_unknown_format_is_refused(raw):
    with pytest.raises(ValueError):
        FireMessage.decode(raw)
    assert waiting_since(raw) is None


def test_lua_claims_messages_in_the_current_format(store):
    """claim_due.lua encodes the fields with cjson: the spec is the stored
    string, and a millisecond after the year 2286 (15 digits) is kept."""
    far = 32_503_680_000_123   # 3000-01-01T00:00:00.123Z
    spec_json = SPEC.to_json()
    store.hold_lease("leader", 5000)
    store.publish_job("j", spec_json, 3, far, True)
    claimed = store.claim_due("leader", far, 10, 60_000)
    assert [(c[0], c[1], c[2]) for c in claimed] == [("j", far, spec_json.encode())]
    (raw,) = store.client.lrange(store.keys.ready, 0, -1)
    assert json.loads(raw)["v"] == MESSAGE_FORMAT and json.loads(raw)["spec"] == spec_json
    assert json.loads(raw)["j"] == "j"
    msg = FireMessage.decode(raw)
    assert (msg.spec, msg.fire_ms, msg.attempt, msg.redeliveries) == (SPEC, far, 1, 0)


@pytest.mark.parametrize("kind", ["call", "manual", "skip"])
def test_lua_hands_on_format_1_and_2_messages_it_finds_in_flight(store, kind):
    """A worker that died holding messages of either format: release_inflight.lua
    decodes and re-encodes each with cjson, one more redelivery."""
    old = FireMessage.decode(FORMAT_1[kind])
    later = old.fire_ms + 1000   # another fire: one fire's copies share a mark
    current = (FireMessage.encode(SPEC.id, SPEC.to_json(), later, old.attempt, old.redeliveries,
                                  old.manual) if kind != "skip" else
               FireMessage.encode_skip(SPEC.id, SPEC.to_json(), later, old.skip["last"],
                                       old.skip["count"], old.skip["reason"])).encode()
    store.hold_lease("leader", 5000)
    store.client.rpush(store.keys.inflight("w1"), FORMAT_1[kind], current)
    assert judged_dead(store, "w1").requeued == 2
    back = sorted(map(FireMessage.decode, store.client.lrange(store.keys.ready, 0, -1)),
                  key=lambda m: m.fire_ms)
    assert [m.fire_ms for m in back] == [old.fire_ms, later]
    for msg in back:
        assert (msg.spec, msg.attempt, msg.manual, msg.skip) == \
            (old.spec, old.attempt, old.manual, old.skip)
        assert msg.redeliveries == old.redeliveries + 1


def test_lua_marks_a_lost_at_most_once_call_in_either_format(store):
    spec_json = JobSpec(id="m", version=1, schedule="* * * * * *", timezone="UTC",
                        url="http://127.0.0.1:1/x", type="ATMOST_ONCE").to_json()
    spec_json = spec_json.replace('{"v":1,', '{"v":1,"id":"m",', 1)   # stored before format 3
    old = b'{"r":0,"t":1000,"a":1,"spec":' + spec_json.encode() + b"}"
    store.hold_lease("leader", 5000)
    store.client.rpush(store.keys.inflight("w1"), old)
    assert store.begin_fires("w1", [(FireMessage.decode(old), False)]) == ["go"]
    assert judged_dead(store, "w1").lost == 1
    (raw,) = store.client.lrange(store.keys.ready, 0, -1)
    lost = FireMessage.decode(raw)
    assert lost.lost and lost.execution_id == "m:1000" and lost.redeliveries == 0


def test_no_lua_script_builds_or_pattern_reads_json():
    """Lua gets and gives fields; cjson does the encoding (the codec's one rule)."""
    for script in LUA.glob("*.lua"):
        code = "\n".join(line.split("--")[0] for line in script.read_text().splitlines())
        assert not re.search(r"""['"]\s*[{\[]\s*\\?["']""", code), f"{script.name} writes JSON"
        for pattern in re.findall(r"string\.(?:match|find|gmatch|gsub)\([^,]*,\s*'([^']*)'",
                                  code):
            assert "{" not in pattern and '"' not in pattern, \
                f"{script.name} reads JSON with the pattern {pattern!r}"
