"""The native listener keeps no memory per message (refcount slips in Cython would show here)."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from gateway import protocol
from tests.native.helpers import FakeTransport, RecordingControl, listener_class, make_sink, media

PAYLOADS = [
    media(14, bytes(640)),                                  # fast path
    media(15, b"\xff" * 300, user_name="Zoë"),              # fast path, non-ASCII name
    media(14, b"ab", user_name='esc"aped'),                 # slow path (escape in the name)
    media(17, "hello", language=9),                         # transcript (slow path)
    protocol.encode(protocol.build_keep_alive_request(5, sequence=1)),
    b'{"msg_type":14,"content":{"data":"!!!!","timestamp":1}}',  # bad base64
    b"{truncated",
    protocol.encode({"msg_type": 99}),
]


class _Forgetful(RecordingControl):
    """A control/sink pair that records nothing, so only the listener could hold memory."""

    def on_control(self, doc: object) -> None:
        pass


class _NullSink:
    def on_audio(self, *args: object) -> None: ...
    on_video = on_share = on_audio
    def on_transcript(self, msg: object) -> None: ...
    def on_chat(self, msg: object) -> None: ...
    def on_drop(self, kind: str, reason: str) -> None: ...


@pytest.mark.parametrize("variant", ["native", "native-nativesink"])
def test_no_growth_over_many_messages(variant: str) -> None:
    sink = make_sink(variant) if variant == "native-nativesink" else _NullSink()
    listener = listener_class(variant)(sink, _Forgetful())
    listener.transport = FakeTransport()
    listener.transport.calls = _Discard()

    def run(rounds: int) -> None:
        for _ in range(rounds):
            for payload in PAYLOADS:
                listener.feed(payload, False)
        if variant == "native-nativesink":
            sink.calls.clear()

    run(200)  # warm caches (name cache, scratch buffer, interned objects)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    run(3000)
    gc.collect()
    growth = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert listener.stats()["frames"] == 3200 * len(PAYLOADS)
    assert growth < 64 * 1024, growth  # 24,000 messages: a leak of one object each would be > 1 MB


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        pass
