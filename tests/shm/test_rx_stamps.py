"""Receive stamps (contract 1.2): each ring says when the gateway received the frame it last committed.

The native listener reads CLOCK_MONOTONIC as each frame arrives; the writer publishes it with the
commit under a small seqlock, so a consumer that wakes up computes ``time.monotonic_ns() -
rx_ns`` (the frame-in to wake-up latency) without a clock of its own in the payload. What is
checked here is the bookkeeping, never a duration: the stamp lies between the clock readings taken
around the feed, belongs only to the index it was published with, and is "unknown" (None / -1)
for writes that did not come from a received frame.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import time

import numpy as np
import orjson

from gateway import _native, client, protocol
from gateway.protocol import AudioParams, DataOption, VideoParams
from tests.native.helpers import RecordingControl
from tests.shm.conftest import pcm

T0 = 1_738_392_033_000
SPP = 320
KIND_AUDIO, KIND_VIDEO = 0, 1
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def frame(msg_type: int, data: bytes, timestamp: int, user_id: int = 0) -> bytes:
    return orjson.dumps(protocol.build_media(msg_type, data=data, timestamp=timestamp, user_id=user_id, user_name="Ann"))


def test_listener_stamps_audio_and_video_frames_as_they_arrive(make_pub) -> None:
    pub = make_pub(video=VideoParams())
    listener = _native.MediaListener(pub, RecordingControl())
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        audio, video = s.mixed(), s.video()
        assert audio.rx_ns() is None and video.rx_ns() is None  # nothing received yet
        for i in range(3):
            before = time.monotonic_ns()
            listener.feed(frame(14, pcm(i * SPP, SPP), T0 + 20 * i), False)
            after = time.monotonic_ns()
            w = audio.write_index
            assert w == (i + 1) * SPP
            stamp = audio.rx_ns()
            assert stamp is not None and before <= stamp <= after
            assert audio.rx_ns(w) == stamp
            assert audio.rx_ns(w - SPP) is None  # a stamp belongs only to the index it came with
        before = time.monotonic_ns()
        listener.feed(frame(15, b"\xff\xd8jpeg\xff\xd9", T0, user_id=7), True)
        after = time.monotonic_ns()
        assert video.write_seq == 1
        stamp = video.rx_ns()
        assert stamp is not None and before <= stamp <= after
        assert video.rx_ns(0) is None
    pub.close()


def test_writes_that_were_not_received_frames_carry_no_stamp(make_pub) -> None:
    pub = make_pub(audio=AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS))
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        assert _native._test_write_audio(pub, 5, T0, pcm(0, SPP), rx_ns=123_456_789)
        ring = s.audio(5)
        assert ring.rx_ns() == 123_456_789
        # The next write has no receive time (engine output, Python publishers): "unknown", not stale.
        assert _native._test_write_audio(pub, 5, T0 + 20, pcm(SPP, SPP))
        assert ring.rx_ns() is None
        pub.write_participant(5, 2 * SPP, np.frombuffer(pcm(2 * SPP, SPP), "<i2"), False)
        assert ring.write_index == 3 * SPP and ring.rx_ns() is None
        # A refused (duplicate) packet does not leak its stamp into the next Python-side write.
        assert not _native._test_write_audio(pub, 5, T0, pcm(0, SPP), rx_ns=42)
        assert ring.stats()["dropped_packets"] == 1
        pub.write_participant(5, 3 * SPP, np.frombuffer(pcm(3 * SPP, SPP), "<i2"), False)
        assert ring.write_index == 4 * SPP and ring.rx_ns() is None
    pub.close()


def test_c_helpers_read_the_same_stamps(make_pub, tmp_path) -> None:
    """rtms_pcm_rx_ns / rtms_record_rx_ns from the header agree with the Python reader."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc is not None
    src = tmp_path / "rx.c"
    src.write_text(
        '#include "rtms_shm.h"\n'
        "int64_t pcm_rx(const void *r, uint64_t w) { return rtms_pcm_rx_ns((const rtms_pcm_ring *)r, w); }\n"
        "int64_t rec_rx(const void *r, uint64_t s) { return rtms_record_rx_ns((const rtms_record_ring *)r, s); }\n")
    lib = tmp_path / "librx.so"
    subprocess.run([cc, "-O2", "-std=c11", "-Wall", "-Werror", "-shared", "-fPIC", "-I", os.path.join(ROOT, "_native", "include"),
                    str(src), "-o", str(lib)], check=True)
    so = ctypes.CDLL(str(lib))
    for fn in (so.pcm_rx, so.rec_rx):
        fn.restype, fn.argtypes = ctypes.c_int64, [ctypes.c_void_p, ctypes.c_uint64]
    pub = make_pub(video=VideoParams())
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        audio, video = s.mixed(), s.video()
        assert _native._test_write_audio(pub, 0, T0, pcm(0, SPP), rx_ns=1_000)
        assert _native._test_write(pub, KIND_VIDEO, 3, T0, b"\xff\xd8x\xff\xd9", b"", 2_000)
        base = ctypes.addressof(ctypes.c_char.from_buffer(s._m.mm))
        assert so.pcm_rx(base + audio._r, SPP) == 1_000 == audio.rx_ns()
        assert so.pcm_rx(base + audio._r, 0) == -1
        assert so.rec_rx(base + video._r, 1) == 2_000 == video.rx_ns()
        assert so.rec_rx(base + video._r, 2) == -1
        assert _native._test_write_audio(pub, 0, T0 + 20, pcm(SPP, SPP))
        assert so.pcm_rx(base + audio._r, 2 * SPP) == -1  # written without a stamp
        del base
    pub.close()


def test_cpu_latency_limit_holds_the_value_while_inside_and_reports_when_it_cannot(tmp_path) -> None:
    dev = tmp_path / "cpu_dma_latency"
    dev.write_bytes(b"")
    with client.cpu_latency_limit(0, path=str(dev)) as held:
        assert held is True
        assert dev.read_bytes() == b"\x00\x00\x00\x00"  # a 32-bit value, what the kernel reads
    with client.cpu_latency_limit(7, path=str(tmp_path / "missing" / "cpu_dma_latency")) as held:
        assert held is False
