"""Consumer processes for test_consumer_abuse.py: ``python -m tests.shm.abuse_proc ROLE PREFIX STREAM``.

Roles (all on the stream's mixed ring, using only gateway.client):
* ``sleeper``: blocks in the futex wait (the test SIGSTOPs or SIGKILLs it there); exits 0 at the end.
* ``healthy``: reads every frame from the ring's first one, prints ``at <cursor>`` after each read
  (so the test can pace itself), and at the end a JSON summary (frames, lost, sha256).
* ``slow``: reads once, then stalls until a line on stdin, then reads again and reports the loss.
"""

from __future__ import annotations

import hashlib
import json
import sys

from gateway import client


def sleeper(prefix: str, stream_id: str) -> dict:
    """Sleep in the ring's futex until the stream ends (the test stops or kills it meanwhile)."""
    s = client.attach(stream_id, prefix=prefix)
    r = s.mixed()
    r.seek_latest()
    print("ready", flush=True)
    for _ in range(1000):
        if s.ended:
            break
        r.wait(timeout=60.0)
        r.seek_latest()
    s.close()
    return {"ended": True}


def healthy(prefix: str, stream_id: str) -> dict:
    """Follow the ring from its first frame until the stream ends; report progress and a digest."""
    s = client.attach(stream_id, prefix=prefix)
    r = s.mixed()
    r.cursor = 0
    digest = hashlib.sha256()
    frames = lost = 0
    print("ready", flush=True)
    for _ in range(10_000_000):
        ended = s.ended  # read before draining: whatever was committed before the end is read below
        start = r.cursor
        arr, cursor, n_lost, _gaps = r.read_since()
        data = arr.tobytes()
        del arr
        if data and not r.intact(start + n_lost):
            n_lost += 1_000_000  # a torn read: make the test fail loudly
        digest.update(data)
        frames += len(data) // 2
        lost += n_lost
        if data:
            print(f"at {cursor}", flush=True)
        elif ended:
            break
        else:
            r.wait(timeout=1.0)
    s.close()
    return {"frames": frames, "lost": lost, "sha256": digest.hexdigest()}


def slow(prefix: str, stream_id: str) -> dict:
    """Read what is there, stall (as a consumer stuck in its own work would), then read again."""
    s = client.attach(stream_id, prefix=prefix)
    r = s.mixed()
    r.seek_latest()
    start = r.cursor
    print("ready", flush=True)
    sys.stdin.readline()
    arr, cursor, lost, _ = r.read_since()
    result = {"start": start, "cursor": cursor, "lost": lost, "frames": len(arr), "first": int(arr[0]) if len(arr) else None}
    del arr
    s.close()
    return result


if __name__ == "__main__":
    role, prefix, stream = sys.argv[1:4]
    print(json.dumps({"sleeper": sleeper, "healthy": healthy, "slow": slow}[role](prefix, stream)), flush=True)
