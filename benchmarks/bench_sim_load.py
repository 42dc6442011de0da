"""How many audio frames per second the simulator's load mode pushes to bare picows clients.

The simulator runs in this process (uvloop); the clients run in a child process (this script with
``--client``): per meeting one signaling and one audio socket, full handshakes, keep-alive answers,
and frames counted then discarded. Prints a table, or JSON with ``--json``.

    python benchmarks/bench_sim_load.py --meetings 50 --seconds 5 --pace max --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import uvloop  # noqa: E402
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect  # noqa: E402

from gateway import protocol  # noqa: E402

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"


# ---------------------------------------------------------------------- client process


class _Counter(WSListener):
    """Counts media frames (cheap prefix check), answers keep-alives, hands other JSON to a queue."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0
        self.bytes = 0
        self.counting = False
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return
        view = frame.get_payload_as_memoryview()
        if bytes(view[:14]) == b'{"msg_type":14':
            if self.counting:
                self.frames += 1
                self.bytes += frame.payload_size
            return
        doc = orjson.loads(view)
        if doc.get("msg_type") == protocol.MsgType.KEEP_ALIVE_REQ:
            transport.send(WSMsgType.BINARY, orjson.dumps(protocol.build_keep_alive_response(doc)))
        else:
            self.inbox.put_nowait(doc)


async def _join(stream: dict[str, str]) -> _Counter:
    sig_url = stream["server_urls"]
    instance, stream_id = stream["meeting_uuid"], stream["rtms_stream_id"]
    signature = protocol.handshake_signature(CLIENT_ID, CLIENT_SECRET, instance, stream_id)
    sig_t, sig = await ws_connect(_Counter, sig_url)
    sig_t.send(WSMsgType.BINARY, protocol.encode(protocol.build_signaling_handshake(instance_id=instance, stream_id=stream_id, signature=signature)))
    resp = await sig.inbox.get()
    assert resp["status_code"] == 0, resp
    media_t, media = await ws_connect(_Counter, resp["media_server"]["server_urls"]["audio"], max_frame_size=1 << 24)
    media_t.send(WSMsgType.BINARY, protocol.encode(protocol.build_data_handshake(instance_id=instance, stream_id=stream_id, signature=signature, media_type=1)))
    resp = await media.inbox.get()
    assert resp["status_code"] == 0, resp
    sig_t.send(WSMsgType.BINARY, protocol.encode(protocol.build_client_ready_ack(stream_id)))
    return media


async def _client_main(streams: list[dict[str, str]], seconds: float) -> dict[str, Any]:
    counters = await asyncio.gather(*(_join(s) for s in streams))
    await asyncio.sleep(0.5)  # let the startup bursts pass
    for c in counters:
        c.counting = True
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(seconds)
    for c in counters:
        c.counting = False
    elapsed = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "frames_received": sum(c.frames for c in counters),
        "bytes_received": sum(c.bytes for c in counters),
        "window_s": elapsed,
        "client_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
    }


def client(args: argparse.Namespace) -> int:
    streams = json.loads(sys.stdin.read())
    result = uvloop.run(_client_main(streams, args.seconds))
    print(json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------- simulator process


async def _bench(args: argparse.Namespace) -> dict[str, Any]:
    from gateway.sim import SimConfig, Simulator

    cfg = SimConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    async with Simulator(cfg) as sim:
        driver = sim.start_load(pace=args.pace, speakers=args.speakers)
        streams = [sim.create_stream(webhook=False, load=True) for _ in range(args.meetings)]
        payloads = [sim.join_payload(s) for s in streams]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", "--seconds", str(args.seconds), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ}
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(payloads).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        sent0 = driver.frames_sent
        t0 = time.perf_counter()
        out = await asyncio.wait_for(proc.stdout.read(), args.seconds + 60)
        await proc.wait()
        elapsed = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        result = json.loads(out.decode().strip().splitlines()[-1])
        result.update(
            {
                "benchmark": "sim_load",
                "meetings": args.meetings,
                "speakers": args.speakers,
                "pace": args.pace,
                "seconds": args.seconds,
                "frames_sent_total": driver.frames_sent - sent0,
                "sim_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
                "sim_wall_s": elapsed,
            }
        )
        result["frames_per_s"] = result["frames_received"] / result["window_s"]
        result["mb_per_s"] = result["bytes_received"] / result["window_s"] / 1e6
        result["realtime_equivalent_streams"] = result["frames_per_s"] / 50.0
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meetings", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pace", choices=["max", "realtime"], default="max")
    parser.add_argument("--speakers", type=int, default=1, help="speakers per meeting (multi-stream audio when > 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return client(args)
    result = uvloop.run(_bench(args))
    if args.json:
        print(json.dumps(result))
    else:
        for key in ("meetings", "pace", "frames_per_s", "mb_per_s", "realtime_equivalent_streams", "sim_cpu_s", "client_cpu_s", "window_s"):
            value = result[key]
            print(f"{key:30s} {value:.2f}" if isinstance(value, float) else f"{key:30s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
