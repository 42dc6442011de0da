"""Parser cost per audio message: native listener vs orjson + pybase64 + numpy copy vs the pure twin.

One realistic audio message (640 B of L16, compact JSON as Zoom sends it, ~0.97 KB) parsed over
and over; every variant ends with the payload copied into a 1 MiB ring, as the gateway does.
Variants, measured interleaved in one run (median of ``--rounds``), reported in ns per message and
as ratios to the baseline (DESIGN.md section 5 goal: native >= 8x the baseline):

- ``baseline``: ``orjson.loads`` + fields read + ``pybase64.b64decode(validate=True)`` + a numpy
  slice copy into the ring (what a careful pure-Python gateway does);
- ``native_c``: ``gateway._native.MediaListener`` into a ``_BenchSink`` (NativeSink ring), driven
  from a C loop (``_bench_feed``): the per-frame cost inside ``on_ws_frame``;
- ``native_feed``: the same through the Python-level ``feed()`` (adds a Python call per message);
- ``native_mediasink``: native listener into a Python MediaSink that copies into the ring;
- ``pure``: the pure-Python twin into the same Python MediaSink.

    python benchmarks/bench_parser.py --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # idle BLAS threads spin on this 2-core machine
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import pybase64  # noqa: E402

from gateway import _native, _native_py, protocol  # noqa: E402

RING_BYTES = 1 << 20


def audio_message(size: int = 640) -> bytes:
    """A realistic msg 14: multi-stream participant, name, length, ms timestamp."""
    pcm = b"".join(int(math.sin(i / 5.0) * 8000).to_bytes(2, "little", signed=True) for i in range(size // 2))
    pcm += bytes(size - len(pcm))
    return protocol.encode(protocol.build_media(14, data=pcm, timestamp=1738392033699, user_id=16778240,
                                                user_name="John Smith"))


class _RingSink:
    """A Python MediaSink copying each payload into a numpy ring (the fair Python-side consumer)."""

    def __init__(self) -> None:
        self.ring = np.zeros(RING_BYTES, np.uint8)
        self.pos = 0

    def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        n = len(data)
        if self.pos + n > RING_BYTES:
            self.pos = 0
        self.ring[self.pos:self.pos + n] = np.frombuffer(data, np.uint8)
        self.pos += n

    on_video = on_share = on_audio

    def on_transcript(self, msg: Any) -> None: ...
    def on_chat(self, msg: Any) -> None: ...
    def on_drop(self, kind: str, reason: str) -> None:
        raise AssertionError(f"benchmark message dropped: {kind} {reason}")


class _Control:
    def on_connected(self, transport: Any) -> None: ...
    def on_control(self, doc: dict[str, Any]) -> None: ...
    def on_disconnected(self) -> None: ...


def make_variants(payload: bytes) -> dict[str, Callable[[int], None]]:
    ring = np.zeros(RING_BYTES, np.uint8)
    state = {"pos": 0}

    def baseline(n: int) -> None:
        loads, b64decode, frombuffer, u8 = orjson.loads, pybase64.b64decode, np.frombuffer, np.uint8
        pos = state["pos"]
        for _ in range(n):
            doc = loads(payload)
            content = doc["content"]
            _uid, _name, _ts = content["user_id"], content.get("user_name"), content["timestamp"]
            data = b64decode(content["data"], validate=True)
            size = len(data)
            if pos + size > RING_BYTES:
                pos = 0
            ring[pos:pos + size] = frombuffer(data, u8)
            pos += size
        state["pos"] = pos

    bench_sink = _native._BenchSink(RING_BYTES)
    native_listener = _native.MediaListener(bench_sink, _Control())

    def native_c(n: int) -> None:
        _native._bench_feed(native_listener, payload, n)

    def native_feed(n: int) -> None:
        feed = native_listener.feed
        for _ in range(n):
            feed(payload, False)

    native_py_sink = _native.MediaListener(_RingSink(), _Control())

    def native_mediasink(n: int) -> None:
        feed = native_py_sink.feed
        for _ in range(n):
            feed(payload, False)

    pure_listener = _native_py.MediaListener(_RingSink(), _Control())

    def pure(n: int) -> None:
        feed = pure_listener.feed
        for _ in range(n):
            feed(payload, False)

    def check() -> None:
        native_c(1)
        native_mediasink(1)
        pure(1)
        assert bench_sink.commits == 1 and bench_sink.drops == 0
        assert native_listener.stats()["slow_path"] == 0, "benchmark message took the slow path"

    check()
    return {"baseline": baseline, "native_c": native_c, "native_feed": native_feed,
            "native_mediasink": native_mediasink, "pure": pure}


def measure(variants: dict[str, Callable[[int], None]], messages: int, rounds: int) -> dict[str, float]:
    """Median ns per message per variant; variants interleaved round by round."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():
        run(min(messages, 2000))  # warm-up
    for _ in range(rounds):
        for name, run in variants.items():
            count = messages // 10 if name == "pure" else messages
            start = time.perf_counter_ns()
            run(count)
            samples[name].append((time.perf_counter_ns() - start) / count)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="messages per round and variant")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", type=int, default=640, help="decoded payload bytes (640 = 20 ms L16 16 kHz)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    payload = audio_message(args.size)
    ns = measure(make_variants(payload), args.messages, args.rounds)
    base = ns["baseline"]
    result = {
        "benchmark": "parser",
        "message_bytes": len(payload),
        "payload_bytes": args.size,
        "messages_per_round": args.messages,
        "rounds": args.rounds,
        "ns_per_message": {k: round(v, 1) for k, v in ns.items()},
        "speedup_vs_baseline": {k: round(base / v, 2) for k, v in ns.items()},
        "goal": {"native_c_speedup_min": 8.0, "met": base / ns["native_c"] >= 8.0},
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"audio message: {len(payload)} B JSON, {args.size} B payload; median of {args.rounds} rounds")
    print(f"{'variant':<18}{'ns/msg':>10}{'x baseline':>12}")
    for name, value in ns.items():
        print(f"{name:<18}{value:>10.1f}{base / value:>12.2f}")


if __name__ == "__main__":
    main()
