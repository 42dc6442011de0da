"""A waiter count left by a reader killed while asleep is repaired by the writer (contract 1.2).

Readers announce sleep by incrementing ``waiters``; one killed in FUTEX_WAIT never decrements, and
the writer used to pay a FUTEX_WAKE system call per commit on that ring until the stream ended.
Now FUTEX_WAKE's count of woken sleepers tells the writer that nobody is there: after wake-ups that
woke nobody for long enough, it resets the count with a compare-and-swap (docs/SHM.md 6). These
tests check the repair, that a live sleeper is never repaired away (it is still woken by the next
commit), and that a count driven negative heals. No duration is asserted.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from gateway import _native, client
from tests.shm.conftest import pcm
from tests.shm.test_consumer_abuse import start, wait_for_waiters

T0 = 1_738_392_033_000
SPP = 320


def write_until_repaired(pub, ring: client.AudioReader, written: int) -> int:
    """Write 20 ms packets (1 ms apart) until the ring counts a repair; returns packets written so far.

    Bounded: the repair needs >= 8 wake-ups that found a stale count, over >= the repair time.
    """
    for _ in range(5000):
        assert _native._test_write_audio(pub, 0, T0 + 20 * written, pcm(written * SPP, SPP))
        written += 1
        if ring.stats()["waiter_repairs"]:
            break
        time.sleep(0.001)
    return written


def test_killed_sleeper_count_is_repaired_and_live_sleepers_still_wake(make_pub, prefix) -> None:
    pub = make_pub()
    pub.set_waiter_repair(0.05)
    assert _native._test_write_audio(pub, 0, T0, pcm(0, SPP))
    with client.attach("stream-1", prefix=prefix) as s:
        ring = s.mixed()
        waiters = ring._r + client.PCM["waiters"]
        victim = start("sleeper", prefix)
        try:
            wait_for_waiters(s, waiters, 1)
            os.kill(victim.pid, signal.SIGKILL)  # killed asleep: nobody will ever decrement
            victim.wait(timeout=60)
        finally:
            if victim.poll() is None:
                victim.kill()
        assert s._m.u32_at(waiters) == 1

        written = write_until_repaired(pub, ring, 1)
        assert ring.stats()["waiter_repairs"] == 1
        assert written - 1 >= 8  # never on the first empty wake-up
        assert s._m.u32_at(waiters) == 0  # the writer is back to no system call per commit

        # A live sleeper after the repair: counted, woken by the very next commit, never repaired.
        woke: list[bool] = []
        with client.attach("stream-1", prefix=prefix) as other:
            live = other.mixed()
            live.seek_latest()
            t = threading.Thread(target=lambda r=live: woke.append(r.wait(timeout=30.0)))
            t.start()
            wait_for_waiters(s, waiters, 1)
            assert _native._test_write_audio(pub, 0, T0 + 20 * written, pcm(written * SPP, SPP))
            written += 1
            t.join(timeout=60)
            assert woke == [True]
            del live
        assert ring.stats()["waiter_repairs"] == 1
        assert s._m.u32_at(waiters) == 0

        # A count driven below zero (a repaired reader that was only stopped, coming back) heals at once.
        s._m.u32[waiters >> 2] = 0xFFFFFFFF
        assert _native._test_write_audio(pub, 0, T0 + 20 * written, pcm(written * SPP, SPP))
        assert s._m.u32_at(waiters) == 0
        assert ring.stats()["waiter_repairs"] == 2
        del ring
    pub.close()


def test_dead_count_beside_a_live_sleeper_is_repaired_and_the_live_one_keeps_waking(make_pub, prefix) -> None:
    """A healthy reader asleep on the same ring is woken by every commit, so wake-ups never find
    *nobody*; the writer still sees more registrations than sleepers woken, and lowers the count by
    the smallest such excess (the dead reader's 1), never below the live reader's own."""
    pub = make_pub()
    pub.set_waiter_repair(0.05)
    assert _native._test_write_audio(pub, 0, T0, pcm(0, SPP))
    written = 1
    with client.attach("stream-1", prefix=prefix) as s, client.attach("stream-1", prefix=prefix) as other:
        ring = s.mixed()
        waiters = ring._r + client.PCM["waiters"]
        victim = start("sleeper", prefix)
        try:
            wait_for_waiters(s, waiters, 1)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=60)
        finally:
            if victim.poll() is None:
                victim.kill()
        live = other.mixed()
        live.seek_latest()
        stop = threading.Event()
        seen: list[int] = []

        def follow(reader: client.AudioReader) -> None:
            while not stop.is_set():
                reader.wait(timeout=30.0)
                seen.append(reader.seek_latest())

        t = threading.Thread(target=follow, args=(live,))
        t.start()
        try:
            wait_for_waiters(s, waiters, 2)
            written = write_until_repaired(pub, ring, written)
            assert ring.stats()["waiter_repairs"] == 1
            for _ in range(4000):  # the live reader keeps following: it sees the newest commit
                if seen and seen[-1] == written * SPP:
                    break
                time.sleep(0.005)
            assert seen[-1] == written * SPP
        finally:
            stop.set()
            assert _native._test_write_audio(pub, 0, T0 + 20 * written, pcm(written * SPP, SPP))  # wake it to stop
            written += 1
            t.join(timeout=60)
        assert not t.is_alive()
        assert s._m.u32_at(waiters) == 0  # the live reader left; the dead one's count is gone
        assert ring.stats()["waiter_repairs"] == 1
        del live, ring
    pub.close()


def test_stream_wide_line_is_repaired_too(make_pub, prefix) -> None:
    """The stream header's futex (any ring committed) has its own count and the same repair."""
    pub = make_pub()
    pub.set_waiter_repair(0.0)
    assert _native._test_write_audio(pub, 0, T0, pcm(0, SPP))
    with client.attach("stream-1", prefix=prefix) as s:
        line = client.STREAM["waiters"]
        s._m.u32[line >> 2] = 3  # three readers "asleep" that are not there
        for i in range(1, 9):
            assert _native._test_write_audio(pub, 0, T0 + 20 * i, pcm(i * SPP, SPP))
            assert s._m.u32_at(line) == (3 if i < 8 else 0)
        assert s._m.u64_at(client.STREAM["waiter_repairs"]) == 1
    pub.close()
