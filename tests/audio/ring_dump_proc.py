"""A consumer process: ``python -m tests.audio.ring_dump_proc PREFIX STREAM_ID OUT.npz``.

Uses only gateway.client (like an ML process). Follows every participant ring, the mixed ring and
every format ring from their first frame until the stream ends, and saves what it read: per ring
the first index, the frames (contiguous: a hole or an overlap between reads fails loudly), the gap
list and the frames lost to overruns, plus the stream's media clock origin.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from gateway import client

SHM_DIR = os.environ.get("RTMS_SHM_DIR", client.DEFAULT_SHM_DIR)


def _key(r: client.AudioReader) -> str:
    if r.kind == client.KIND_AUDIO_FORMAT:
        return f"fmt_{r.user_id}_{r.rate}_{r.sample_format}_{r.channels}"
    return f"user_{r.user_id}"


def dump(prefix: str, stream_id: str, out_path: str) -> None:
    s = client.attach(stream_id, prefix=prefix, shm_dir=SHM_DIR)
    readers: dict[str, client.AudioReader] = {}
    chunks: dict[str, list[np.ndarray]] = {}
    first: dict[str, int] = {}
    end: dict[str, int] = {}
    gaps: dict[str, list[tuple[int, int]]] = {}
    lost: dict[str, int] = {}
    table_seq = -1
    print("ready", flush=True)
    for _ in range(10_000_000):
        ended = s.ended  # read before draining: what was committed before the end is read below
        seq = s._m.u64_at(client.STREAM["table_seq"])
        if seq != table_seq:
            table_seq = seq
            for ring in s.rings():
                if ring.ring_type == client.RING_PCM and ring.generation != 0:
                    r = client.AudioReader(s, ring)
                    k = _key(r)
                    if k not in readers:
                        r.cursor = 0
                        readers[k], chunks[k], gaps[k], lost[k] = r, [], [], 0
        progressed = False
        for k, r in readers.items():
            arr, cursor, n_lost, got_gaps = r.read_since()
            if not len(arr):
                continue
            start = cursor - len(arr)
            if k not in first:
                first[k] = start
            elif start != end[k]:
                raise SystemExit(f"{k}: read at {start}, expected {end[k]}")
            chunks[k].append(np.array(arr, copy=True))
            if not r.intact(start):
                n_lost += 1_000_000  # torn: fail loudly
            end[k] = cursor
            lost[k] += n_lost
            for g in got_gaps:  # a gap cut by two reads comes back in two pieces: join them
                if gaps[k] and gaps[k][-1][0] + gaps[k][-1][1] == g.start:
                    gaps[k][-1] = (gaps[k][-1][0], gaps[k][-1][1] + g.length)
                else:
                    gaps[k].append((g.start, g.length))
            progressed = True
            del arr
        if ended and not progressed:
            break
        if not progressed:
            s.wait(timeout=1.0)
    out: dict[str, np.ndarray] = {"origin_ms": np.array(s.origin_ms if s.origin_ms is not None else -1, dtype=np.int64)}
    for k in readers:
        if k in first:
            out[f"{k}.data"] = np.concatenate(chunks[k])
            out[f"{k}.first"] = np.array(first[k], dtype=np.int64)
            out[f"{k}.gaps"] = np.array(gaps[k], dtype=np.int64).reshape(-1, 2)
            out[f"{k}.lost"] = np.array(lost[k], dtype=np.int64)
    s.close()
    np.savez(out_path, **out)
    print("done", flush=True)


if __name__ == "__main__":
    dump(sys.argv[1], sys.argv[2], sys.argv[3])
