"""Acceptance (issue 9): ``gateway control`` -> simulated Zoom REST -> signed webhook -> the real Gateway
publishing to shared memory -> a consumer process reading it with :mod:`gateway.client`.

``gateway control start|pause|resume|stop`` runs through the real command entry
(:func:`gateway.cli.main`, in a worker thread with its own loop, as from a shell). The consumer is
a separate process (tests/control/shm_consumer.py) that only knows the prefix: it sees the stream
appear in the directory, reads its audio and event rings until the stream ends and reports. The
test then checks against what the simulator really sent: every packet at its sample position, one
gap exactly over the paused span, the session states in the event ring, TERMINATED, and the stream
gone from the directory with its segment removed. It runs with the audio engine in front of the
publisher (``[audio] engine = true``, the default) and without it (the native fast path).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import uuid
import zlib
from typing import Any

import pytest

from gateway import cli
from gateway.app import Gateway
from gateway.config import (
    AudioSettings,
    Credentials,
    GatewayConfig,
    PublishConfig,
    Secret,
    ServerConfig,
    SessionsConfig,
)
from gateway.protocol import StopReason
from gateway.sim import Simulator
from gateway.sim.rest import SimulatorRtmsApp, ZoomRestSim
from tests.control.helpers import ACCOUNT_ID, API_CLIENT_ID, API_CLIENT_SECRET, env
from tests.sim.helpers import CLIENT_ID, CLIENT_SECRET, WEBHOOK_SECRET, config, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHM_DIR = "/dev/shm"
MEETING_ID = 85746065432
RATE_MS = 20  # the simulator's audio packet interval (raw protocol default)


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _leftovers(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix + "."))


@pytest.mark.parametrize("engine", [True, False], ids=["audio-engine", "native-fast-path"])
async def test_control_start_pause_resume_stop_reaches_a_shared_memory_consumer(monkeypatch: Any, engine: bool) -> None:
    prefix = f"rtms-ctl-{uuid.uuid4().hex[:10]}"
    for name, value in {**env(), "ZM_RTMS_CLIENT": CLIENT_ID}.items():  # the gateway's own RTMS app
        monkeypatch.setenv(name, value)
    gw_config = GatewayConfig(
        server=ServerConfig(host="127.0.0.1", port=0),
        credentials=Credentials(CLIENT_ID, Secret(CLIENT_SECRET), Secret(WEBHOOK_SECRET)),
        sessions=SessionsConfig(media_kinds=("audio",)),
        publish=PublishConfig(shm=True, shm_prefix=prefix),
        audio=AudioSettings(engine=engine),
    )
    states: list[tuple[str, int]] = []  # (session state, its timestamp) as the gateway saw them
    consumer: asyncio.subprocess.Process | None = None
    try:
        # the consumer starts first and waits for the gateway's directory and a stream in it
        consumer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.control.shm_consumer", prefix, SHM_DIR, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        assert consumer.stdout is not None
        async with Gateway(gw_config) as gw:
            gw.event_listeners.append(
                lambda sid, doc: states.append((doc["state"], doc["timestamp"])) if doc.get("type") == "session_state" else None
            )
            # keep-alives every 0.5 s (time_scale 0.05); media stays real time
            async with Simulator(config(webhook_url=gw.webhook_url, scopes=("audio",), time_scale=0.05)) as sim:
                z = ZoomRestSim.for_simulator(sim, account_id=ACCOUNT_ID, client_id=API_CLIENT_ID, client_secret=API_CLIENT_SECRET)
                assert isinstance(z.controller, SimulatorRtmsApp)
                meeting = z.controller.add_meeting(MEETING_ID)
                async with z:

                    async def control(action: str) -> int:
                        argv = ["control", action, "--meeting", str(MEETING_ID), "--api-base", z.api_base, "--oauth-url", z.oauth_url]
                        return await asyncio.to_thread(cli.main, argv)  # exactly `gateway control ACTION ...`

                    def audio_sent() -> int:
                        return stream.sent.media_counts.get("audio", 0) if (stream := meeting.stream) else 0

                    assert await control("start") == 0
                    appeared = json.loads(await asyncio.wait_for(consumer.stdout.readline(), 60))
                    stream = meeting.stream
                    assert stream is not None and appeared["appeared"] == stream.stream_id
                    segment_path = os.path.join(SHM_DIR, appeared["segment"])
                    assert _exists(segment_path)
                    assert await wait_for(lambda: audio_sent() >= 25, 10.0)

                    assert await control("pause") == 0
                    assert await wait_for(lambda: "PAUSED" in [s for s, _ in states], 5.0)
                    paused_count = audio_sent()
                    await asyncio.sleep(0.5)  # half a second paused (the simulator's media clock runs on)
                    assert audio_sent() == paused_count  # media stopped

                    assert await control("resume") == 0
                    assert await wait_for(lambda: "RESUMED" in [s for s, _ in states], 5.0)
                    assert await wait_for(lambda: audio_sent() >= paused_count + 25, 10.0)  # media restarted
                    entry = gw.streams[stream.stream_id]
                    # ... and reached the gateway (so the stop cannot race it out of the ring)
                    assert await wait_for(lambda: entry.stats()["frames"].get("audio", 0) >= paused_count + 25, 10.0)

                    assert await control("stop") == 0
                    assert await wait_for(lambda: not gw.streams, 10.0)
                    # the stream is gone: segment unlinked, directory slot freed, directory empty
                    assert not _exists(segment_path)
                    out = await asyncio.wait_for(consumer.stdout.readline(), 60)
                    assert await wait_for(lambda: any(d.event == "meeting.rtms_stopped" and d.status == 200 for d in sim.webhooks.deliveries), 5.0)
            report = json.loads(out)
        assert await asyncio.wait_for(consumer.wait(), 30) == 0
    finally:
        if consumer is not None and consumer.returncode is None:
            consumer.kill()
            await consumer.wait()
    assert _leftovers(prefix) == []  # directory and segment removed when the gateway closed

    # ---- what the consumer saw, against what the simulator sent
    assert report["stream_id"] == stream.stream_id and report["left_directory"] is True
    sent = stream.sent.audio  # user -> [(timestamp, payload)], mixed audio: user 0 only
    assert list(sent) == [0] and list(report["users"]) == ["0"]
    packets = sent[0]
    user = report["users"]["0"]
    rate, origin = report["rate"], report["origin_ms"]
    frames_per_packet = rate * RATE_MS // 1000

    def index_of(ts: int) -> int:
        return (ts - origin) * rate // 1000

    # The ring starts at or before the first packet: the plain publisher starts it at the first
    # packet; the audio engine (gateway.pipeline) sets the media clock's origin a reorder window
    # earlier and marks those frames missing. Either way no frame before the first packet is data.
    first_index = index_of(packets[0][0])
    assert origin <= packets[0][0] and 0 <= user["first"] <= first_index and user["lost"] == 0
    leading = [g for g in user["gaps"] if g[0] < first_index]
    assert leading == ([[user["first"], first_index - user["first"]]] if user["first"] < first_index else [])
    # every frame received is a sent packet, in order, at its own sample position; the stop may
    # cut the last packets in flight, never one in the middle
    received = user["frames"] // frames_per_packet
    assert user["frames"] % frames_per_packet == 0 and paused_count + 25 <= received <= len(packets)
    assert user["crc"] == zlib.crc32(b"".join(p for _, p in packets[:received]))
    assert user["end"] == index_of(packets[received - 1][0]) + frames_per_packet

    # gap-free from the first packet on except the paused span: exactly one gap, from the end of
    # the last packet before the pause to the first packet after the resume
    holes = [(a, b) for (a, _), (b, _) in itertools.pairwise(packets[:received]) if b - a != RATE_MS]
    assert len(holes) == 1 and holes[0][1] - holes[0][0] >= 500, holes
    before, after = holes[0]
    expected_gap = [index_of(before) + frames_per_packet, index_of(after) - index_of(before) - frames_per_packet]
    assert user["gaps"][len(leading) :] == [expected_gap]

    # the event ring: the session states in order, PAUSED/RESUMED around the gap, then the stop
    events = report["events"]
    assert report["events_lost"] == 0
    session = [e for e in events if e.get("type") == "session_state"]
    assert [e["state"] for e in session] == ["INITIALIZE", "STARTED", "PAUSED", "RESUMED", "STOPPED"]
    session = session[1:]  # from STARTED on
    paused_ts, resumed_ts = session[1]["timestamp"], session[2]["timestamp"]
    gap_start, gap_end = expected_gap[0], expected_gap[0] + expected_gap[1]
    # no media captured after the pause, none until the resume, media again from the resume on
    # (how long before the pause the last packet went out depends on scheduling: not asserted)
    assert gap_start <= index_of(paused_ts) + frames_per_packet
    assert index_of(resumed_ts) - 2 * frames_per_packet <= gap_end <= index_of(resumed_ts) + frames_per_packet
    assert session[3]["stop_reason"] == StopReason.STOP_BC_USER_TRIGGERED
    terminated = [e for e in events if e.get("type") == "stream_state" and e.get("state") == "TERMINATED"]
    assert len(terminated) == 1 and terminated[0]["reason"] == StopReason.STOP_BC_USER_TRIGGERED
    assert events.index(terminated[0]) > events.index(session[2])
    assert [r.action for r in z.requests] == ["start", "pause", "resume", "stop"]
