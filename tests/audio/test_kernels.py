"""Native audio kernels (_native/mix.pxi) against numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import _native

CAP = 64


def staging(slots: int = 3, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((slots, CAP * channels), np.int16), np.zeros((slots, CAP), np.uint8)


def test_stage_write_wraps_and_marks() -> None:
    buf, have = staging()
    data = np.arange(1, 21, dtype=np.int16)
    assert _native.audio_stage_write(buf, have, 1, 3 * CAP + 54, data.view(np.uint8), 1) == 0
    pos = (np.arange(54, 74)) % CAP
    np.testing.assert_array_equal(buf[1, pos], data)
    assert have[1].sum() == 20 and have[1, pos].all()
    assert not buf[0].any() and not buf[2].any()


def test_stage_write_never_writes_a_sample_twice() -> None:
    buf, have = staging()
    a = np.full(10, 7, np.int16)
    b = np.full(10, 9, np.int16)
    assert _native.audio_stage_write(buf, have, 0, 100, a.view(np.uint8), 1) == 0
    assert _native.audio_stage_write(buf, have, 0, 100, b.view(np.uint8), 1) == 10  # exact duplicate: untouched
    assert _native.audio_stage_write(buf, have, 0, 105, b.view(np.uint8), 1) == 5  # overlap: only new frames
    pos = np.arange(100, 115) % CAP
    np.testing.assert_array_equal(buf[0, pos], [7] * 10 + [9] * 5)
    assert _native.audio_count(have, 0, 95, 120) == 15


def test_stage_write_stereo_from_bytes() -> None:
    buf, have = staging(channels=2)
    frames = np.array([[1, -1], [2, -2], [3, -3]], dtype="<i2")
    _native.audio_stage_write(buf, have, 2, CAP - 1, memoryview(frames.tobytes()), 2)
    view = buf[2].reshape(CAP, 2)
    np.testing.assert_array_equal(view[[CAP - 1, 0, 1]], frames)


def test_stage_clear_and_run_end() -> None:
    buf, have = staging()
    _native.audio_stage_write(buf, have, 0, 10, np.ones(5, np.int16).view(np.uint8), 1)
    assert _native.audio_run_end(have, 0, 0, 40) == 10
    assert _native.audio_run_end(have, 0, 10, 40) == 15
    assert _native.audio_run_end(have, 0, 12, 13) == 13
    _native.audio_stage_clear(buf, have, 0, 8, 5)
    assert have[0, 8:13].sum() == 0 and have[0, 13:15].all() and buf[0, 10:13].sum() == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-32768, 32767), min_size=3 * CAP, max_size=3 * CAP), st.integers(0, 10**9), st.integers(1, CAP))
def test_mix_is_the_clipped_int32_sum(values: list[int], start: int, n: int) -> None:
    buf = np.array(values, dtype=np.int16).reshape(3, CAP)
    have = (np.abs(buf) % 3 != 0).astype(np.uint8)
    out = np.zeros(CAP, np.int16)
    out_have = np.zeros(CAP, np.uint8)
    slots = np.array([0, 2], np.int32)
    _native.audio_mix(buf, have, slots, start, n, out, out_have)
    pos = (start + np.arange(n)) % CAP
    ref = np.clip(buf[0, pos].astype(np.int32) + buf[2, pos], -32768, 32767)
    np.testing.assert_array_equal(out[:n], ref)
    np.testing.assert_array_equal(out_have[:n], have[0, pos] | have[2, pos])


def test_mix_clips_the_sum_not_each_add() -> None:
    buf = np.zeros((3, CAP), np.int16)
    buf[0, 0], buf[1, 0], buf[2, 0] = 30000, 30000, -30000
    have = np.ones((3, CAP), np.uint8)
    out = np.zeros(CAP, np.int16)
    _native.audio_mix(buf, have, np.arange(3, dtype=np.int32), 0, 1, out, np.zeros(CAP, np.uint8))
    assert out[0] == 30000  # a chain of saturating adds would give 2767
    _native.audio_mix(buf, have, np.array([0, 1], np.int32), 0, 1, out, np.zeros(CAP, np.uint8))
    assert out[0] == 32767


def test_conversions() -> None:
    x = np.array([-32768, -1, 0, 1, 16384, 32767], np.int16)
    f = np.zeros(6, np.float32)
    _native.audio_i16_to_f32(x, f)
    np.testing.assert_array_equal(f, x / np.float32(32768))
    back = np.zeros(6, np.int16)
    _native.audio_f32_to_i16(f, back)
    np.testing.assert_array_equal(back, x)
    _native.audio_f32_to_i16(np.array([2.0, -2.0, 0.49 / 32768, -0.51 / 32768, 1.5 / 32768, 0, 0], np.float32)[:6], back)
    np.testing.assert_array_equal(back, [32767, -32768, 0, -1, 2, 0])
    st_ = np.array([100, 201, -5, -6, 32767, 32767], np.int16)
    mono = np.zeros(3, np.int16)
    _native.audio_downmix_i16(st_, mono)
    np.testing.assert_array_equal(mono, [150, -6, 32767])
    monof = np.zeros(3, np.float32)
    _native.audio_downmix_i16_to_f32(st_, monof)
    np.testing.assert_allclose(monof, [301 / 65536, -11 / 65536, 65534 / 65536], rtol=1e-6)
    up = np.zeros(6, np.int16)
    _native.audio_upmix_i16(np.array([1, -2, 3], np.int16), up)
    np.testing.assert_array_equal(up, [1, 1, -2, -2, 3, 3])


def test_table_decode() -> None:
    table = np.arange(256, dtype=np.int16) * 3 - 300
    codes = np.array([0, 255, 17, 128], np.uint8)
    out = np.zeros(4, np.int16)
    assert _native.audio_table_decode(memoryview(codes.tobytes()), table, out) == 4
    np.testing.assert_array_equal(out, table[codes])


def test_bad_arguments_raise_value_error() -> None:
    buf, have = staging()
    with pytest.raises(ValueError):
        _native.audio_stage_write(buf, have, 3, 0, b"\x00\x00", 1)
    with pytest.raises(ValueError):
        _native.audio_stage_write(buf, have, 0, 0, b"\x00\x00" * (CAP + 1), 1)
    with pytest.raises(ValueError):
        _native.audio_stage_write(np.zeros((3, 60), np.int16), np.zeros((3, 60), np.uint8), 0, 0, b"\x00\x00", 1)
    with pytest.raises(ValueError):
        _native.audio_mix(buf, have, np.array([5], np.int32), 0, 4, np.zeros(4, np.int16), np.zeros(4, np.uint8))
    with pytest.raises(ValueError):
        _native.audio_table_decode(b"\x00", np.zeros(10, np.int16), np.zeros(1, np.int16))
    with pytest.raises(ValueError):
        _native.audio_count(have, 0, 0, CAP + 1)
