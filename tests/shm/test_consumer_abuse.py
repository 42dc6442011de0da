"""Stuck, killed and slow consumers on one ring never hold up the writer or a healthy consumer.

One ring, five processes: a consumer SIGSTOPped while asleep in the futex wait, one SIGKILLed
there (its waiter count leaks until the writer repairs it, docs/SHM.md 6), a healthy follower, a slow one, and the writer.
The writer goes on (every write accepted, the write index advances by exactly what was written),
the healthy follower reads every byte in order, and the slow one reports the exact overrun.
No timing is asserted: the pacing below only keeps the *healthy* follower within a ring.
"""

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
from tests.shm.conftest import pcm

T0 = 1_738_392_033_000
SPP = 320  # frames per 20 ms packet at 16 kHz
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start(role: str, prefix: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.shm.abuse_proc", role, prefix, "stream-1"], cwd=ROOT,
                            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def wait_for_waiters(s: client.StreamReader, off: int, count: int) -> None:
    """Until ``count`` readers have announced they sleep on the ring (bounded)."""
    for _ in range(4000):
        if s._m.u32_at(off) >= count:
            return
        time.sleep(0.005)
    raise AssertionError(f"waiters never reached {count}: {s._m.u32_at(off)}")


def test_stuck_and_killed_consumers_do_not_hold_up_the_writer_or_a_healthy_one(make_pub, prefix) -> None:
    pub = make_pub(audio_seconds=1)  # 16,384-frame ring: the slow consumer is lapped many times
    pub.set_waiter_repair(3600.0)  # keep the leaked counts here (their repair: test_waiter_repair.py)
    assert _native._test_write_audio(pub, 0, T0, pcm(0, SPP))
    written = [pcm(0, SPP)]
    procs: list[subprocess.Popen[str]] = []
    try:
        with client.attach("stream-1", prefix=prefix) as s:
            ring = s.mixed()
            waiters_off = ring._r + client.PCM["waiters"]
            capacity = ring.capacity
            stuck = start("sleeper", prefix)
            procs.append(stuck)
            wait_for_waiters(s, waiters_off, 1)
            os.kill(stuck.pid, signal.SIGSTOP)  # stopped while asleep in FUTEX_WAIT
            victim = start("sleeper", prefix)
            procs.append(victim)
            wait_for_waiters(s, waiters_off, 2)
            os.kill(victim.pid, signal.SIGKILL)  # killed while asleep: its waiter count leaks
            victim.wait(timeout=60)
            assert victim.returncode == -signal.SIGKILL
            assert s._m.u32_at(waiters_off) == 2  # stuck + leaked: the writer now wakes on every commit

            follower = start("healthy", prefix)
            procs.append(follower)
            lagger = start("slow", prefix)
            procs.append(lagger)
            slow_start = ring.write_index
            assert follower.stdout is not None
            seen = 0
            for i in range(1, 301):
                data = pcm(i * SPP, SPP)
                assert _native._test_write_audio(pub, 0, T0 + 20 * i, data)  # accepted, never refused
                written.append(data)
                assert ring.write_index == (i + 1) * SPP  # advanced by exactly what was written
                if i % 20 == 0:  # test pacing only: keep the healthy follower within one ring
                    for _ in range(100_000):
                        if seen >= ring.write_index:
                            break
                        line = follower.stdout.readline()
                        assert line.startswith("at "), line
                        seen = int(line.split()[1])
            assert s._m.u32_at(waiters_off) >= 2  # the stuck count and the leaked one are still there
            end = ring.write_index
            assert end == 301 * SPP and ring.stats()["packets"] == 301

            got_slow = json.loads(lagger.communicate("go\n", timeout=60)[0].strip().splitlines()[-1])
            assert lagger.returncode == 0
            assert got_slow["start"] == slow_start == SPP
            assert got_slow["cursor"] == end
            assert got_slow["frames"] == capacity
            assert got_slow["lost"] == end - capacity - slow_start  # exact overrun
            assert got_slow["first"] == int(np.frombuffer(pcm(end - capacity, 1), "<i2")[0])

        pub.close()
        out, _ = follower.communicate(timeout=60)
        assert follower.returncode == 0
        got = json.loads(out.strip().splitlines()[-1])
        assert got == {"frames": 301 * SPP, "lost": 0, "sha256": hashlib.sha256(b"".join(written)).hexdigest()}

        os.kill(stuck.pid, signal.SIGCONT)  # resumed after the end: it wakes, sees the end, exits cleanly
        out, _ = stuck.communicate(timeout=60)
        assert stuck.returncode == 0 and json.loads(out.strip().splitlines()[-1]) == {"ended": True}
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait(timeout=60)
