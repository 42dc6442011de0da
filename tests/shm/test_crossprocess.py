"""Consumers in other processes: every byte in order, blocking waits, overrun, SIGKILL safety."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from gateway import _native, client
from gateway.protocol import AudioParams, DataOption, VideoParams
from tests.shm.conftest import pcm

T0 = 1_738_392_033_000
SPP = 320
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_reader(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.shm.reader_proc", *args], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def finish(proc: subprocess.Popen[str], stdin: str = "") -> dict:
    out, _ = proc.communicate(stdin, timeout=120)
    assert proc.returncode == 0
    return json.loads(out.strip().splitlines()[-1])


def test_consumer_in_another_process_reads_every_byte_in_order(make_pub, prefix) -> None:
    """3 participants (with gaps) + video, written while another process follows with blocking waits."""
    pub = make_pub(audio=AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS), video=VideoParams(),
                   audio_seconds=64, video_bytes=4 << 20)  # large enough that the follower cannot be lapped
    users = [11, 22, 33]
    expected = {u: hashlib.sha256() for u in users}
    for u in users:  # rings exist before the reader attaches
        data = pcm(u, SPP)
        _native._test_write_audio(pub, u, T0, data)
        expected[u].update(data)
    proc = start_reader("follow", prefix, "stream-1", ",".join(map(str, users)))
    vsum, nframes = hashlib.sha256(), 0
    gaps = 0
    for i in range(1, 1500):  # 30 s of audio per participant, written as fast as the writer goes
        for u in users:
            if u == 33 and i % 100 == 50:  # user 33 misses one packet now and then: a gap
                expected[u].update(bytes(2 * SPP))
                gaps += 1
                continue
            data = pcm(u + i * SPP, SPP)
            if i % 2:
                _native._test_write_audio(pub, u, T0 + 20 * i, data)
            else:
                pub.on_audio(u, None, T0 + 20 * i, memoryview(data))
            expected[u].update(data)
        if i % 5 == 0:
            frame = bytes((i + k) & 0xFF for k in range(1000 + (i * 37) % 9000))
            pub.on_video(u, None, T0 + 20 * i, memoryview(frame))
            vsum.update(frame)
            nframes += 1
        if i % 100 == 0:
            time.sleep(0.002)  # let the follower block on its futex now and then
    pub.close()
    got = finish(proc)
    for u in users:
        assert got[str(u)]["lost"] == 0
        assert got[str(u)]["frames"] == 1500 * SPP
        assert got[str(u)]["sha256"] == expected[u].hexdigest()
    assert got["33"]["gaps"] >= gaps > 0
    assert got["video"] == {"frames": nframes, "lost": 0, "order_ok": True, "sha256": vsum.hexdigest()}
    assert got["modules"] == []  # the consumer imported neither the native module nor the event-loop stack


def test_lagging_consumer_in_another_process_sees_exact_overrun(make_pub, prefix) -> None:
    pub = make_pub(video=VideoParams(), audio_seconds=0.1, video_bytes=8192)  # 2,048 frames; 8 video slots
    proc = start_reader("behind", prefix, "stream-1")
    for i in range(50):
        _native._test_write_audio(pub, 0, T0 + 20 * i, pcm(i * SPP, SPP))
        pub.on_video(1, None, T0 + 20 * i, memoryview(bytes(992)))  # exactly 1,024 B per record
    got = finish(proc, "go\n")
    assert got["cursor"] == 50 * SPP
    assert got["lost"] == 50 * SPP - 2048 and got["frames"] == 2048
    assert got["first"] == int(np.frombuffer(pcm(50 * SPP - 2048, 1), "<i2")[0])
    assert got["video_cursor"] == 50 and got["video_lost"] + got["video_frames"] == 50
    assert got["video_first_seq"] == got["video_lost"]
    pub.close()


def test_blocking_wait_wakes_on_write(make_pub, prefix) -> None:
    pub = make_pub()
    _native._test_write_audio(pub, 0, T0, pcm(0, SPP))
    proc = start_reader("wait", prefix, "stream-1", "60")
    # The reader announces itself before sleeping; wait until it does so the wake-up is exercised.
    with client.attach("stream-1", prefix=prefix) as s:
        waiters_off = s.mixed()._r + client.PCM["waiters"]
        for _ in range(2000):
            if s._m.u32_at(waiters_off):
                break
            time.sleep(0.005)
        assert s._m.u32_at(waiters_off) == 1
        _native._test_write_audio(pub, 0, T0 + 20, pcm(SPP, SPP))
        got = finish(proc)
        assert got["woke"] is True and got["frames"] == SPP and got["lost"] == 0
        assert s._m.u32_at(waiters_off) == 0  # the reader took its count back
    pub.close()


def test_blocking_wait_times_out_when_nothing_comes(make_pub, prefix) -> None:
    pub = make_pub()
    _native._test_write_audio(pub, 0, T0, pcm(0, SPP))
    got = finish(start_reader("wait", prefix, "stream-1", "0.05"))
    assert got["woke"] is False and got["frames"] == 0
    with client.attach("stream-1", prefix=prefix) as s:
        r = s.mixed()
        r.seek_latest()
        assert r.wait(timeout=0.01) is False
        assert r.wait(timeout=0) is False
        assert s._m.u32_at(r._r + client.PCM["waiters"]) == 0
    pub.close()


def test_end_of_stream_wakes_blocked_readers(make_pub, prefix) -> None:
    pub = make_pub()
    _native._test_write_audio(pub, 0, T0, pcm(0, SPP))
    proc = start_reader("wait", prefix, "stream-1", "60")
    with client.attach("stream-1", prefix=prefix) as s:
        waiters_off = s.mixed()._r + client.PCM["waiters"]
        for _ in range(2000):
            if s._m.u32_at(waiters_off):
                break
            time.sleep(0.005)
        pub.close()
        got = finish(proc)
        assert got["woke"] is True and got["frames"] == 0  # woken by the end, nothing new to read
        assert s.ended


def test_consumer_killed_mid_read_leaves_the_writer_unharmed(make_pub, prefix) -> None:
    pub = make_pub(video=VideoParams(), audio_seconds=1)
    _native._test_write_audio(pub, 0, T0, pcm(0, SPP))
    victims = [start_reader("spin", prefix, "stream-1") for _ in range(2)]
    i = 1
    for victim in victims:
        for _ in range(200):  # keep writing while it reads and sleeps
            assert _native._test_write_audio(pub, 0, T0 + 20 * i, pcm(i * SPP, SPP))
            pub.on_video(1, None, T0 + 20 * i, memoryview(bytes(100)))
            i += 1
            if i % 20 == 0:
                time.sleep(0.001)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=60)
        assert victim.returncode == -signal.SIGKILL
    # The writer goes on; a new consumer reads exactly what was written after the kills.
    with client.attach("stream-1", prefix=prefix) as s:
        r = s.mixed()
        r.seek_latest()
        start = r.cursor
        for _ in range(40):  # 12,800 frames: within the 16,384-frame ring
            assert _native._test_write_audio(pub, 0, T0 + 20 * i, pcm(i * SPP, SPP))
            i += 1
        arr, cursor, lost, gaps = r.read_since()
        assert (lost, gaps, cursor) == (0, [], start + 40 * SPP)
        assert arr.tobytes() == b"".join(pcm(k * SPP, SPP) for k in range(i - 40, i))
        assert r.stats()["packets"] == i
        del arr
    pub.close()
