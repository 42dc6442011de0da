"""Receive path over loopback: a bare picows listener vs the native MediaListener into a sink.

A picows server in a child process (the other core) pushes pre-built audio frames (msg 14, 640 B
L16, realistic JSON, raw WebSocket frames written in 4 MiB chunks, with the transport's flow control) as fast as the
socket takes them, then one STREAM_STATE_UPDATE as an end marker. The client side, in this
process on uvloop, runs one variant per connection, interleaved over ``--rounds``:

- ``bare``: a C-level picows listener (``_native._BenchBareListener``) that only counts frames:
  the ceiling, picows's own receive loop;
- ``bare_py``: a Python ``WSListener`` subclass that only counts frames (what a pure-Python
  gateway starts from);
- ``native``: ``gateway._native.MediaListener`` into ``_BenchSink`` (a NativeSink byte ring):
  scan, decode into ring memory, commit -- the gateway's receive path;
- ``native_pysink``: the native listener into a Python MediaSink whose methods do nothing;
- ``pure``: the pure-Python twin into the same do-nothing MediaSink (fewer messages).

Reports messages/s (connection up to end marker, median) and ratios to ``bare`` (DESIGN.md
section 5 goal: native >= 0.6 of bare), plus the receiving thread's CPU time per message
(``time.thread_time_ns``, same two points): on a shared box other jobs stretch the wall clock of
whichever variant they hit, while CPU time stays close to the variant's own cost.

``--compare-so PATH`` adds ``native_ref``: the same native variant from another build of
``gateway._native`` (e.g. the previous commit's), loaded side by side in the same run.
``--feed N`` only runs N frames through ``MediaListener._on_message`` into ``_BenchSink`` from a C
loop and exits: the fixed input for instruction counts (see benchmarks/README.md)::

    python benchmarks/bench_receive.py --json
    valgrind --tool=callgrind --toggle-collect='*MediaListener__on_message' \
        python benchmarks/bench_receive.py --feed 10000
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy (imported by bench_parser) must not spin
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402
from picows import WSFrame, WSListener, WSTransport, ws_connect, ws_create_server  # noqa: E402

from benchmarks.bench_parser import audio_message  # noqa: E402
from gateway import _native, _native_py, protocol  # noqa: E402

CHUNK_BYTES = 4 << 20


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked server-to-client WebSocket frame (FIN set)."""
    size = len(payload)
    if size < 126:
        header = bytes([0x80 | opcode, size])
    elif size < 65536:
        header = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
    return header + payload


# ---------------------------------------------------------------------- server (child process)


class _Pusher(WSListener):  # type: ignore[misc]
    """On connect: reads how many frames the client wants from its path, pushes them, then the marker."""

    def __init__(self, path: str, frame: bytes, marker: bytes) -> None:
        super().__init__()
        self.count = int(path.rsplit("/", 1)[-1] or "0")
        self.frame = frame
        self.marker = marker
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def on_ws_connected(self, transport: WSTransport) -> None:
        asyncio.get_running_loop().create_task(self._push(transport))

    async def _push(self, transport: WSTransport) -> None:
        raw = transport.underlying_transport
        per_chunk = max(1, CHUNK_BYTES // len(self.frame))
        chunk = self.frame * per_chunk
        left = self.count
        while left > 0:
            if left >= per_chunk:
                raw.write(chunk)
                left -= per_chunk
            else:
                raw.write(self.frame * left)
                left = 0
            await self.writable.wait()  # picows relays the transport's flow control
        raw.write(self.marker)


async def _serve(size: int) -> None:
    logging.getLogger("picows").setLevel(logging.ERROR)  # flow-control chatter on stderr
    frame = ws_frame(audio_message(size))
    marker = ws_frame(protocol.encode(protocol.build_stream_state_update(2, 0, 1)))
    server = await ws_create_server(lambda request: _Pusher(request.path.decode() if isinstance(request.path, bytes)
                                                            else str(request.path), frame, marker),
                                    "127.0.0.1", 0, max_frame_size=1 << 20)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    server.close()


# ---------------------------------------------------------------------- clients


class _Bare(WSListener):  # type: ignore[misc]
    """Counts frames and nothing else; resolves ``done`` on the last one."""

    def __init__(self, total: int, done: asyncio.Future[int]) -> None:
        super().__init__()
        self.total = total
        self.seen = 0
        self.done = done
        self.started = self.started_cpu = self.ended_cpu = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.started_cpu = time.thread_time_ns()
        self.started = time.perf_counter_ns()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.seen += 1
        if self.seen == self.total:
            end = time.perf_counter_ns()
            self.ended_cpu = time.thread_time_ns()
            self.done.set_result(end)


class _Control:
    def __init__(self, done: asyncio.Future[int]) -> None:
        self.done = done
        self.started = self.started_cpu = self.ended_cpu = 0

    def on_connected(self, transport: Any) -> None:
        self.started_cpu = time.thread_time_ns()
        self.started = time.perf_counter_ns()

    def on_control(self, doc: dict[str, Any]) -> None:
        if doc.get("msg_type") == 8 and not self.done.done():
            end = time.perf_counter_ns()
            self.ended_cpu = time.thread_time_ns()
            self.done.set_result(end)

    def on_disconnected(self) -> None: ...


class _NullSink:
    def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None: ...
    on_video = on_share = on_audio
    def on_transcript(self, msg: Any) -> None: ...
    def on_chat(self, msg: Any) -> None: ...
    def on_drop(self, kind: str, reason: str) -> None:
        raise AssertionError(f"benchmark frame dropped: {kind} {reason}")


def load_build(path: str) -> Any:
    """Another build of gateway._native (a .so file), loaded beside the current one."""
    spec = importlib.util.spec_from_file_location("gateway._native", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF: Any = None  # the --compare-so build


async def run_once(port: int, variant: str, messages: int) -> tuple[float, float]:
    """Messages per second and CPU ns per message (receiving thread) for one connection."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    holder: dict[str, Any] = {}

    def factory() -> WSListener:
        if variant == "bare":
            listener = _native._BenchBareListener(messages + 1, done)
            holder["clock"] = listener
            return listener
        if variant == "bare_py":
            listener = _Bare(messages + 1, done)
            holder["clock"] = listener
            return listener
        control = _Control(done)
        holder["clock"] = control
        if variant in ("native", "native_ref"):
            module = _native if variant == "native" else REF
            sink: Any = module._BenchSink(1 << 20)
            holder["sink"] = sink
            listener = module.MediaListener(sink, control)
        elif variant == "native_pysink":
            listener = _native.MediaListener(_NullSink(), control)
        else:
            listener = _native_py.MediaListener(_NullSink(), control)
        holder["listener"] = listener
        return listener

    transport, _ = await ws_connect(factory, f"ws://127.0.0.1:{port}/{messages}", max_frame_size=1 << 20)
    end = await asyncio.wait_for(done, 120)
    transport.disconnect()
    await transport.wait_disconnected()
    if not variant.startswith("bare"):
        stats = holder["listener"].stats()
        assert stats["media_frames"] == messages, stats
        if variant in ("native", "native_ref"):
            assert holder["sink"].commits == messages and stats["slow_path"] == 1  # the marker only
    clock = holder["clock"]
    return messages / ((end - clock.started) / 1e9), (clock.ended_cpu - clock.started_cpu) / messages


async def run_all(port: int, messages: int, rounds: int, variants: list[str]) -> dict[str, dict[str, list[float]]]:
    """Per variant: msgs/s and CPU ns per message of each round (variants interleaved)."""
    runs: dict[str, dict[str, list[float]]] = {v: {"rate": [], "cpu_ns": []} for v in variants}
    for variant in variants:  # warm-up connection each
        await run_once(port, variant, min(messages, 20_000))
    for _ in range(rounds):
        for variant in variants:
            count = max(1, messages // 10) if variant == "pure" else messages
            rate, cpu_ns = await run_once(port, variant, count)
            runs[variant]["rate"].append(rate)
            runs[variant]["cpu_ns"].append(cpu_ns)
    return runs


def feed(frames: int, size: int) -> None:
    """The fixed input for callgrind: ``frames`` copies of the benchmark frame through the native
    listener into _BenchSink from a C loop (all but the first on the template path)."""
    sink = _native._BenchSink(1 << 20)
    listener = _native.MediaListener(sink, _Control(asyncio.Future(loop=asyncio.new_event_loop())))
    _native._bench_feed(listener, audio_message(size), frames)
    stats = listener.stats()
    assert sink.commits == frames and stats["template_hits"] == frames - 1, stats
    print(f"{frames} frames, base64 decoder: {_native.b64_simd()}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="frames per connection")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=640, help="decoded payload bytes per frame")
    parser.add_argument("--no-pure", action="store_true", help="skip the (slow) pure-Python twin")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--compare-so", metavar="PATH", help="another build of gateway._native: adds native_ref")
    parser.add_argument("--feed", type=int, metavar="N", help="only feed N frames from a C loop (for callgrind)")
    parser.add_argument("--server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.server:
        uvloop.run(_serve(args.size))
        return
    if args.feed:
        feed(args.feed, args.size)
        return
    global REF
    if args.compare_so:
        REF = load_build(args.compare_so)

    child = subprocess.Popen([sys.executable, __file__, "--server", "--size", str(args.size)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        variants = ["bare", "bare_py", "native"] + (["native_ref"] if REF else []) + ["native_pysink"] + \
            ([] if args.no_pure else ["pure"])
        runs = uvloop.run(run_all(port, args.messages, args.rounds, variants))
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
    rates = {v: statistics.median(r["rate"]) for v, r in runs.items()}
    cpu = {v: statistics.median(r["cpu_ns"]) for v, r in runs.items()}
    # Per round, each variant against the bare connection of the same round (neighbours in time).
    paired = {v: [rate / bare for rate, bare in zip(r["rate"], runs["bare"]["rate"], strict=True)] for v, r in runs.items()}
    bare = rates["bare"]
    result = {
        "benchmark": "receive",
        "frame_bytes": len(ws_frame(audio_message(args.size))),
        "messages_per_connection": args.messages,
        "rounds": args.rounds,
        "msgs_per_s": {k: round(v) for k, v in rates.items()},
        "ratio_vs_bare": {k: round(v / bare, 3) for k, v in rates.items()},
        "ratio_vs_bare_per_round": {k: [round(x, 3) for x in v] for k, v in paired.items() if k != "bare"},
        "cpu_ns_per_msg": {k: round(v, 1) for k, v in cpu.items()},
        "cpu_ratio_vs_bare": {k: round(cpu["bare"] / v, 3) for k, v in cpu.items()},
        "native_vs_bare_py": round(rates["native"] / rates["bare_py"], 3),
        "goal": {"native_ratio_min": 0.6, "met": rates["native"] / bare >= 0.6,
                 "met_cpu": cpu["bare"] / cpu["native"] >= 0.6},
        "compare_so": args.compare_so,
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"loopback receive, {result['frame_bytes']} B frames, {args.messages} per connection, median of {args.rounds}")
    print(f"{'variant':<16}{'msgs/s':>12}{'x bare':>9}{'cpu ns/msg':>12}{'x bare':>9}")
    for name, rate in rates.items():
        print(f"{name:<16}{rate:>12,.0f}{rate / bare:>9.3f}{cpu[name]:>12.1f}{cpu['bare'] / cpu[name]:>9.3f}")


if __name__ == "__main__":
    main()
