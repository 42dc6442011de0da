"""What the audio engine costs in the app's publish path, per packet, against the native fast path.

One meeting, ``--speakers`` participants each sending a 20 ms L16 16 kHz packet every tick (all
talking: the mixer's worst case), ``--seconds`` of media, process CPU time, median of ``--repeat``:

* ``native``      ``[audio] engine = false``: the listener's C path into the rings (reserve/copy/commit)
* ``engine``      ``EngineSink`` -> real ``ShmPublisher``: aligned rings + mixed ring (Python on_audio)
* ``engine+f32``  the same plus the mixed stream as a 16 kHz float32 format ring
* ``engine+48k``  the same plus a 48 kHz float32 format ring (soxr HQ)

The parse and base64 costs before the sink are the same on both paths except the native path
decodes straight into ring memory (benchmarks/bench_parser.py).

    python benchmarks/bench_pipeline.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from gateway import _native  # noqa: E402
from gateway.audio import AudioConfig, AudioFormat  # noqa: E402
from gateway.pipeline import EngineSink  # noqa: E402
from gateway.protocol import AudioParams, DataOption  # noqa: E402
from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher  # noqa: E402

T0 = 1_738_392_033_000
FORMATS = {"engine": [], "engine+f32": [AudioFormat(16000, "float32", 1)],
           "engine+48k": [AudioFormat(16000, "float32", 1), AudioFormat(48000, "float32", 1)]}


def run(name: str, speakers: int, seconds: int) -> float:
    """CPU seconds per packet for one scenario."""
    params = AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS)
    rng = np.random.default_rng(1)
    payloads = [rng.integers(-8000, 8000, 320, dtype=np.int16).tobytes() for _ in range(speakers)]
    ticks = seconds * 50
    with ShmDirectory(ShmConfig(prefix=f"bench-pl-{uuid.uuid4().hex[:8]}")) as d:
        formats = FORMATS.get(name, [])
        pub = ShmPublisher("bench", d, audio=params, formats=formats)
        try:
            if name == "native":
                a = time.process_time_ns()
                ns = 0
                for k in range(speakers):  # per participant, all its packets through reserve/copy/commit
                    ns += _native._bench_write(pub, 0, 16778240 + k, T0, 20, payloads[k], ticks)
                return (time.process_time_ns() - a) / 1e9 / (speakers * ticks)
            sink = EngineSink(pub, params, AudioConfig(), formats=formats)
            views = [memoryview(p) for p in payloads]
            uids = [16778240 + k for k in range(speakers)]
            on_audio = sink.on_audio
            a = time.process_time_ns()
            for t in range(ticks):
                ts = T0 + 20 * t
                for k in range(speakers):
                    on_audio(uids[k], "speaker", ts, views[k])
            sink.engine.flush(final=True)
            return (time.process_time_ns() - a) / 1e9 / (speakers * ticks)
        finally:
            pub.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, Any] = {"speakers": args.speakers, "seconds": args.seconds, "cpu": os.cpu_count(), "us_per_packet": {}}
    for name in ("native", "engine", "engine+f32", "engine+48k"):
        us = statistics.median(run(name, args.speakers, args.seconds) for _ in range(args.repeat)) * 1e6
        out["us_per_packet"][name] = round(us, 3)
        # one core, 3 speakers x 50 packets/s per meeting
        out.setdefault("meetings_per_core", {})[name] = int(1e6 / (us * args.speakers * 50))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for name, us in out["us_per_packet"].items():
            print(f"{name:12s} {us:8.3f} us/packet  {out['meetings_per_core'][name]:7d} 3-speaker meetings per core")


if __name__ == "__main__":
    main()
