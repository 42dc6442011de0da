"""A consumer process for the cross-process tests: ``python -m tests.shm.reader_proc MODE ...``.

Uses only gateway.client (stdlib + numpy), like an ML process would, and reports on stdout.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import zlib

from gateway import client

SHM_DIR = os.environ.get("RTMS_SHM_DIR", client.DEFAULT_SHM_DIR)


def follow(prefix: str, stream_id: str, users: list[int]) -> dict:
    """Read every audio frame of ``users`` and every video frame until the stream ends."""
    s = client.attach(stream_id, prefix=prefix, shm_dir=SHM_DIR)
    audio = {uid: s.audio(uid) for uid in users}
    for r in audio.values():
        r.cursor = 0
    video = s.video()
    video.cursor = 0
    sums = {uid: hashlib.sha256() for uid in users}
    out: dict = {str(uid): {"frames": 0, "lost": 0, "gaps": 0} for uid in users}
    vsum, vout = hashlib.sha256(), {"frames": 0, "lost": 0, "order_ok": True}
    print("ready", flush=True)
    for _ in range(1_000_000):
        ended = s.ended  # read before draining: whatever was committed before the end is read below
        progressed = False
        for uid, r in audio.items():
            start = r.cursor
            arr, _cursor, lost, gaps = r.read_since()
            data = arr.tobytes()
            del arr
            if not r.intact(start + lost):
                out[str(uid)]["lost"] += 1_000_000  # would mean a torn read: make the test fail loudly
            sums[uid].update(data)
            rec = out[str(uid)]
            rec["frames"] += len(data) // 2
            rec["lost"] += lost
            rec["gaps"] += len(gaps)
            progressed |= bool(data)
        frames, _, lost = video.read_since()
        for f in frames:
            payload = f.data.tobytes()
            if not video.intact(f):
                vout["lost"] += 1_000_000
            if f.seq != vout["frames"] + vout["lost"]:
                vout["order_ok"] = False
            vsum.update(payload)
            vout["frames"] += 1
        vout["lost"] += lost
        progressed |= bool(frames)
        if ended and not progressed:
            break
        if not progressed:
            s.wait(timeout=1.0)
    for uid in users:
        out[str(uid)]["sha256"] = sums[uid].hexdigest()
    vout["sha256"] = vsum.hexdigest()
    out["video"] = vout
    out["modules"] = sorted(m for m in ("uvloop", "picows", "gateway._native", "orjson", "aiohttp") if m in sys.modules)
    s.close()
    return out


def follow_all(prefix: str, stream_id: str) -> dict:
    """Follow every participant as it appears (from its first frame) and every video frame.

    Reports per participant the CRC-32 of the frames *received* (gap runs skipped) and per video
    frame (seq, timestamp, user, CRC-32), to compare with what the simulator sent.
    """
    s = client.attach(stream_id, prefix=prefix, shm_dir=SHM_DIR)
    readers: dict[int, client.AudioReader] = {}
    crc: dict[int, int] = {}
    lost: dict[int, int] = {}
    video = s.video()
    video.cursor = 0
    frames_out: list[list[int]] = []
    vlost = 0
    table_seq = -1
    print("ready", flush=True)
    for _ in range(10_000_000):
        ended = s.ended
        seq = s._m.u64_at(client.STREAM["table_seq"])
        if seq != table_seq:
            table_seq = seq
            for ring in s.participants():
                if ring.user_id not in readers:
                    r = client.AudioReader(s, ring)
                    r.cursor = 0  # from the participant's first frame
                    readers[ring.user_id] = r
                    crc.setdefault(ring.user_id, 0)
                    lost.setdefault(ring.user_id, 0)
        progressed = False
        for uid, r in readers.items():
            arr, cursor, n_lost, gaps = r.read_since()
            first = cursor - len(arr)
            pos = first
            for g in [*gaps, client.Gap(cursor, 0)]:
                chunk = arr[pos - first : g.start - first].tobytes()
                crc[uid] = zlib.crc32(chunk, crc[uid])
                pos = g.start + g.length
            if len(arr) and not r.intact(first):
                n_lost += 1_000_000  # torn: fail loudly
            lost[uid] += n_lost
            progressed |= len(arr) > 0
            del arr
        frames, _, n_lost = video.read_since()
        for f in frames:
            frames_out.append([f.seq, f.timestamp_ms, f.user_id, zlib.crc32(f.data.tobytes())])
        vlost += n_lost
        progressed |= bool(frames)
        del frames
        if ended and not progressed:
            break
        if not progressed:
            s.wait(timeout=1.0)
    return {"audio": {str(u): {"crc": crc[u], "lost": lost[u]} for u in readers}, "video": frames_out, "video_lost": vlost}


def wait_once(prefix: str, stream_id: str, timeout: float) -> dict:
    s = client.attach(stream_id, prefix=prefix, shm_dir=SHM_DIR)
    r = s.mixed()
    r.seek_latest()
    print("ready", flush=True)
    t = time.monotonic()
    woke = r.wait(timeout=timeout)
    elapsed = time.monotonic() - t
    arr, cursor, lost, _ = r.read_since()
    result = {"woke": woke, "frames": len(arr), "elapsed": elapsed, "cursor": cursor, "lost": lost}
    del arr
    s.close()
    return result


def spin(prefix: str, stream_id: str) -> None:
    """Read and block forever (the test kills it with SIGKILL at some point)."""
    s = client.attach(stream_id, prefix=prefix, shm_dir=SHM_DIR)
    r = s.mixed()
    v = s.video()
    print("ready", flush=True)
    while True:
        arr, *_ = r.read_since()
        _ = arr.sum()
        del arr
        v.read_since()
        r.wait(timeout=0.5)


def behind(prefix: str, stream_id: str) -> dict:
    """Attach, wait for the writer to lap us (signalled on stdin), then report the exact loss."""
    s = client.attach(stream_id, prefix=prefix, shm_dir=SHM_DIR)
    r = s.mixed()
    r.cursor = 0
    v = s.video()
    v.cursor = 0
    print("ready", flush=True)
    sys.stdin.readline()
    arr, cursor, lost, _ = r.read_since()
    frames, vcursor, vlost = v.read_since()
    result = {"frames": len(arr), "cursor": cursor, "lost": lost, "first": int(arr[0]),
              "video_frames": len(frames), "video_cursor": vcursor, "video_lost": vlost,
              "video_first_seq": frames[0].seq}
    del arr, frames
    s.close()
    return result


if __name__ == "__main__":
    mode, prefix, stream = sys.argv[1:4]
    if mode == "followall":
        print(json.dumps(follow_all(prefix, stream)), flush=True)
    elif mode == "follow":
        print(json.dumps(follow(prefix, stream, [int(u) for u in sys.argv[4].split(",")])), flush=True)
    elif mode == "wait":
        print(json.dumps(wait_once(prefix, stream, float(sys.argv[4]))), flush=True)
    elif mode == "spin":
        spin(prefix, stream)
    elif mode == "behind":
        print(json.dumps(behind(prefix, stream)), flush=True)
