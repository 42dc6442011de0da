"""Property test: the PCM ring against a plain-Python model of docs/SHM.md section 4.

Random packet streams (in order, duplicates, older packets, small overlaps, jumps ahead, packets
of 20-60 ms) are written through the native C path while a reader reads in random chunk sizes.
Every frame the reader gets must equal the model's frame at that index, gaps must match exactly,
and every frame it does not get must be counted in ``lost`` and really be gone from the ring.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import _native, client

T0 = 1_738_392_033_000
CAP = 2048  # audio_seconds=0.1 at 16 kHz; mirror 1024

steps = st.lists(
    st.tuples(
        st.sampled_from(["next", "next", "next", "dup", "older", "overlap", "jump", "jump_small"]),
        st.integers(1, 3),  # packet length in 20 ms units
        st.integers(1, 2000),  # read chunk (frames); 2000 is "everything"
        st.booleans(),  # read after this packet?
        st.integers(1, 7),  # jump/overlap size in ms
    ),
    min_size=1,
    max_size=120,
)


class Model:
    def __init__(self) -> None:
        self.origin: int | None = None
        self.w: int | None = None
        self.start = 0
        self.frames: dict[int, int] = {}
        self.gaps: list[tuple[int, int]] = []
        self.last_ts = T0
        self.dropped = 0

    def write(self, ts: int, values: np.ndarray) -> None:
        if self.origin is None:
            self.origin = ts
        if ts < self.origin:
            self.dropped += 1
            return
        s, n = (ts - self.origin) * 16, len(values)
        if self.w is None:
            self.start = self.w = s
        if s + n <= self.w:
            self.dropped += 1
            return
        if s > self.w:
            self.gaps.append((self.w, s - self.w))
            for i in range(self.w, s):
                self.frames[i] = 0
        for j in range(max(0, self.w - s), n):
            self.frames[s + j] = int(values[j])
        self.w = s + n


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_ring_matches_the_model(make_pub, steps) -> None:
    pub = make_pub(audio_seconds=0.1)
    model = Model()
    rng = np.random.default_rng(len(steps))
    ts = T0
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        r = s.mixed()
        cursor = 0
        for k, (what, units, chunk, read, delta) in enumerate(steps):
            n = 320 * units
            if k:
                if what == "next":
                    ts = model.last_ts
                elif what == "dup":
                    ts = model.last_ts - 20 * units
                elif what == "older":
                    ts = model.last_ts - 200
                elif what == "overlap":
                    ts = model.last_ts - delta
                elif what == "jump":
                    ts = model.last_ts + 20 * delta
                else:
                    ts = model.last_ts + delta
            values = rng.integers(-32768, 32767, n, dtype=np.int16)
            _native._test_write_audio(pub, 0, ts, values.tobytes())
            model.write(ts, values)
            model.last_ts = max(model.last_ts, ts + 20 * units)
            if read:
                before = max(cursor, model.start)
                arr, new_cursor, lost, gaps = r.read_since(cursor, max_frames=chunk)
                first = new_cursor - len(arr)
                oldest = max(model.start, (model.w or 0) - CAP)
                assert first == before + lost
                assert lost == max(0, oldest - before)
                expected = np.array([model.frames[i] for i in range(first, new_cursor)], dtype=np.int16)
                assert np.array_equal(arr, expected)
                want = [client.Gap(max(a, first), min(a + b, new_cursor) - max(a, first))
                        for a, b in model.gaps if a < new_cursor and a + b > first]
                assert gaps == want
                cursor = new_cursor
                del arr
        assert r.write_index == (model.w or 0)
        assert r.stats()["dropped_packets"] == model.dropped
    pub.close()
