"""Property test: the record ring (video/share/events) against a model of docs/SHM.md section 5."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import _native, client
from gateway.protocol import VideoParams

T0 = 1_738_392_033_000
CAP, ICAP = 8192, 64  # video_bytes=8192: index of 64 entries, largest payload 4,064 bytes


def align32(n: int) -> int:
    return (n + 31) & ~31


class Model:
    """Positions as the writer lays them out: 32-byte header, 32-byte alignment, no wrapping."""

    def __init__(self) -> None:
        self.pos = 0
        self.claim = 0
        self.records: list[tuple[int, bytes, int]] = []  # (pos, payload, user id) by seq

    def write(self, payload: bytes, user_id: int) -> bool:
        if len(payload) > CAP // 2 - 32:
            return False
        need = align32(32 + len(payload))
        rem = CAP - (self.pos % CAP)
        start = self.pos + (rem if need > rem else 0)
        self.records.append((start, payload, user_id))
        self.claim = start + need
        self.pos = start + need
        return True

    def oldest(self) -> int:
        ws = len(self.records)
        for seq in range(max(0, ws - ICAP), ws):
            if self.records[seq][0] >= self.claim - CAP:
                return seq
        return ws


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.integers(0, 4200), st.booleans(), st.integers(1, 10)), min_size=1, max_size=150))
def test_record_ring_matches_the_model(make_pub, ops) -> None:
    pub = make_pub(video=VideoParams(), video_bytes=CAP)
    model = Model()
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        v = s.video()
        cursor = 0
        for k, (size, read, chunk) in enumerate(ops):
            payload = bytes((k + i) & 0xFF for i in range(size))
            assert _native._test_write(pub, 1, k, T0 + k, payload) == model.write(payload, k)
            if read:
                frames, new_cursor, lost = v.read_since(cursor, max_frames=chunk)
                oldest = model.oldest()
                assert lost == max(0, oldest - cursor)
                first = cursor + lost
                assert [f.seq for f in frames] == list(range(first, first + len(frames)))
                assert new_cursor == first + len(frames) and len(frames) == min(chunk, len(model.records) - first)
                for f in frames:
                    assert (f.data.tobytes(), f.user_id) == model.records[f.seq][1:]
                cursor = new_cursor
                del frames
        assert v.write_seq == len(model.records)
    pub.close()
