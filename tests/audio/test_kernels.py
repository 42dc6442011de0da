"""Native audio kernels (_native/mix.pxi): AudioStage and conversions against numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import _native

CAP = 64


def stage(slots: int = 3, channels: int = 1) -> _native.AudioStage:
    s = _native.AudioStage(slots, CAP, channels)
    s.configure(0, 1000, 0, 1, 0)  # 1 sample per ms: index == timestamp
    return s


def test_write_wraps_and_marks() -> None:
    s = stage()
    data = np.arange(1, 21, dtype=np.int16)
    assert s.write(1, 3 * CAP + 54, data.view(np.uint8)) == 0
    pos = np.arange(54, 74) % CAP
    np.testing.assert_array_equal(s.buf[1, pos], data)
    assert s.have[1].sum() == 20 and s.have[1, pos].all()
    assert not s.buf[0].any() and not s.buf[2].any()


def test_write_never_writes_a_sample_twice() -> None:
    s = stage()
    a = np.full(10, 7, np.int16).view(np.uint8)
    b = np.full(10, 9, np.int16).view(np.uint8)
    assert s.write(0, 100, a) == 0
    assert s.write(0, 100, b) == 10  # exact duplicate: untouched
    assert s.write(0, 105, b) == 5  # overlap: only the new frames
    np.testing.assert_array_equal(s.buf[0, np.arange(100, 115) % CAP], [7] * 10 + [9] * 5)
    assert s.count(0, 95, 120) == 15


def test_stereo_from_bytes() -> None:
    s = stage(channels=2)
    frames = np.array([[1, -1], [2, -2], [3, -3]], dtype="<i2")
    s.write(2, CAP - 1, memoryview(frames.tobytes()))
    np.testing.assert_array_equal(s.buf[2].reshape(CAP, 2)[[CAP - 1, 0, 1]], frames)


def test_states_runs_and_clear() -> None:
    s = stage()
    s.write(0, 10, np.ones(5, np.int16).view(np.uint8))
    assert (s.state(0, 10, 15), s.state(0, 0, 10), s.state(0, 0, 40), s.state(0, 20, 70), s.state(0, 60, 80)) == (1, 0, 2, 0, 2)
    assert (s.run_end(0, 0, 40), s.run_end(0, 10, 40), s.run_end(0, 12, 13)) == (10, 15, 13)
    assert s.is_data(0, 12) and not s.is_data(0, 9)
    s.clear(8, 5)
    assert s.have[0, 8:13].sum() == 0 and s.have[0, 13:15].all() and s.buf[0, 10:13].sum() == 0


def test_ingest_clock_window_and_counters() -> None:
    s = _native.AudioStage(2, 256, 1)
    s.configure(1000, 16000, 32, 16, 16)  # origin 1000 ms, 16 kHz, window 2 ms, quantum 1 ms, snap 1 ms
    pk = np.ones(32, np.int16).view(np.uint8)  # 2 ms packets
    assert s.ingest(0, 1000, pk) == -1  # first packet: nothing closed yet
    assert s.high_end(0) == 32
    assert s.ingest(0, 1004, pk) == 32  # newest start 64 - window 32: [0, 32) may be published
    assert s.ingest(0, 1002, pk) == -1 and s.reorders == 1
    assert s.ingest(0, 1002, pk) == -1 and s.duplicates == 1
    assert s.index_of(0, 1007) == 96  # within snap (1 ms) of the end of the newest packet (96)
    s.ingest(0, 1007, pk)
    assert s.snapped == 1 and s.high_end(0) == 128
    s.closed = 64
    assert s.ingest(0, 1001, pk) == -1 and s.late_packets == 1 and s.late_frames == 32
    assert s.ingest(1, 1003, pk) == -1 and s.late_frames == 32 + 16  # half late: the tail is staged
    assert s.count(1, 64, 80) == 16
    assert s.ingest(0, 1100, pk) == -2 and s.need == 1600 + 32 - 256  # far ahead: publish first
    assert s.ingest(0, 1100, b"") == -1 and s.empty == 1
    assert s.index_of(0, 999) == -16  # floor before the origin


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-32768, 32767), min_size=4 * CAP, max_size=4 * CAP), st.integers(0, 10**9), st.integers(1, CAP), st.integers(0, 4))
def test_mix_is_the_clipped_int32_sum(values: list[int], start: int, n: int, nslots: int) -> None:
    s = stage(slots=4)
    data = np.array(values, dtype=np.int16).reshape(4, CAP)
    marks = (np.abs(data) % 3 != 0).astype(np.uint8)
    for k in range(4):
        for i in range(CAP):
            if marks[k, i]:
                s.write(k, i, data[k, i : i + 1].view(np.uint8))
    slots = list(range(nslots))
    s.set_mix_slots(slots)
    state = s.mix(start, n)
    pos = (start + np.arange(n)) % CAP
    vals = np.where(marks.astype(bool), data, 0)
    ref = np.clip(vals[slots][:, pos].astype(np.int32).sum(axis=0), -32768, 32767)
    ref_have = marks[slots][:, pos].any(axis=0) if slots else np.zeros(n, bool)
    np.testing.assert_array_equal(s.mix_out[:n], ref)
    np.testing.assert_array_equal(s.mix_have[:n].astype(bool), ref_have)
    assert state == (0 if not ref_have.any() else 1 if ref_have.all() else 2)
    if state == 2:
        assert s.mix_run_end(0, n) == int(np.argmax(ref_have != ref_have[0]))


def test_mix_clips_the_sum_not_each_add() -> None:
    s = stage(slots=5)
    for k, v in enumerate((30000, 30000, -30000, 1, 2)):
        s.write(k, 0, np.array([v], np.int16).view(np.uint8))
    s.set_mix_slots([0, 1, 2])
    s.mix(0, 1)
    assert s.mix_out[0] == 30000  # a chain of saturating adds would give 2767
    s.set_mix_slots([0, 1, 2, 3, 4])  # the many-speakers path
    s.mix(0, 1)
    assert s.mix_out[0] == 30003
    s.set_mix_slots([0, 1])
    s.mix(0, 1)
    assert s.mix_out[0] == 32767


def test_grow_keeps_rows() -> None:
    s = stage(slots=1)
    s.write(0, 5, np.array([42], np.int16).view(np.uint8))
    s.grow(8)
    assert s.slots == 8 and s.buf[0, 5] == 42 and s.have[0, 5] == 1 and s.high_end(7) == -1


@pytest.mark.parametrize("mode", [0, 1, 2, 3, 4])
def test_convert_modes(mode: int) -> None:
    x = np.array([-32768, -1, 0, 1, 16384, 32767, 100, 201], np.int16)
    a, b = x[0::2].astype(np.int32), x[1::2].astype(np.int32)
    ref = {
        0: x / np.float32(32768),
        1: ((a + b) >> 1).astype(np.int16),
        2: ((a + b) / 65536).astype(np.float32),
        3: np.repeat(x, 2),
        4: np.repeat(x / np.float32(32768), 2),
    }[mode]
    out = np.zeros(len(ref), dtype=ref.dtype)
    assert _native.audio_convert(x, out, mode) == (len(x) // 2 if mode in (1, 2) else len(x))
    np.testing.assert_allclose(out, ref, rtol=1e-7, atol=0)


def test_f32_to_i16_rounds_and_saturates() -> None:
    back = np.zeros(6, np.int16)
    _native.audio_f32_to_i16(np.array([2.0, -2.0, 0.49 / 32768, -0.51 / 32768, 1.5 / 32768, 0], np.float32), back)
    np.testing.assert_array_equal(back, [32767, -32768, 0, -1, 2, 0])


def test_table_decode() -> None:
    table = np.arange(256, dtype=np.int16) * 3 - 300
    codes = np.array([0, 255, 17, 128], np.uint8)
    out = np.zeros(4, np.int16)
    assert _native.audio_table_decode(memoryview(codes.tobytes()), table, out) == 4
    np.testing.assert_array_equal(out, table[codes])


def test_bad_arguments_raise_value_error() -> None:
    s = stage()
    for call in (
        lambda: s.write(3, 0, b"\x00\x00"),
        lambda: s.write(0, 0, b"\x00\x00" * (CAP + 1)),
        lambda: _native.AudioStage(1, 60, 1),
        lambda: s.set_mix_slots([5]),
        lambda: s.mix(0, CAP + 1),
        lambda: s.count(0, 0, CAP + 1),
        lambda: s.state(0, 0, CAP + 1),
        lambda: s.configure(0, 0, 0, 1, 0),
        lambda: _native.audio_convert(np.zeros(4, np.int16), np.zeros(2, np.float32), 0),
        lambda: _native.audio_convert(np.zeros(4, np.int16), np.zeros(4, np.float32), 9),
        lambda: _native.audio_table_decode(b"\x00", np.zeros(10, np.int16), np.zeros(1, np.int16)),
    ):
        with pytest.raises(ValueError):
            call()
