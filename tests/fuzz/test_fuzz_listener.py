"""Fuzz the native media parser through its ``feed`` hook (bounded examples for CI).

Properties, for random bytes and byte-level mutations of valid media messages:

* ``feed`` never raises (every bad message is a counted drop, never an exception or a crash);
* every message has exactly one outcome: one sink call, one counted drop, one control call or
  one counted unknown type (the books balance message by message);
* a listener fed garbage does not disturb another listener (no shared state corruption): a clean
  stream interleaved with a fuzzed one delivers exactly what it would alone.

The native agreement suite (tests/native/test_agreement.py) compares native and pure parsers on
well-formed JSON variations; this file goes below JSON (raw bytes, truncations, bit flips).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.native.helpers import FUZZ_SCALE, FakeTransport, RecordingControl, RecordingSink, listener_class, media

SETTINGS = settings(max_examples=300 * FUZZ_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AUDIO = bytes(range(256)) + bytes(64)
SEEDS = [
    media(14, AUDIO),
    media(15, b"\x00\x00\x00\x01" + bytes(40), user_id=7),
    media(16, bytes(50), user_name=None),
    media(17, "hello world", user_id=3),
    media(18, "chat \u00e9", user_id=4),
    b'{"msg_type":12,"timestamp":1738392033699}',
    b'{"msg_type":8,"state":1,"reason":0,"timestamp":1}',
]


class Rig:
    """One listener (native unless told) with its own recording sink, control and transport."""

    def __init__(self, variant: str = "native", **kwargs: Any) -> None:
        self.sink = RecordingSink()
        self.control = RecordingControl()
        self.transport = FakeTransport()
        self.listener = listener_class(variant)(self.sink, self.control, **kwargs)
        self.listener.transport = self.transport

    def outcomes(self) -> int:
        """Sink calls (deliveries and drops) + control calls + counted unknown types."""
        return len(self.sink.calls) + len(self.control.calls) + self.listener.unknown_types


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message with random byte edits: flips, inserts, deletions, truncation, splices."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 4))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == 0 and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2 and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == 3:
            data = data[: draw(st.integers(0, len(data)))]
        else:
            data[pos:pos] = draw(st.sampled_from([b'"', b"\\", b"{", b"}", b",", b":", b"\\u0000", b"1e999", b"-", b"null"]))
    return bytes(data)


MESSAGES = st.one_of(mutated(), st.binary(max_size=200), st.sampled_from(SEEDS))


@SETTINGS
@given(st.lists(MESSAGES, min_size=1, max_size=20), st.booleans())
def test_every_message_has_exactly_one_outcome(messages: list[bytes], binary: bool) -> None:
    rig = Rig()
    for payload in messages:
        before = rig.outcomes()
        rig.listener.feed(payload, binary)
        assert rig.outcomes() - before == 1, payload
    stats = rig.listener.stats()
    assert stats["frames"] == len(messages)
    assert stats["callback_errors"] == 0
    assert stats["drops"] == sum(1 for call in rig.sink.calls if call[0] == "drop")


@SETTINGS
@given(st.lists(MESSAGES, min_size=1, max_size=20))
def test_garbage_on_one_stream_leaves_another_untouched(garbage: list[bytes]) -> None:
    alone, clean, dirty = Rig(), Rig(), Rig()
    good = [media(14, AUDIO, timestamp=1000 + 20 * i) for i in range(len(garbage))]
    for payload in good:
        alone.listener.feed(payload)
    for payload, bad in zip(good, garbage, strict=True):
        dirty.listener.feed(bad)
        clean.listener.feed(payload)
    assert clean.sink.calls == alone.sink.calls
    assert clean.listener.stats()["drops"] == 0


@SETTINGS
@given(st.lists(MESSAGES, min_size=1, max_size=10), st.integers(16, 400))
def test_small_frame_limit_drops_loudly(messages: list[bytes], limit: int) -> None:
    """With a tight ``max_frame_bytes`` every oversized message is a counted ``too_large`` drop."""
    rig = Rig(max_frame_bytes=limit)
    for payload in messages:
        rig.listener.feed(payload)
    oversized = sum(1 for payload in messages if len(payload) > limit)
    assert rig.listener.stats()["drops_by_reason"]["too_large"] == oversized
    assert all(call[0] == "drop" or call[0] != "audio" or len(call[4]) < limit for call in rig.sink.calls)


@SETTINGS
@given(MESSAGES, st.lists(st.integers(0, 400), max_size=5))
def test_fragmented_message_means_the_same_as_whole(payload: bytes, cuts: list[int]) -> None:
    """Split into WebSocket fragments at random points: the same sink calls as fed whole."""
    from picows import WSMsgType
    from picows.picows import _make_test_ws_frame

    whole, parts = Rig(), Rig()
    whole.listener.feed(payload)
    points = sorted({c for c in cuts if 0 < c < len(payload)})
    pieces = [payload[a:b] for a, b in zip([0, *points], [*points, len(payload)], strict=True)]
    for i, piece in enumerate(pieces):
        msg_type = WSMsgType.TEXT if i == 0 else WSMsgType.CONTINUATION
        parts.listener.on_ws_frame(None, _make_test_ws_frame(msg_type, piece, i == len(pieces) - 1, False))
    assert parts.sink.calls == whole.sink.calls
    assert parts.control.calls == whole.control.calls
    assert parts.listener.stats()["drops"] == whole.listener.stats()["drops"]
