"""Runs Zoom's official ``rtms`` client in its own process against the simulator.

Usage: ``python tests/official_client_runner.py CONFIG.json``; CONFIG holds ``payload`` (the join
dict), ``out`` (a JSON-lines file to write every callback to) and ``deadline_s``. One explicit
``rtms.EventLoop`` per process, client added and joined before the loop runs (OFFICIAL_CLIENT.md 7).
The loop stops when the SDK reports ``on_leave`` (the simulator sends msg 8 TERMINATED) or at the
deadline.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time

import rtms


def main() -> int:
    with open(sys.argv[1]) as fh:
        cfg = json.load(fh)
    out = open(cfg["out"], "a", buffering=1)
    lock = threading.Lock()

    def write(record: dict) -> None:
        with lock:
            out.write(json.dumps(record) + "\n")

    loop = rtms.EventLoop(poll_interval=0.001)
    client = rtms.Client()
    loop.add(client)
    # L16, 16 kHz, mono, multi-stream, 20 ms, 320 samples (OFFICIAL_CLIENT.md 3.3).
    client.set_audio_params(rtms.AudioParams(content_type=2, codec=1, sample_rate=1, channel=1, data_opt=2, duration=20, frame_size=320))

    def on_audio(data: bytes, size: int, timestamp: int, metadata: object) -> None:
        write({"cb": "audio", "user_id": metadata.userId, "user_name": metadata.userName, "ts": timestamp, "size": size, "data": base64.b64encode(data).decode()})

    def on_transcript(data: bytes, size: int, timestamp: int, metadata: object) -> None:
        write({"cb": "transcript", "user_id": metadata.userId, "user_name": metadata.userName, "ts": timestamp, "text": bytes(data).decode("utf-8")})

    def on_join(reason: int) -> None:
        write({"cb": "join_confirm", "reason": reason})

    def on_leave(reason: int) -> None:
        write({"cb": "leave", "reason": reason})
        loop.stop()

    client.on_audio_data(on_audio)
    client.on_transcript_data(on_transcript)
    client.on_join_confirm(on_join)
    client.on_leave(on_leave)
    client.join(cfg["payload"])

    timer = threading.Timer(float(cfg.get("deadline_s", 30)), loop.stop)
    timer.daemon = True
    timer.start()
    started = time.monotonic()
    loop.run()
    write({"cb": "exit", "after_s": round(time.monotonic() - started, 3)})
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
