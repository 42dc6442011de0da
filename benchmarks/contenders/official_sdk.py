"""Contender 2: Zoom's official ``rtms`` SDK, set up as its documentation recommends for many meetings.

One ``EventLoopPool`` per process (1 thread per ~25 clients, its scaling guidance, capped at 8),
every client added and joined before the pool runs (OFFICIAL_CLIENT.md section 7: anything else
races or crashes), ``poll_interval`` 1 ms (the fair setting for latency, section 9(b)), audio
requested as 16 kHz mono L16 multi-stream like every other contender. Callbacks only count and
take the latency stamp from the first 8 PCM bytes.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

from .common import Recorder, finish, pin_from_env, read_init, say, serve_commands

POLL_INTERVAL_S = 0.001


def main() -> None:
    pin_from_env()
    init = read_init()
    os.environ["ZM_RTMS_CLIENT"] = init["client_id"]
    os.environ["ZM_RTMS_SECRET"] = init["client_secret"]
    import rtms  # after the credentials are in the environment (the SDK reads them there)

    rec = Recorder()
    serve_commands(rec)  # from the start, so that an orchestrator gone during the joins ends us too
    streams = init["streams"]
    threads = max(1, min(8, math.ceil(len(streams) / 25)))
    pool = rtms.EventLoopPool(threads=threads, poll_interval=POLL_INTERVAL_S)
    unpack = int.from_bytes
    audio = rec.audio

    def on_audio(data: bytes, size: int, timestamp: int, metadata: Any) -> None:
        audio(unpack(data[:8], "little", signed=True))

    def on_transcript(data: bytes, size: int, timestamp: int, metadata: Any) -> None:
        rec.transcript()

    left: list[int] = []
    clients = []
    for s in streams:
        c = rtms.Client()
        c.set_audio_params(rtms.AudioParams(content_type=2, codec=1, sample_rate=1, channel=1, data_opt=2, duration=20, frame_size=320))
        c.on_audio_data(on_audio)
        c.on_transcript_data(on_transcript)
        c.on_leave(left.append)
        pool.add(c)
        c.join(s["payload"])
        clients.append(c)
    runner = threading.Thread(target=pool.run, name="rtms-pool-main", daemon=True)
    runner.start()
    say("joined")
    rec.stopped.wait()
    finish(rec.report(contender="sdk", pool_threads=threads, poll_interval_ms=POLL_INTERVAL_S * 1000, left=len(left)))


if __name__ == "__main__":
    main()
