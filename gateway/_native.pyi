"""Type stubs for ``gateway._native`` (built from ``_native/native.pyx``; see the .pxi room files).

Kept by hand; tests import every name declared here. Rooms not listed here add their own section.
"""

from typing import Any

from picows import WSFrame, WSListener, WSTransport

# ---------------------------------------------------------------------------- b64.pxi

def b64decode(data: bytes | bytearray | memoryview, *, simd: bool = True) -> bytes:
    """Strict padded standard base64 with the native decoder; ValueError when invalid."""

def b64_simd() -> str:
    """The decoder chosen at import for this CPU: "avx2" or "scalar"."""

# ---------------------------------------------------------------------------- sink.pxi

class NativeSink:
    """Base of sinks fed by C calls (reserve / commit / drop are cdef methods, not visible here)."""

# ---------------------------------------------------------------------------- listener.pxi

class MediaListener(WSListener):
    """Media-socket listener; same behaviour as ``gateway._native_py.MediaListener``."""

    transport: Any
    @property
    def sink(self) -> Any: ...
    @property
    def control(self) -> Any: ...
    @property
    def max_frame_bytes(self) -> int: ...
    @property
    def frames(self) -> int: ...
    @property
    def media_frames(self) -> int: ...
    @property
    def rx_bytes(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def keepalives_answered(self) -> int: ...
    @property
    def unknown_types(self) -> int: ...
    @property
    def callback_errors(self) -> int: ...
    @property
    def slow_path(self) -> int:
        """Frames the scanner handed to the orjson slow path (native only)."""
    @property
    def last_rx_ns(self) -> int: ...
    @property
    def drops_by_reason(self) -> dict[str, int]: ...
    def __init__(self, sink: Any, control: Any, *, max_frame_bytes: int = 8 * 1024 * 1024) -> None: ...
    def on_ws_connected(self, transport: WSTransport) -> None: ...
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None: ...
    def on_ws_disconnected(self, transport: WSTransport) -> None: ...
    def feed(self, payload: bytes | bytearray | memoryview, binary: bool = False) -> None:
        """Test hook: process one complete message exactly as ``on_ws_frame`` would."""
    def stats(self) -> dict[str, Any]: ...

def _bench_feed(listener: MediaListener, payload: bytes, repeat: int) -> None:
    """Benchmark hook: the listener's message path ``repeat`` times from a C loop."""

class _RecordingSink(NativeSink):
    """Test sink: records commits and drops as tuples in ``calls``; ``refuse`` makes reserve fail."""

    calls: list[tuple[Any, ...]]
    refuse: bool
    def __init__(self) -> None: ...

class _BenchSink(NativeSink):
    """Benchmark sink: a byte ring; counts commits."""

    @property
    def commits(self) -> int: ...
    @property
    def committed_bytes(self) -> int: ...
    @property
    def drops(self) -> int: ...
    def __init__(self, size: int = 1 << 20) -> None: ...
