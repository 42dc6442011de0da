"""Model-ready windows: fixed windows with a hop, as zero-copy numpy views of a mirrored ring."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.audio import AudioEngine, AudioFormat, MirroredRing, WindowReader, sliding_windows
from gateway.protocol import AudioParams, DataOption
from gateway.sim.content import MeetingContent
from tests.audio.helpers import feed, meeting_packets


def test_every_span_is_one_contiguous_view_across_the_wrap() -> None:
    ring = MirroredRing(100, dtype=np.float32)
    ref = np.arange(1000, dtype=np.float32)
    for k in range(0, 1000, 37):
        ring.write(5000 + k, ref[k : k + 37], False)
    assert ring.end == 6000
    for start in range(5900, 5960):
        v = ring.view(start, 40)
        assert np.shares_memory(v, ring.data) and v.flags.c_contiguous
        np.testing.assert_array_equal(v, ref[start - 5000 : start - 5000 + 40])
    with pytest.raises(IndexError):
        ring.view(5899, 10)  # overwritten


def test_window_reader_30s_windows_every_second() -> None:
    rate = 16000
    ring = MirroredRing(32 * rate, dtype=np.float32)
    reader = WindowReader(ring, 30 * rate, rate)
    ref = (np.arange(40 * rate) % 9973).astype(np.float32)
    got: list[tuple[int, np.ndarray]] = []
    for k in range(0, 40 * rate, 320):  # 20 ms writes, windows read as they complete
        ring.write(k, ref[k : k + 320], False)
        for start, view in reader.ready():
            assert np.shares_memory(view, ring.data)
            np.testing.assert_array_equal(view, ref[start : start + 30 * rate])
            got.append((start, view))
    assert [s for s, _ in got] == [s * rate for s in range(11)]
    assert reader.skipped == 0


def test_gaps_and_skips_are_marked_and_slow_readers_skip_lost_windows() -> None:
    ring = MirroredRing(64, dtype=np.int16)
    ring.write(0, np.ones(10, np.int16), False)
    ring.write(10, np.zeros(5, np.int16), True)
    ring.write(20, np.ones(10, np.int16), False)  # 15..20 never written: a gap
    np.testing.assert_array_equal(ring.gap_view(0, 30), [False] * 10 + [True] * 10 + [False] * 10)
    reader = WindowReader(ring, 16, 8)
    ring.write(30, np.ones(200, np.int16), False)  # overruns the ring before the reader looks
    starts = [s for s, _ in reader.ready()]
    assert starts[0] >= 230 - 64 and reader.skipped > 0
    assert list(sliding_windows(ring, 16, 8, start=200)) and all(len(v) == 16 for _, v in sliding_windows(ring, 16, 8, start=200))


def test_engine_format_into_windows() -> None:
    params = AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS)
    content = MeetingContent(3, seed=21)
    eng = AudioEngine(None, params)
    ring = MirroredRing(4 * 16000, dtype=np.float32)
    eng.add_format(AudioFormat(16000, "float32", 1), ring)
    feed(eng, meeting_packets(content, params, 0, 5000))
    reader = WindowReader(ring, 2 * 16000, 16000)
    windows = list(reader.ready())
    assert len(windows) >= 2
    ref = content.expected_pcm(0, 16000, 0, 5000).astype(np.float32)
    for start, view in windows:
        k = start - 960  # the engine's index 0 is one reorder window (60 ms) before the first packet
        lo = max(k, 0)
        np.testing.assert_array_equal(view[lo - k :], ref[lo : k + len(view)])


def test_ring_refuses_a_mismatched_sample_format() -> None:
    ring = MirroredRing(64, dtype=np.float32)
    with pytest.raises(TypeError):
        ring.write(0, np.zeros(4, np.int16), False)
