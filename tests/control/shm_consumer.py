"""A shared-memory consumer process for the control acceptance test: ``python -m tests.control.shm_consumer PREFIX``.

Uses only :mod:`gateway.client`, as an ML process would. It waits for a stream to appear in the
gateway's directory (the directory itself may not exist yet), prints ``appeared``, then follows
every audio ring from its first frame and the event ring from record 0 until the stream ends, and
prints one JSON report: per user the received frame range, the gaps the gateway marked, a CRC-32
of the frames actually received (gap runs skipped), frames lost to overruns; every event; and
whether the stream then left the directory.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from typing import Any

from gateway import client

DEADLINE_S = 90.0


def run(prefix: str, shm_dir: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    with client.Directory(prefix, shm_dir) as directory:
        streams = directory.streams()
        while not streams:
            if time.monotonic() > deadline:
                raise SystemExit("no stream appeared")
            directory.wait(timeout=0.5)
            streams = directory.streams()
        info = streams[0]
        print(json.dumps({"appeared": info.stream_id, "segment": info.segment}), flush=True)
        s = client.attach(info, prefix, shm_dir)
        events = s.events()
        events.cursor = 0
        readers: dict[int, client.AudioReader] = {}
        users: dict[int, dict[str, Any]] = {}
        got_events: list[dict[str, Any]] = []
        events_lost = 0
        while time.monotonic() < deadline:
            ended = s.ended  # read before draining: what was committed before the end is read below
            for ring in s.participants():
                if ring.user_id not in readers:
                    reader = client.AudioReader(s, ring)
                    reader.cursor = 0  # from the participant's first frame
                    readers[ring.user_id] = reader
                    users[ring.user_id] = {"first": None, "end": None, "frames": 0, "crc": 0, "gaps": [], "lost": 0}
            progressed = False
            for uid, reader in readers.items():
                arr, cursor, lost, gaps = reader.read_since()
                if not len(arr):
                    continue
                progressed = True
                first = cursor - len(arr)
                rec = users[uid]
                if rec["first"] is None:
                    rec["first"] = first
                elif first != rec["end"]:  # read_since must continue exactly where it stopped
                    rec["lost"] += 1_000_000
                rec["end"] = cursor
                pos = first
                for g in [*gaps, client.Gap(cursor, 0)]:
                    chunk = arr[pos - first : g.start - first].tobytes()
                    rec["crc"] = zlib.crc32(chunk, rec["crc"])
                    rec["frames"] += len(chunk) // 2
                    pos = g.start + g.length
                if not reader.intact(first):
                    lost += 1_000_000  # torn read: fail loudly
                rec["lost"] += lost
                for g in gaps:  # one gap read in several calls comes back in pieces: join them
                    if rec["gaps"] and sum(rec["gaps"][-1]) == g.start:
                        rec["gaps"][-1][1] += g.length
                    else:
                        rec["gaps"].append([g.start, g.length])
                del arr
            batch, _, lost = events.read_since()
            events_lost += lost
            got_events.extend(batch)
            progressed |= bool(batch)
            if ended and not progressed:
                break
            if not progressed:
                s.wait(timeout=0.5)
        origin, rate = s.origin_ms, next(iter(readers.values())).rate if readers else 0
        s.close()
        # the stream leaves the directory (the gateway frees the slot when it ends the stream)
        left = False
        while time.monotonic() < deadline:
            if all(x.stream_id != info.stream_id for x in directory.streams()):
                left = True
                break
            directory.wait(timeout=0.5)
    return {
        "stream_id": info.stream_id,
        "ended": True,
        "origin_ms": origin,
        "rate": rate,
        "users": {str(u): r for u, r in users.items()},
        "events": got_events,
        "events_lost": events_lost,
        "left_directory": left,
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2]), default=str), flush=True)
