"""Segment lifecycle: permissions, directory, removal on close, stale cleanup, no leaks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gateway import _native, client
from gateway.errors import PublishError
from gateway.protocol import AudioParams, DataOption, VideoParams
from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher, cleanup_stale
from tests.shm.conftest import SHM_DIR, leftovers, pcm

T0 = 1_738_392_033_000


def test_segments_are_0600_and_removed_on_close(make_pub, directory, prefix) -> None:
    pub = make_pub("s-a")
    for path in (pub.path, directory.path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [s.stream_id for s in client.list_streams(prefix)] == ["s-a"]
    reader = client.attach("s-a", prefix=prefix)
    pub.close()
    assert not os.path.exists(pub.path)
    assert client.list_streams(prefix) == []
    assert reader.ended  # the attached reader still has its mapping and sees the end
    reader.close()
    pub.close()  # idempotent
    directory.close()
    assert leftovers(prefix) == []


def test_group_option_makes_segments_0660(prefix) -> None:
    gid = os.getgid()
    with ShmDirectory(ShmConfig(prefix=prefix, group=gid)) as d:
        pub = ShmPublisher("s", d, audio=AudioParams())
        assert stat.S_IMODE(os.stat(pub.path).st_mode) == 0o660
        assert os.stat(pub.path).st_gid == gid


def test_directory_tracks_streams_coming_and_going(directory, make_pub, prefix) -> None:
    pubs = [make_pub(f"stream-{i}") for i in range(5)]
    assert sorted(s.stream_id for s in client.list_streams(prefix)) == [f"stream-{i}" for i in range(5)]
    pubs[1].close()
    pubs[3].close()
    listed = client.list_streams(prefix)
    assert sorted(s.stream_id for s in listed) == ["stream-0", "stream-2", "stream-4"]
    again = make_pub("stream-new")  # reuses a freed slot with a new generation
    slot = {s.stream_id: s for s in client.list_streams(prefix)}["stream-new"]
    assert slot.slot in (1, 3) and slot.generation == 2
    for p in (*pubs, again):
        p.close()


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_restart_removes_what_a_crashed_gateway_left(prefix) -> None:
    """A gateway killed with SIGKILL leaves its segments; the next one with the prefix removes them."""
    script = textwrap.dedent(f"""
        import os, signal
        from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher
        from gateway.protocol import AudioParams
        d = ShmDirectory(ShmConfig(prefix={prefix!r}))
        pubs = [ShmPublisher(f"s{{i}}", d, audio=AudioParams()) for i in range(3)]
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), timeout=60)
    assert proc.returncode == -9
    left = leftovers(prefix)
    assert len(left) == 4 and f"{prefix}.dir" in left
    # An unrelated file with the prefix but not our naming scheme is left alone.
    other = os.path.join(SHM_DIR, f"{prefix}.notes")
    open(other, "w").close()
    with ShmDirectory(ShmConfig(prefix=prefix)) as d:
        assert leftovers(prefix) == sorted([f"{prefix}.dir", f"{prefix}.notes"])
        assert d.path.endswith(".dir")
    os.unlink(other)


def test_a_live_gateway_with_the_same_prefix_is_refused(prefix) -> None:
    script = textwrap.dedent(f"""
        import sys
        from gateway.shm import ShmConfig, ShmDirectory
        d = ShmDirectory(ShmConfig(prefix={prefix!r}))
        print("ready", flush=True)
        sys.stdin.readline()
        d.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(PublishError, match="in use"):
            cleanup_stale(ShmConfig(prefix=prefix))
    finally:
        proc.communicate("\n", timeout=60)
    assert proc.returncode == 0


def test_stale_segment_of_a_dead_pid_is_removed(prefix) -> None:
    dead = _dead_pid()
    name = os.path.join(SHM_DIR, f"{prefix}.{dead}.12345.0")
    open(name, "wb").close()
    assert cleanup_stale(ShmConfig(prefix=prefix)) == [os.path.basename(name)]


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _map_count() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def test_thousands_of_streams_leak_nothing(directory, prefix) -> None:
    """Create, write, attach, close 2,000 streams: fds, mappings and /dev/shm entries stay flat."""
    def cycle(i: int) -> None:
        pub = ShmPublisher(f"cycle-{i}", directory, audio=AudioParams(), video=VideoParams())
        _native._test_write_audio(pub, 0, T0, pcm(0, 320))
        if i % 10 == 0:
            with client.attach(f"cycle-{i}", prefix=prefix) as s:
                arr, *_ = s.mixed().read_since(0)
                assert len(arr) == 320
                del arr
        pub.close()

    for i in range(50):
        cycle(i)
    fds, maps, rss = _fd_count(), _map_count(), _rss_bytes()
    for i in range(50, 2050):
        cycle(i)
    assert _fd_count() <= fds + 2
    assert _map_count() <= maps + 8
    assert _rss_bytes() - rss < 16 * 1024 * 1024  # generous: 2,000 streams of ~3.4 MB each would be 6.8 GB
    assert leftovers(prefix) == [f"{prefix}.dir"]
    assert client.list_streams(prefix) == []


def test_default_sizes_stay_under_two_mib_per_meeting(make_pub) -> None:
    """3 speakers + mixed audio rings, video and events, every page touched: <= 2 MiB resident."""
    pub = make_pub(audio=AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS), video=VideoParams())
    frame = bytes(40_000)
    for i in range(600):  # 12 s of audio: every PCM ring wraps
        for uid in (0, 1, 2, 3):
            _native._test_write_audio(pub, uid, T0 + 20 * i, pcm(i * 320, 320))
        if i % 10 == 0:
            pub.on_video(1, "a", T0 + 20 * i, memoryview(frame))
        pub.publish_event({"type": "transcript", "user_id": 1, "timestamp": T0 + 20 * i, "text": "x" * 100})
    resident = os.stat(pub.path).st_blocks * 512
    assert resident <= 2 * 1024 * 1024, resident
    with client.attach("stream-1", prefix=pub.config.prefix) as s:
        assert np.array_equal(s.audio(3).read_latest(20), np.frombuffer(pcm(599 * 320, 320), "<i2"))
    pub.close()


def test_directory_watcher_wakes_when_streams_come_and_go(directory, make_pub, prefix) -> None:
    import threading

    with client.Directory(prefix) as watch:
        assert watch.streams() == []
        assert watch.wait(timeout=0.01) is False
        made: list[ShmPublisher] = []
        t = threading.Timer(0.05, lambda: made.append(make_pub("late-stream")))
        t.start()
        assert watch.wait(timeout=60) is True
        t.join()
        assert [s.stream_id for s in watch.streams()] == ["late-stream"]
        made[0].close()
        assert watch.wait(timeout=60) is True and watch.streams() == []
        directory.close()  # gateway stops: the watcher notices
        assert watch.wait(timeout=60) is True and watch.streams() == []


def test_full_directory_refuses_cleanly(prefix) -> None:
    with ShmDirectory(ShmConfig(prefix=prefix, dir_slots=2)) as d:
        a = ShmPublisher("a", d, audio=AudioParams())
        b = ShmPublisher("b", d, audio=AudioParams())
        with pytest.raises(PublishError, match="directory"):
            ShmPublisher("c", d, audio=AudioParams())
        assert len(leftovers(prefix)) == 3  # the directory and two streams: nothing half-made
        a.close()
        c = ShmPublisher("c", d, audio=AudioParams())  # a freed slot is reused
        assert sorted(s.stream_id for s in client.list_streams(prefix)) == ["b", "c"]
        b.close()
        c.close()


def test_closed_publisher_ignores_media_and_refuses_set_up(make_pub) -> None:
    pub = make_pub()
    pub.close()
    assert not _native._test_write_audio(pub, 0, T0, pcm(0, 320))
    pub.on_audio(0, None, T0, memoryview(pcm(0, 320)))
    assert pub.publish_event({"type": "x"}) is False
    with pytest.raises(ValueError):
        pub.set_origin(T0)


def test_reads_before_any_audio_are_empty(make_pub, prefix) -> None:
    pub = make_pub()
    with client.attach("stream-1", prefix=prefix) as s:
        r = s.mixed()
        arr, cursor, lost, gaps = r.read_since()
        assert (len(arr), cursor, lost, gaps) == (0, 0, 0, [])
        assert len(r.read_latest(100)) == 0
        _native._test_write_audio(pub, 0, T0, pcm(0, 320))
        assert r.read_since(10_000)[1:] == (10_000, 0, [])  # a cursor ahead: nothing yet
        del arr
    pub.close()
