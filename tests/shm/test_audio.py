"""PCM rings: layout, byte-exact reads, wraparound, overrun counts, gaps, duplicates, recycling."""

from __future__ import annotations

import numpy as np
import pytest

from gateway import _native, client
from gateway.protocol import AudioChannel, AudioParams, DataOption, SampleRate
from tests.shm.conftest import pcm

SPP = 320  # frames per 20 ms packet at 16 kHz
T0 = 1_738_392_033_000


def test_layout_matches_the_c_header() -> None:
    """gateway/client.py's offsets are the C header's (read back from the compiled module)."""
    lay = _native._shm_layout()
    assert lay["version"] == (client.VERSION_MAJOR, client.VERSION_MINOR)
    assert lay["sizeof"] == {"dir_header": 256, "dir_slot": 256, "stream_header": 512, "ring_desc": 128,
                             "pcm_ring": 384, "record_ring": 384, "record": 32, "gap": 16, "index_entry": 16}
    for section, table in (("stream", client.STREAM), ("desc", client.DESC), ("pcm", client.PCM),
                           ("rec", client.REC), ("record", client.RECORD), ("dir", client.DIR), ("slot", client.SLOT)):
        for field, off in lay[section].items():
            assert table[field] == off, f"{section}.{field}: client {table[field]} != header {off}"


def test_version_and_magic_checked(make_pub) -> None:
    pub = make_pub()
    with open(pub.path, "r+b") as f:
        f.seek(4)
        f.write((2).to_bytes(2, "little"))  # a future major version
    with pytest.raises(client.LayoutError):
        client.StreamReader(pub.path)
    pub.close()


@pytest.mark.parametrize("path", ["native", "python"])
def test_per_participant_audio_byte_exact(make_pub, path: str) -> None:
    pub = make_pub(audio=AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS))
    users = {101: "Ann", 202: "Bob", 0: None}
    for i in range(50):
        for uid, name in users.items():
            data = pcm(uid + i * SPP, SPP)
            if path == "native":
                assert _native._test_write_audio(pub, uid, T0 + 20 * i, data, (name or "").encode())
            else:
                pub.on_audio(uid, name, T0 + 20 * i, memoryview(data))
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        assert {p.user_id: p.user_name for p in s.participants()} == {0: "", 101: "Ann", 202: "Bob"}
        assert s.origin_ms == T0
        for uid in users:
            r = s.audio(uid)
            arr, cursor, lost, gaps = r.read_since()
            assert (cursor, lost, gaps) == (50 * SPP, 0, [])
            assert arr.tobytes() == b"".join(pcm(uid + i * SPP, SPP) for i in range(50))
            assert r.read_latest(40).tobytes() == pcm(uid + 48 * SPP, 2 * SPP)
            assert r.stats()["packets"] == 50
            again, cursor2, _, _ = r.read_since()
            assert len(again) == 0 and cursor2 == cursor
        del arr, again
    pub.close()


def test_stereo_48k_frames(make_pub) -> None:
    params = AudioParams(sample_rate=SampleRate.SR_48K, channel=AudioChannel.STEREO)
    pub = make_pub(audio=params)
    frames = 960
    for i in range(5):
        _native._test_write_audio(pub, 0, T0 + 20 * i, pcm(i * frames, frames, 2))
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        r = s.mixed()
        arr, cursor, lost, _ = r.read_since(0)
        assert arr.shape == (5 * frames, 2) and cursor == 5 * frames and lost == 0
        assert arr.tobytes() == b"".join(pcm(i * frames, frames, 2) for i in range(5))
        del arr
    pub.close()


def test_wraparound_views_and_copies(make_pub) -> None:
    """A 2048-frame ring (mirror 1024) written 40 times around, read in odd-sized chunks."""
    pub = make_pub(audio_seconds=0.1)
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        r = s.mixed()
        assert (r.capacity, r.mirror) == (2048, 1024)
        got, expected, cursor = [], [], 0
        chunk_sizes = [1, 37, 1024, 500, 2000, 333]
        for i in range(256):
            data = pcm(i * SPP, SPP)
            _native._test_write_audio(pub, 0, T0 + 20 * i, data)
            expected.append(data)
            arr, cursor, lost, gaps = r.read_since(cursor, max_frames=chunk_sizes[i % len(chunk_sizes)])
            assert lost == 0 and gaps == []
            got.append(arr.tobytes())
        while cursor < r.write_index:
            arr, cursor, lost, _ = r.read_since(cursor, max_frames=700)
            assert lost == 0
            got.append(arr.tobytes())
        assert b"".join(got) == b"".join(expected)
        # Every window up to the mirror length is a zero-copy view, even across the wrap point.
        for ms in (20, 40, 64):
            latest = r.read_latest(ms)
            assert not latest.flags.owndata
            assert latest.tobytes() == b"".join(expected)[-len(latest) * 2 :]
        del arr, latest
    pub.close()


def test_overrun_reports_the_exact_loss(make_pub) -> None:
    pub = make_pub(audio_seconds=0.1)  # capacity 2048 frames
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        r = s.mixed()
        for i in range(20):  # 6400 frames written, reader never looked
            _native._test_write_audio(pub, 0, T0 + 20 * i, pcm(i * SPP, SPP))
        arr, cursor, lost, gaps = r.read_since(0)
        assert cursor == 6400
        assert lost == 6400 - 2048 and gaps == []
        assert len(arr) == 2048
        assert arr.tobytes() == b"".join(pcm(i * SPP, SPP) for i in range(20))[-2048 * 2 :]
        assert not r.intact(0) and r.intact(6400 - 2048)
        del arr
    pub.close()


def test_gaps_marked_at_exact_positions_and_duplicates_dropped(make_pub) -> None:
    pub = make_pub()
    write = _native._test_write_audio
    assert write(pub, 7, T0, pcm(0, SPP))                     # frames [0, 320)
    assert write(pub, 7, T0 + 20, pcm(320, SPP))              # [320, 640)
    assert not write(pub, 7, T0 + 20, pcm(320, SPP))          # exact duplicate: dropped
    assert not write(pub, 7, T0, pcm(0, SPP))                 # older: dropped
    assert write(pub, 7, T0 + 100, pcm(1600, SPP))            # 60 ms missing: gap [640, 1600)
    assert write(pub, 7, T0 + 123, pcm(1968, SPP))            # 3 ms missing: gap [1920, 1968)
    assert write(pub, 7, T0 + 135, pcm(2160, SPP))            # overlaps by 128 frames: trimmed
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        r = s.audio(7)
        arr, cursor, lost, gaps = r.read_since(0)
        assert cursor == 2160 + SPP and lost == 0
        assert gaps == [client.Gap(640, 960), client.Gap(1920, 48)]
        assert not arr[640:1600].any() and not arr[1920:1968].any()
        assert arr[:640].tobytes() == pcm(0, 640)
        assert arr[1600:1920].tobytes() == pcm(1600, SPP)
        assert arr[1968:2288].tobytes() == pcm(1968, SPP)
        assert arr[2288:].tobytes() == pcm(2160, SPP)[128 * 2 :]
        # Windows clip gap runs to what they cover.
        assert r.gaps(1000, 1930) == [client.Gap(1000, 600), client.Gap(1920, 10)]
        _, _, _, part = r.read_since(700, max_frames=100)
        assert part == [client.Gap(700, 100)]
        st = r.stats()
        assert st["dropped_packets"] == 2 and st["trimmed_frames"] == 128 and st["gap_frames"] == 1008
        assert r.index_of(T0 + 100) == 1600
        del arr
    pub.close()


def test_participant_joining_late_starts_at_its_own_index(make_pub) -> None:
    pub = make_pub()
    _native._test_write_audio(pub, 1, T0, pcm(0, SPP))
    _native._test_write_audio(pub, 2, T0 + 1000, pcm(0, SPP))  # 1 s later on the same media clock
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        r = s.audio(2)
        assert r.start_index == 16000
        arr, cursor, lost, gaps = r.read_since(0)
        assert (cursor, lost, gaps, len(arr)) == (16320, 0, [], SPP)  # nothing before it joined is "lost"
        del arr
    pub.close()


def test_slot_recycled_for_a_new_participant(make_pub) -> None:
    pub = make_pub(max_participants=2)
    for uid in (1, 2):
        _native._test_write_audio(pub, uid, T0, pcm(0, SPP))
    _native._test_write_audio(pub, 2, T0 + 20, pcm(SPP, SPP))
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        old = s.audio(1)
        _native._test_write_audio(pub, 3, T0 + 40, pcm(0, SPP))  # takes user 1's slot (least recent)
        with pytest.raises(client.StreamEnded):
            old.read_since()
        assert sorted(p.user_id for p in s.participants()) == [0, 2, 3]  # 0: the mixed ring
        arr, _, _, gaps = s.audio(3).read_since(0)
        assert arr.tobytes() == pcm(0, SPP) and gaps == []
        del arr
    pub.close()


def test_drop_and_origin(make_pub) -> None:
    pub = make_pub(origin_ms=T0 - 1000)
    _native._test_write_audio(pub, 0, T0, pcm(0, SPP))
    assert not _native._test_write_audio(pub, 0, T0 - 2000, pcm(0, SPP))  # before the origin
    pub.on_drop("audio", "bad_base64")
    pub.on_drop("deskshare", "too_large")
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        assert s.origin_ms == T0 - 1000
        assert s.mixed().start_index == 16000
        assert s.drops() == {"audio": 1, "video": 0, "share": 1, "transcript": 0, "chat": 0}
    pub.close()


def test_engine_output_written_at_explicit_indices(make_pub) -> None:
    """The audio engine's AudioOutput calls: contiguous writes, a skipped span, an explicit gap."""
    pub = make_pub()
    pub.set_origin(T0 - 100)
    mixed = np.frombuffer(pcm(0, 4 * SPP), "<i2")
    pub.write_mixed(1600, mixed[:SPP], False)                 # [1600, 1920)
    pub.write_mixed(1920, mixed[SPP : 2 * SPP], False)        # [1920, 2240)
    pub.write_mixed(2240, mixed[2 * SPP : 3 * SPP], True)     # engine says: missing, [2240, 2560)
    pub.write_mixed(2880, mixed[3 * SPP :], False)            # skipped [2560, 2880), then [2880, 3200)
    pub.write_participant(4, 1600, mixed[:SPP].reshape(-1, 1), False)
    assert not pub.write_pcm(0, 1000, mixed[:SPP].view(np.uint8))  # older than what is there: dropped
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        r = s.mixed()
        arr, cursor, lost, gaps = r.read_since(0)
        assert (r.start_index, cursor, lost) == (1600, 3200, 0)
        assert gaps == [client.Gap(2240, 640)]  # the explicit gap and the skipped span, merged
        assert arr[:640].tobytes() == pcm(0, 2 * SPP) and not arr[640:1280].any()
        assert arr[1280:].tobytes() == pcm(3 * SPP, SPP)
        assert s.audio(4).read_since(0)[0].tobytes() == pcm(0, SPP)
        assert r.index_of(T0) == 1600
        del arr
    pub.close()


def test_jitter_tolerance_snaps_packets_onto_the_write_index(make_pub) -> None:
    pub = make_pub(jitter_ms=2)
    write = _native._test_write_audio
    for i, ts in enumerate((T0, T0 + 21, T0 + 39, T0 + 62, T0 + 90)):  # +1, -1, +2 ms of jitter, then +10
        assert write(pub, 0, ts, pcm(i * SPP, SPP))
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        arr, cursor, _, gaps = s.mixed().read_since(0)
        # The first four are contiguous (snapped); the fifth is 10 ms late: a real gap of 160 frames.
        assert gaps == [client.Gap(4 * SPP, 160)] and cursor == 5 * SPP + 160
        assert arr[: 4 * SPP].tobytes() == pcm(0, 4 * SPP)
        del arr
    pub.close()


def test_packet_longer_than_the_ring_is_dropped(make_pub) -> None:
    pub = make_pub(audio_seconds=0.1)  # 2,048 frames
    assert not _native._test_write_audio(pub, 0, T0, bytes(2 * 2049))
    assert _native._test_write_audio(pub, 0, T0, pcm(0, 2048))  # exactly a ring: accepted (via scratch)
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        arr, cursor, lost, _ = s.mixed().read_since(0)
        assert (cursor, lost, arr.tobytes()) == (2048, 0, pcm(0, 2048))
        assert s.mixed().stats()["dropped_packets"] == 1
        del arr
    pub.close()
