"""The whole loop on loopback: ``gateway control`` -> simulated Zoom REST -> simulator -> signed webhook
-> the real Gateway -> a stream session -> a media sink; pause/resume/stop seen by the gateway.

The sink here records audio timestamps instead of publishing to shared memory (the shared-memory
consumer check belongs to the integration test); it proves the audio timeline is gap-free except
for the paused span, and that the gateway saw PAUSED, RESUMED and the stop.
"""

from __future__ import annotations

import itertools
from typing import Any

from gateway import listener
from gateway.app import Gateway
from gateway.config import Credentials, GatewayConfig, Secret, ServerConfig, SessionsConfig
from gateway.protocol import MediaMessage, StopReason
from gateway.sim import Simulator
from gateway.sim.rest import SimulatorRtmsApp, ZoomRestSim
from tests.control.helpers import ACCOUNT_ID, API_CLIENT_ID, API_CLIENT_SECRET, env, gateway_control
from tests.sim.helpers import CLIENT_ID, CLIENT_SECRET, WEBHOOK_SECRET, config, wait_for


class TimelineSink:
    """Keeps (timestamp) per audio user; counts everything else."""

    def __init__(self) -> None:
        self.audio: dict[int, list[int]] = {}
        self.other = 0
        self.closed = False

    def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.audio.setdefault(user_id, []).append(timestamp)

    def on_video(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.other += 1

    def on_share(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self.other += 1

    def on_transcript(self, msg: MediaMessage) -> None:
        self.other += 1

    def on_chat(self, msg: MediaMessage) -> None:
        self.other += 1

    def on_drop(self, kind: str, reason: str) -> None:
        self.other += 1

    def close(self) -> None:
        self.closed = True


async def test_control_drives_a_real_gateway_stream(monkeypatch: Any) -> None:
    # The pure-Python listener keeps this test independent of the native build's state; the
    # native path is covered by the gateway's own tests and the integration test.
    monkeypatch.setattr(listener, "IMPLEMENTATION", "pure")
    sinks: list[TimelineSink] = []
    events: list[dict[str, Any]] = []

    def make_sink(event: Any) -> TimelineSink:
        sinks.append(TimelineSink())
        return sinks[-1]

    gw_config = GatewayConfig(
        server=ServerConfig(host="127.0.0.1", port=0),
        credentials=Credentials(CLIENT_ID, Secret(CLIENT_SECRET), Secret(WEBHOOK_SECRET)),
        sessions=SessionsConfig(media_kinds=("audio",)),
    )
    async with Gateway(gw_config, sink_factory=make_sink) as gw:
        gw.event_listeners.append(lambda stream_id, doc: events.append(doc))
        async with Simulator(config(webhook_url=gw.webhook_url, scopes=("audio",))) as sim:
            # the RTMS app whose stream is started is the gateway's own app (same client id)
            z = ZoomRestSim.for_simulator(sim, account_id=ACCOUNT_ID, client_id=API_CLIENT_ID, client_secret=API_CLIENT_SECRET)
            assert isinstance(z.controller, SimulatorRtmsApp)
            meeting = z.controller.add_meeting(85746065432)
            environ = {**env(), "ZM_RTMS_CLIENT": CLIENT_ID}
            async with z:

                def states() -> list[str]:
                    return [d["state"] for d in events if d.get("type") == "session_state"]

                assert await gateway_control(z.base_url, "start", meeting.meeting_id, environ) == 0
                assert await wait_for(lambda: bool(sinks) and sum(map(len, sinks[0].audio.values())) >= 20, 5.0)
                stream = meeting.stream
                assert stream is not None and list(gw.streams) == [stream.stream_id]

                assert await gateway_control(z.base_url, "pause", meeting.uuid, environ) == 0
                assert await wait_for(lambda: "PAUSED" in states(), 3.0)
                paused_at = next(d["timestamp"] for d in events if d.get("state") == "PAUSED")
                count = sum(map(len, sinks[0].audio.values()))
                await wait_for(lambda: False, 0.5)  # half a second paused
                assert all(ts <= paused_at + 40 for ts in itertools.chain(*sinks[0].audio.values()))

                assert await gateway_control(z.base_url, "resume", meeting.meeting_id, environ) == 0
                assert await wait_for(lambda: "RESUMED" in states(), 3.0)
                assert await wait_for(lambda: sum(map(len, sinks[0].audio.values())) >= count + 20, 5.0)  # media restarted

                assert await gateway_control(z.base_url, "stop", meeting.meeting_id, environ) == 0
                assert await wait_for(lambda: not gw.streams, 5.0)
    sink = sinks[0]
    assert len(sinks) == 1 and sink.audio
    for timeline in sink.audio.values():
        gaps = [(a, b) for a, b in itertools.pairwise(timeline) if b - a != timeline[1] - timeline[0]]
        assert len(gaps) == 1, gaps  # gap-free except one hole: the paused span
        (a, b) = gaps[0]
        assert a <= paused_at + 40 and b - a >= 500
    assert states()[-3:] == ["PAUSED", "RESUMED", "STOPPED"]
    stopped = [d for d in events if d.get("state") == "STOPPED"]
    assert stopped[-1]["stop_reason"] == StopReason.STOP_BC_USER_TRIGGERED
