"""Per-packet audio faults: drop, duplicate, swap/delay by key or by seeded probability, all recorded."""

from __future__ import annotations

import base64

from gateway.protocol import MsgType
from gateway.sim import Simulator
from gateway.sim.server import AudioFaults
from tests.sim.helpers import Session, StandInContent, config

MULTI = {"audio": {"audio": {"data_opt": 2, "sample_rate": 0}}}


def audio_of(msgs: list[dict], user_id: int) -> list[tuple[int, bytes]]:
    """(timestamp, payload) of one user's audio packets, in arrival order."""
    out = []
    for m in msgs:
        if m.get("msg_type") == MsgType.MEDIA_DATA_AUDIO and m["content"]["user_id"] == user_id:
            c = m["content"]
            out.append((c["timestamp"], base64.b64decode(c["data"])))
    return out


async def test_keyed_drop_duplicate_swap_and_delay_arrive_as_recorded() -> None:
    """Backlog of 1 s: packets at media time 0..980 ms go out in one burst, faults applied per key."""
    async with Simulator(config()) as sim:
        stream = sim.create_stream(webhook=False, backlog_ms=1000)
        t0 = stream.started_ms
        f = stream.faults.audio
        f.drop = {(100, t0 + 100), (100, t0 + 120)}
        f.duplicate = {(100, t0 + 200), (200, t0 + 200)}
        f.swap = {(100, t0 + 300)}
        f.delay = {(100, t0 + 400): 3}
        s = Session(sim, stream)
        await s.join(MULTI, buffer_data=True)
        msgs = await s.media["audio"].drain(0.4)
        await s.close()
    ann = audio_of(msgs, 100)
    ts = [t - t0 for t, _ in ann]
    assert 100 not in ts and 120 not in ts
    assert ts.count(200) == 2 and ts.index(200) + 1 == ts.index(200, ts.index(200) + 1)  # back to back
    assert ts.index(320) + 1 == ts.index(300)  # swapped with the next packet
    assert ts[ts.index(460) + 1] == 400 and ts.index(420) < ts.index(460)  # three packets later
    for t, payload in ann:  # every payload is still the packet of its own timestamp
        assert payload == StandInContent.payload(100, t - t0, 320)
    ben = [t - t0 for t, _ in audio_of(msgs, 200)]
    assert ben.count(200) == 2 and 100 in ben and ben == sorted(ben)  # faults keyed by user only hit that user
    sent = stream.sent
    assert sent.audio_dropped == [(100, t0 + 100), (100, t0 + 120)]
    assert sorted(sent.audio_duplicated) == [(100, t0 + 200), (200, t0 + 200)]
    assert sent.audio_reordered == [(100, t0 + 300, 1), (100, t0 + 400, 3)]
    assert [t for t, _ in sent.audio[100]] == [t for t, _ in ann[: len(sent.audio[100])]]  # record = wire order


def test_random_faults_are_seeded_and_exclusive() -> None:
    keys = [(100, t) for t in range(0, 20_000, 20)]

    def run(seed: int) -> list[tuple[str, int]]:
        f = AudioFaults(drop_p=0.05, duplicate_p=0.05, reorder_p=0.05, max_delay=4, seed=seed)
        return [f.decide(k) for k in keys]

    a, b, c = run(7), run(7), run(8)
    assert a == b and a != c
    counts = {act: sum(1 for x, _ in a if x == act) for act in ("drop", "duplicate", "delay", "send")}
    assert all(20 <= counts[k] <= 90 for k in ("drop", "duplicate", "delay"))  # ~50 each of 1000
    assert {n for act, n in a if act == "delay"} <= {1, 2, 3, 4}
    assert AudioFaults().decide((1, 2)) == ("send", 0)
