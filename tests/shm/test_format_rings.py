"""Format rings (layout 1.1): a converted stream in its own PCM ring, float32 or int16, any rate/channels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from gateway import _native, client


@dataclass(frozen=True)
class Fmt:
    rate_hz: int
    sample_format: str
    channels: int


FORMATS = (Fmt(16000, "float32", 1), Fmt(48000, "float32", 2), Fmt(8000, "int16", 1))


def test_format_rings_hold_their_own_sample_format_rate_and_gaps(make_pub) -> None:
    pub = make_pub(formats=FORMATS)
    assert pub.format_count == 3
    pub.set_origin(1_000)
    mono = np.linspace(-1.0, 1.0, 1600, dtype=np.float32)
    stereo = np.stack([mono, -mono], axis=1).repeat(3, axis=0)  # 4800 frames x 2
    assert pub.write_format(0, 100, mono.view(np.uint8))
    assert pub.write_format(0, 2700, np.zeros(400 * 4, np.uint8), True)  # a marked gap after a hole
    assert pub.write_format(1, 300, stereo.reshape(-1).view(np.uint8))
    assert pub.write_format(2, 50, np.arange(160, dtype=np.int16).view(np.uint8))
    assert not pub.write_format(3, 0, mono.view(np.uint8))  # no such ring
    assert not pub.write_format(1, 0, np.zeros(6, np.uint8))  # not a whole frame
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        assert [(r.user_id, r.rate, r.sample_format, r.channels) for r in s.formats()] == [
            (0, 16000, "float32", 1), (0, 48000, "float32", 2), (0, 8000, "int16", 1)]
        assert s.info["formats"][1] == {"user_id": 0, "rate": 48000, "sample_format": "float32", "channels": 2}
        assert [p.user_id for p in s.participants()] == [0]  # format rings are not participants
        r16 = s.audio_format(16000, "float32", 1)
        arr, cursor, lost, gaps = r16.read_since(0)
        assert arr.dtype == np.float32 and (r16.start_index, cursor, lost) == (100, 3100, 0)
        np.testing.assert_array_equal(arr[:1600], mono)
        assert gaps == [client.Gap(1700, 1400)] and not arr[1600:].any()
        assert r16.index_of(1_100) == 1600  # the ring's own rate on the stream's media clock
        r48 = s.audio_format(rate=48000)
        arr, cursor, _, _ = r48.read_since(0)
        assert arr.shape == (4800, 2) and cursor == 5100
        np.testing.assert_array_equal(arr, stereo)
        arr, _, _, _ = s.audio_format(sample_format="int16").read_since(0)
        np.testing.assert_array_equal(arr, np.arange(160, dtype=np.int16))
        with pytest.raises(KeyError):
            s.audio_format(22050)
    pub.close()


def test_bad_format_specs_are_refused(make_pub) -> None:
    with pytest.raises(ValueError):
        make_pub(formats=(Fmt(16000, "float64", 1),))
    w = _native.ShmWriter()
    with pytest.raises(ValueError):
        w._open(-1, b"s", b"", formats=[(0, 16000, 3, 1, 1024, 256, 64)])  # 3 channels
    with pytest.raises(ValueError):
        w._open(-1, b"s", b"", formats=[(0, 16000, 1, 1, 1000, 256, 64)])  # capacity not a power of two


def test_spare_format_rings_are_assigned_to_participants(make_pub) -> None:
    pub = make_pub("stream-2", formats=FORMATS[:1], participant_formats=FORMATS[:1], max_participants=2)
    assert pub.format_count == 3  # one mixed + two spare groups of one ring
    pub.set_origin(0)
    assert not pub.write_format(1, 0, np.zeros(64, np.uint8))  # spare: refused until assigned
    with client.attach("stream-2", prefix=pub.config.prefix) as s:
        assert [r.user_id for r in s.formats()] == [0]
        pub.assign_format(2, 4242)
        assert pub.write_format(2, 10, np.full(16, 0.5, np.float32).view(np.uint8))
        r = s.audio_format(user_id=4242)
        arr, cursor, _, _ = r.read_since(0)
        assert (r.start_index, cursor) == (10, 26) and (arr == 0.5).all()
        pub.assign_format(2, 77)  # recycled: the old reader sees the change
        with pytest.raises(client.StreamEnded):
            r.read_since(0)
        assert [f.user_id for f in s.formats()] == [0, 77] and s.audio_format(user_id=77).write_index == 0
        assert s.info["participant_formats"] == [{"rate": 16000, "sample_format": "float32", "channels": 1}]
        with pytest.raises(IndexError):
            pub.assign_format(3, 1)
    pub.close()
