"""Recording sink, control and transport for the media-listener suite (shared by both implementations)."""

from __future__ import annotations

import importlib
import os
from typing import Any

from gateway import protocol

IMPLEMENTATIONS = ("native", "pure")
# The suite runs each listener with a Python MediaSink, and the native one also with a NativeSink.
VARIANTS = ("native", "native-nativesink", "pure")
NATIVE_MODULE = os.environ.get("GATEWAY_TEST_NATIVE_MODULE", "gateway._native")  # a dev build, if set

#: multiplies the hypothesis example counts of the parser property tests (CI: 1; a long run:
#: ``RTMS_FUZZ_SCALE=100 pytest tests/native/test_agreement.py tests/fuzz``).
FUZZ_SCALE = max(1, int(os.environ.get("RTMS_FUZZ_SCALE", "1")))


def native_module() -> Any:
    return importlib.import_module(NATIVE_MODULE)


def listener_class(variant: str) -> type:
    """The MediaListener class of one implementation (imported directly, not through the selector)."""
    if variant.startswith("native"):
        return native_module().MediaListener
    return importlib.import_module("gateway._native_py").MediaListener


def make_sink(variant: str, log: list[Any] | None = None) -> Any:
    """A recording sink for the variant: RecordingSink, or the native _RecordingSink (same tuples)."""
    if variant == "native-nativesink":
        sink = native_module()._RecordingSink()
        if log is not None:
            sink.calls = log
        return sink
    return RecordingSink(log)


def comparable(call: tuple[Any, ...]) -> tuple[Any, ...]:
    """A transcript/chat call as a NativeSink sees it (text bytes), for any sink's record."""
    if call[0] in ("transcript", "chat") and isinstance(call[1], protocol.MediaMessage):
        msg = call[1]
        return (call[0], msg.user_id, msg.user_name, msg.timestamp, msg.data.encode())
    return call


class RecordingSink:
    """A gateway.sink.MediaSink that records every call as a plain tuple (payloads copied)."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = [] if log is None else log

    def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.calls.append(("audio", user_id, user_name, timestamp, bytes(data)))

    def on_video(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.calls.append(("video", user_id, user_name, timestamp, bytes(data)))

    def on_share(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.calls.append(("share", user_id, user_name, timestamp, bytes(data)))

    def on_transcript(self, msg: protocol.MediaMessage) -> None:
        self.calls.append(("transcript", msg))

    def on_chat(self, msg: protocol.MediaMessage) -> None:
        self.calls.append(("chat", msg))

    def on_drop(self, kind: str, reason: str) -> None:
        self.calls.append(("drop", kind, reason))


class RecordingControl:
    """Records the control callbacks (``on_control`` gets the decoded dict)."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = [] if log is None else log

    def on_connected(self, transport: Any) -> None:
        self.calls.append(("connected",))

    def on_control(self, doc: dict[str, Any]) -> None:
        self.calls.append(("control", doc))

    def on_disconnected(self) -> None:
        self.calls.append(("disconnected",))


class FakeTransport:
    """Stands in for a picows WSTransport in direct-feed tests: records what is sent."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = [] if log is None else log

    def send(self, msg_type: Any, message: bytes) -> None:
        self.calls.append(("send", int(msg_type), bytes(message)))

    def send_pong(self, message: bytes = b"") -> None:
        self.calls.append(("pong", bytes(message)))

    def send_close(self, close_code: Any = 0, close_message: Any = None) -> None:
        self.calls.append(("close", int(close_code), close_message))

    def disconnect(self, graceful: bool = True) -> None:
        self.calls.append(("disconnect",))


def media(msg_type: int, data: bytes | str, *, timestamp: int = 1738392033699, user_id: Any = 16778240,
          user_name: Any = "John Smith", **extra: Any) -> bytes:
    """Compact JSON for one media message (the builder in protocol, encoded)."""
    return protocol.encode(protocol.build_media(msg_type, data=data, timestamp=timestamp, user_id=user_id,
                                                user_name=user_name, **extra))
