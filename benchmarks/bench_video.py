"""Video path: demux frames/s, decode frames/s, RTP republishing cost per stream, and the audio path's
throughput while video work runs beside it.

* ``demux``: :class:`gateway.video.VideoDemux` on the simulator's own pictures (H.264 access
  units at 640x360 and 1280x720, JPEG at 640x360): frames per second and us per frame.
* ``decode``: :class:`gateway.video.FrameDecoder` (PyAV, its own thread) into RGB and into
  YUV 4:2:0 numpy arrays, frames per second (queue large enough that nothing is dropped).
* ``rtp``: packetising and sending over loopback UDP (to a bound socket nobody reads): us per
  H.264 access unit (RFC 6184, FU-A) and per 20 ms L16 audio packet; the CPU share of one stream
  (30 fps video, 50 audio packets/s); and the follower's idle poll (50 polls/s per stream: the default 20 ms interval).
* ``audio_impact``: audio messages through the native listener into a shared-memory ring, fed
  from Python one message at a time (so the GIL is handed over as under a real event loop), msgs/s
  alone, with the decoder thread decoding 720p H.264 flat out, and with a follower thread
  polling a stream every 10 ms for RTP (conditions interleaved round by round; medians), plus
  the audio thread's own CPU per message. DESIGN goal: video work must not slow audio.

    python benchmarks/bench_video.py --json [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from gateway import _native, protocol  # noqa: E402
from gateway.protocol import AudioParams, Codec, Resolution, SampleRate, VideoParams  # noqa: E402
from gateway.sim.content import MeetingContent  # noqa: E402
from gateway.udp import AudioRtp, RtpSender, UdpConfig  # noqa: E402
from gateway.video import AccessUnit, FrameDecoder, VideoDemux  # noqa: E402


def _frames(codec: int, resolution: int, fps: int, n: int) -> list[bytes]:
    content = MeetingContent(3, seed=7)
    params = VideoParams(codec=codec, resolution=resolution, fps=fps)
    out = []
    for i in range(n):
        f = content.video_frame(params, i, i * 1000 // fps)
        assert f is not None
        out.append(f[2])
    return out


def _median_rate(fn: Any, n: int, rounds: int) -> float:
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def bench_demux(sets: dict[str, tuple[int, list[bytes]]], rounds: int) -> dict[str, Any]:
    out = {}
    for name, (codec, frames) in sets.items():
        def run(codec: int = codec, frames: list[bytes] = frames) -> None:
            d = VideoDemux()
            d.configure("video", codec)
            feed = d.feed
            for i, f in enumerate(frames):
                feed("video", 1, i, f)
        fps = _median_rate(run, len(frames), rounds)
        out[name] = {"frames_per_s": round(fps), "us_per_frame": round(1e6 / fps, 2)}
    return out


def _units(codec: int, frames: list[bytes]) -> list[AccessUnit]:
    d = VideoDemux()
    d.configure("video", codec)
    return [u for i, f in enumerate(frames) for u in d.feed("video", 1, i * 33, f)]


def bench_decode(sets: dict[str, tuple[int, list[bytes]]], rounds: int) -> dict[str, Any]:
    out = {}
    for name, (codec, frames) in sets.items():
        units = _units(codec, frames)
        for fmt in ("rgb24", "yuv420p"):
            def run(units: list[AccessUnit] = units, fmt: str = fmt, codec: int = codec) -> None:
                got = []
                dec = FrameDecoder(got.append, pixel_format=fmt, queue_size=len(units) + 1)
                for u in units:
                    dec.submit("video", codec, u)
                dec.close(timeout=120)
                assert len(got) == len(units), (len(got), len(units))
            fps = _median_rate(run, len(units), rounds)
            out[f"{name}_{fmt}"] = {"frames_per_s": round(fps), "ms_per_frame": round(1000 / fps, 2)}
    return out


def _sink_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def bench_rtp(sets: dict[str, tuple[int, list[bytes]]], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rx = _sink_socket()
    for name, (codec, frames) in sets.items():
        if codec != Codec.H264:
            continue
        units = _units(codec, frames)
        sender = RtpSender(97, 90000, rx.getsockname())
        packets = sum(sender.send_access_unit(u.data, u.nals, u.timestamp_ms * 90) for u in units) / len(units)

        def run(units: list[AccessUnit] = units, sender: RtpSender = sender) -> None:
            for u in units:
                sender.send_access_unit(u.data, u.nals, u.timestamp_ms * 90)
        rate = _median_rate(run, len(units), rounds)
        sender.close()
        us = 1e6 / rate
        out[name] = {"us_per_access_unit": round(us, 2), "packets_per_access_unit": round(packets, 1),
                               "cpu_share_at_30fps": round(us * 30 / 1e6, 5)}
    audio = AudioRtp(Codec.L16, 16000, 1, rx.getsockname(), UdpConfig())
    pcm = (np.sin(np.arange(320) / 5) * 8000).astype("<i2")
    n = 5000

    def run_audio() -> None:
        for k in range(n):
            audio.send_pcm(k * 320, pcm)
    rate = _median_rate(run_audio, n, rounds)
    audio.sender.close()
    out["l16_16k_20ms"] = {"us_per_packet": round(1e6 / rate, 2), "cpu_share_per_stream": round(50 / rate, 5)}
    rx.close()
    return out


class _Control:
    def on_connected(self, transport: Any) -> None: ...
    def on_control(self, doc: dict[str, Any]) -> None: ...
    def on_disconnected(self) -> None: ...


def _audio_messages(n: int) -> list[bytes]:
    pcm = (np.sin(np.arange(80) / 5) * 8000).astype(np.int8).tobytes()  # 10 ms of G.711 at 8 kHz
    return [protocol.encode(protocol.build_media(14, data=pcm, timestamp=1738392033699 + 10 * i, user_id=16778240 + (i % 3) * 1024,
                                                 user_name="John Smith")) for i in range(n)]


class _Background:
    """Video work in other threads while the audio feed runs: "none", "decode" or "rtp"."""

    def __init__(self, kind: str, units: list[AccessUnit], config: Any) -> None:
        from gateway import shm
        from gateway.video import MediaFollower, VideoConfig

        self.kind = kind
        self.stop = threading.Event()
        self.work = 0
        self.threads: list[threading.Thread] = []
        self.dec: FrameDecoder | None = None
        self.follower: Any = None
        self.pub: Any = None
        if kind == "decode":
            self.dec = FrameDecoder(self._count, pixel_format="rgb24", queue_size=4)
            self.threads.append(threading.Thread(target=self._pump, args=(units,), daemon=True))
        elif kind == "rtp":
            self.pub = shm.ShmPublisher(f"v-{uuid.uuid4().hex}", config=config, audio=AudioParams(), video=VideoParams(codec=Codec.H264))
            rx = _sink_socket()
            port = rx.getsockname()[1]
            rx.close()
            params = protocol.MediaParams(audio=AudioParams(), video=VideoParams(codec=Codec.H264))
            self.follower = MediaFollower(self.pub, video_cfg=VideoConfig(), params=params,
                                          udp_cfg=UdpConfig(enabled=True, base_port=port & ~1))
            self.threads.append(threading.Thread(target=self._poll, daemon=True))
        for t in self.threads:
            t.start()

    def _count(self, _f: Any) -> None:
        self.work += 1

    def _pump(self, units: list[AccessUnit]) -> None:
        assert self.dec is not None
        while not self.stop.is_set():
            for u in units:
                while not self.dec.submit("video", Codec.H264, u):
                    if self.stop.wait(0.001):
                        return

    def _poll(self) -> None:
        while not self.stop.wait(0.01):  # the follower thread's default interval
            self.follower.poll()
            self.work += 1

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        if self.dec is not None:
            self.dec.close()
        if self.follower is not None:
            self.follower.close()
            self.pub.close()


def bench_audio_impact(hd: list[bytes], rounds: int) -> dict[str, Any]:
    """Audio msgs/s through the native listener while video work runs in other threads (interleaved rounds)."""
    from gateway import shm

    prefix = f"bench-video-{uuid.uuid4().hex[:8]}"
    shm_dir = tempfile.mkdtemp()
    config = shm.ShmConfig(prefix=prefix, shm_dir=shm_dir, raw_audio_bytes=1 << 22)
    msgs = _audio_messages(20000)
    units = _units(Codec.H264, hd)
    repeat = 10
    rates: dict[str, list[float]] = {"none": [], "decode": [], "rtp": []}
    cpu_ns: dict[str, list[float]] = {"none": [], "decode": [], "rtp": []}
    work: dict[str, int] = {"none": 0, "decode": 0, "rtp": 0}
    for _ in range(rounds):
        for kind in rates:
            bg = _Background(kind, units, config)
            time.sleep(0.05)
            pub = shm.ShmPublisher(f"a-{uuid.uuid4().hex}", config=config, audio=AudioParams(codec=Codec.G711, sample_rate=SampleRate.SR_8K))
            feed = _native.MediaListener(pub, _Control()).feed
            t, c = time.perf_counter(), time.thread_time_ns()
            for _ in range(repeat):  # ~0.1 s: many GIL hand-overs to the other threads
                for m in msgs:
                    feed(m, False)
            n = repeat * len(msgs)
            rates[kind].append(n / (time.perf_counter() - t))
            cpu_ns[kind].append((time.thread_time_ns() - c) / n)
            pub.close()
            bg.close()
            work[kind] += bg.work
    med = {k: statistics.median(v) for k, v in rates.items()}
    out: dict[str, Any] = {"rounds": rounds, "messages_per_round": repeat * len(msgs)}
    for kind, label in (("none", "alone"), ("decode", "with_decoder_busy_720p"), ("rtp", "with_rtp_follower")):
        out[label] = {"audio_msgs_per_s": round(med[kind]), "ratio_to_alone": round(med[kind] / med["none"], 3),
                      "audio_thread_cpu_ns_per_msg": round(statistics.median(cpu_ns[kind]), 1),
                      "background_work_items": work[kind]}
    return out


def bench_follower_poll(rounds: int) -> dict[str, Any]:
    """Cost of one idle follower poll (a stream with video and audio RTP, nothing new)."""
    from gateway import shm
    from gateway.video import MediaFollower, VideoConfig

    config = shm.ShmConfig(prefix=f"bench-video-{uuid.uuid4().hex[:8]}", shm_dir=tempfile.mkdtemp())
    pub = shm.ShmPublisher(f"p-{uuid.uuid4().hex}", config=config, audio=AudioParams(), video=VideoParams(codec=Codec.H264))
    params = protocol.MediaParams(audio=AudioParams(), video=VideoParams(codec=Codec.H264))
    f = MediaFollower(pub, video_cfg=VideoConfig(), params=params, udp_cfg=UdpConfig(enabled=True, base_port=46000))
    n = 5000
    rate = _median_rate(lambda: [f.poll() for _ in range(n)], n, rounds)
    f.close()
    pub.close()
    return {"us_per_idle_poll": round(1e6 / rate, 2), "cpu_share_per_stream_at_50_polls_per_s": round(50 / rate, 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=120, help="pictures per set (30 fps)")
    args = ap.parse_args()
    sets = {
        "h264_640x360": (int(Codec.H264), _frames(Codec.H264, Resolution.SD, 30, args.frames)),
        "h264_1280x720": (int(Codec.H264), _frames(Codec.H264, Resolution.HD, 30, args.frames)),
        "jpeg_640x360": (int(Codec.JPG), _frames(Codec.JPG, Resolution.SD, 5, max(10, args.frames // 4))),
    }
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "demux": bench_demux(sets, args.rounds),
        "decode": bench_decode(sets, max(1, args.rounds // 2)),
        "rtp": bench_rtp(sets, args.rounds),
        "follower_poll": bench_follower_poll(args.rounds),
        "audio_impact": bench_audio_impact(sets["h264_1280x720"][1], max(7, args.rounds)),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for section, rows in result.items():
        print(f"[{section}]")
        for k, v in rows.items():
            print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
