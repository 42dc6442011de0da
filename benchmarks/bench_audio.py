"""Audio engine cost: align + mix + format conversion/resampling, per participant-second.

Feeds ``--meetings`` engines, interleaved tick by tick as a gateway would see them, with
``--speakers`` participants each sending a 20 ms L16 packet every tick (everyone talking all the
time: the worst case for the mixer), for ``--seconds`` of media, and measures process CPU time.
The output is a null publisher (shared memory is measured elsewhere); the consumer formats are
produced once per meeting and format. Scenarios:

* ``align``          16 kHz in, per-participant staging + gap marking + mixed stream, no formats
* ``16k->16k f32``   the same plus the mixed stream as 16 kHz float32 (conversion only)
* ``48k->16k f32``   48 kHz in, mixed stream resampled to 16 kHz float32 by soxr (HQ)
* ``... +per-user``  also every participant converted (what a per-speaker ASR consumer asks for)
* ``batch 100 ms``   resampling in chunks of 100 ms (``add_format(batch_ms=100)``), rings still every 20 ms
* ``emit 100 ms``    publishing everything in 100 ms batches instead of 20 ms

Also a micro-benchmark of the mixer kernel against numpy on one 20 ms frame of 3 speakers, and
the engine's cost per packet with each compressed codec (the simulator's talk turns; decoding
included), for scale.

    python benchmarks/bench_audio.py --json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from gateway import _native  # noqa: E402
from gateway.audio import MIXED, AudioConfig, AudioEngine, AudioFormat, NullOutput  # noqa: E402
from gateway.protocol import AudioParams, DataOption, SampleRate  # noqa: E402

T0 = 1_738_392_033_000


class _NullSink:
    def write(self, sample_index: int, pcm: Any, gap: bool) -> None:
        pass


def _packets(rate: int, speakers: int) -> list[list[memoryview]]:
    """One second of 20 ms L16 packets per speaker (distinct tones), as borrowed-style memoryviews."""
    out = []
    n = np.arange(rate)
    for s in range(speakers):
        tone = np.round(0.25 * 32767 * np.sin(2 * np.pi * (300 + 200 * s) * n / rate)).astype("<i2").tobytes()
        spp = rate // 50 * 2
        out.append([memoryview(tone)[k * spp : (k + 1) * spp] for k in range(50)])
    return out


def run_scenario(name: str, rate: int, meetings: int, speakers: int, seconds: int, formats: str, emit_ms: int, batch_ms: int = 0) -> dict[str, Any]:
    params = AudioParams(sample_rate=SampleRate.from_hz(rate), data_opt=DataOption.AUDIO_MULTI_STREAMS)
    cfg = AudioConfig(emit_ms=emit_ms)
    engines = [AudioEngine(NullOutput(), params, cfg) for _ in range(meetings)]
    fmt = AudioFormat(16000, "float32", 1)
    uids = [16778240 + 1024 * s for s in range(speakers)]
    for eng in engines:
        if formats in ("mixed", "all"):
            eng.add_format(fmt, _NullSink(), MIXED, batch_ms=batch_ms)
        if formats == "all":
            for uid in uids:
                eng.add_format(fmt, _NullSink(), uid, batch_ms=batch_ms)
    pk = _packets(rate, speakers)
    names = [f"speaker {s}" for s in range(speakers)]
    # warm-up: one second (tracks, converters and soxr states created outside the timed part)
    for tick in range(50):
        ts = T0 + tick * 20
        for eng in engines:
            for s in range(speakers):
                eng.on_audio(uids[s], names[s], ts, pk[s][tick])
    gc.collect()
    gc.freeze()
    ticks = seconds * 50
    t_cpu = time.process_time()
    t_wall = time.perf_counter()
    for tick in range(50, 50 + ticks):
        ts = T0 + tick * 20
        k = tick % 50
        for eng in engines:
            on_audio = eng.on_audio
            for s in range(speakers):
                on_audio(uids[s], names[s], ts, pk[s][k])
    cpu = time.process_time() - t_cpu
    wall = time.perf_counter() - t_wall
    gc.unfreeze()
    for eng in engines:
        st = eng.stats
        assert st.duplicates == st.late_packets == st.decode_errors == 0
    participant_s = meetings * speakers * seconds
    meeting_cpu_per_s = cpu / (meetings * seconds)
    return {
        "scenario": name,
        "input_rate_hz": rate,
        "formats": formats,
        "emit_ms": emit_ms,
        "resample_batch_ms": batch_ms,
        "meetings": meetings,
        "speakers": speakers,
        "seconds": seconds,
        "packets": meetings * speakers * ticks,
        "cpu_s": cpu,
        "wall_s": wall,
        "us_per_packet": cpu / (meetings * speakers * ticks) * 1e6,
        "us_per_participant_second": cpu / participant_s * 1e6,
        "meetings_per_core_realtime": 1.0 / meeting_cpu_per_s,
    }


def codec_scenario(name: str, codec: int, seconds: int) -> dict[str, Any]:
    """Decode cost: one meeting of 3 speakers through the engine with a compressed codec (no formats)."""
    from gateway.protocol import Codec
    from gateway.sim.content import MeetingContent

    params = {
        Codec.G711: AudioParams(codec=Codec.G711, sample_rate=SampleRate.SR_8K, data_opt=DataOption.AUDIO_MULTI_STREAMS),
        Codec.G722: AudioParams(codec=Codec.G722, sample_rate=SampleRate.SR_16K, data_opt=DataOption.AUDIO_MULTI_STREAMS),
        Codec.OPUS: AudioParams(codec=Codec.OPUS, sample_rate=SampleRate.SR_48K, channel=2, data_opt=DataOption.AUDIO_MULTI_STREAMS),
    }[codec]
    content = MeetingContent(3, seed=1, late_join_ms=None, leave_ms=None)
    packets = []
    for t in range(0, seconds * 1000, 20):
        for uid, uname, payload in content.audio_packets(params, t):
            packets.append((uid, uname, T0 + t, memoryview(payload)))
    eng = AudioEngine(NullOutput(), params)
    t_cpu = time.process_time()
    for uid, uname, ts, payload in packets:
        eng.on_audio(uid, uname, ts, payload)
    cpu = time.process_time() - t_cpu
    assert eng.stats.decode_errors == 0
    from gateway.codecs import make_decoder

    decoders: dict[int, Any] = {}
    t_cpu = time.process_time()
    for uid, _uname, _ts, payload in packets:
        dec = decoders.get(uid)
        if dec is None:
            dec = decoders[uid] = make_decoder(params)
        dec.decode(payload)
    decode = time.process_time() - t_cpu
    return {
        "scenario": name,
        "packets": len(packets),
        "packets_per_tick": len(packets) / (seconds * 50),
        "cpu_s": cpu,
        "us_per_packet": cpu / len(packets) * 1e6,
        "decode_only_us_per_packet": decode / len(packets) * 1e6,
    }


def mixer_micro(repeat: int = 20000) -> dict[str, Any]:
    """One 20 ms frame (320 samples) of 3 speakers: the engine's mixer (AudioStage.mix) vs numpy."""
    rng = np.random.default_rng(0)
    cap = 4096
    stage = _native.AudioStage(4, cap, 1)
    rows = [(rng.standard_normal(cap) * 8000).astype(np.int16) for _ in range(3)]
    for s, row in enumerate(rows):
        stage.write(s, 0, row.view(np.uint8))
    stage.set_mix_slots([0, 1, 2])
    t = time.perf_counter()
    for _ in range(repeat):
        stage.mix(100, 320)
    native = (time.perf_counter() - t) / repeat
    views = [r[100:420] for r in rows]
    t = time.perf_counter()
    for _ in range(repeat):
        acc = views[0].astype(np.int32)
        acc += views[1]
        acc += views[2]
        ref = np.clip(acc, -32768, 32767).astype(np.int16)
    py = (time.perf_counter() - t) / repeat
    assert np.array_equal(ref, stage.mix_out[:320])
    return {"scenario": "mixer 3x320 frame", "native_us": native * 1e6, "numpy_us": py * 1e6, "speedup": py / native}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meetings", type=int, default=50)
    ap.add_argument("--speakers", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="runs per scenario; the median is reported")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    scenarios = [
        ("align+mix", 16000, "none", 20, 0),
        ("16k->16k f32 (mixed)", 16000, "mixed", 20, 0),
        ("48k->16k f32 (mixed)", 48000, "mixed", 20, 0),
        ("48k->16k f32 (mixed), resample batch 100 ms", 48000, "mixed", 20, 100),
        ("16k->16k f32 (mixed+per-user)", 16000, "all", 20, 0),
        ("48k->16k f32 (mixed+per-user)", 48000, "all", 20, 0),
        ("48k->16k f32 (mixed+per-user), batch 100 ms", 48000, "all", 20, 100),
        ("16k->16k f32 (mixed), emit 100 ms", 16000, "mixed", 100, 0),
        ("48k->16k f32 (mixed), emit 100 ms", 48000, "mixed", 100, 0),
    ]
    results = []
    for name, rate, formats, emit, batch in scenarios:
        runs = [run_scenario(name, rate, args.meetings, args.speakers, args.seconds, formats, emit, batch) for _ in range(args.repeat)]
        runs.sort(key=lambda r: r["cpu_s"])
        best = dict(runs[len(runs) // 2])
        best["cpu_s_runs"] = [r["cpu_s"] for r in runs]
        results.append(best)
    micro = mixer_micro()
    from gateway.protocol import Codec

    codecs = [codec_scenario(f"decode {c.name}", c, min(args.seconds, 20)) for c in (Codec.G711, Codec.G722, Codec.OPUS)]
    doc = {
        "benchmark": "audio",
        "command": "python benchmarks/bench_audio.py " + " ".join(sys.argv[1:]),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "goal_meetings_per_core": 2000,
        "results": results,
        "mixer": micro,
        "codecs": codecs,
    }
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    print(f"{'scenario':40s} {'us/packet':>10s} {'us/part-s':>10s} {'meetings/core':>14s}")
    for r in results:
        print(f"{r['scenario']:40s} {r['us_per_packet']:10.2f} {r['us_per_participant_second']:10.1f} {r['meetings_per_core_realtime']:14.0f}")
    print(f"mixer kernel {micro['native_us']:.2f} us vs numpy {micro['numpy_us']:.2f} us per frame (x{micro['speedup']:.1f})")
    for c in codecs:
        print(f"{c['scenario']:40s} {c['us_per_packet']:10.2f} us/packet in the engine, {c['decode_only_us_per_packet']:.2f} decoding alone")
    print(f"median of {args.repeat}; cpu runs: " + "; ".join(f"{statistics.median(r['cpu_s_runs']):.3f}" for r in results))


if __name__ == "__main__":
    main()
