"""The engine behind the real media path: simulator -> session -> media listener -> AudioEngine.

The simulated stream "started" 4 s before the client connected, so its buffered audio arrives as
a startup burst (``buffer_data``) and the rest at the real-time pace; the engine's rings must
still hold each participant's known signal sample for sample, and the mix their sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gateway.audio import AudioEngine
from gateway.protocol import AudioParams, DataOption, MediaMessage, MediaParams, StopReason
from gateway.session import SessionSettings, StreamSession, StreamTarget
from gateway.sim.content import MeetingContent
from gateway.sim.server import SimConfig, Simulator
from tests.audio.helpers import Recorder, expected_int16
from tests.gateway.conftest import pick_media_listener, started_event, wait_for

RATE = 16000


class EngineSink:
    """A MediaSink whose audio half is the engine (the rest is not this test's business)."""

    def __init__(self, engine: AudioEngine) -> None:
        self.engine = engine
        self.on_audio = engine.on_audio
        self.on_media_params = engine.on_media_params

    def on_video(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        pass

    def on_share(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        pass

    def on_transcript(self, msg: MediaMessage) -> None:
        pass

    def on_chat(self, msg: MediaMessage) -> None:
        pass

    def on_drop(self, kind: str, reason: str) -> None:
        raise AssertionError(f"dropped {kind}: {reason}")


async def test_startup_burst_and_live_audio_land_exactly() -> None:
    sim = Simulator(SimConfig(time_scale=0.05, participants=3))
    await sim.start()
    try:
        content = MeetingContent(3, seed=31)
        stream = sim.create_stream(webhook=False, backlog_ms=4000, content=content)
        rec = Recorder()
        engine = AudioEngine(rec)
        params = MediaParams(audio=AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS))
        settings = SessionSettings(
            "sim-client-id", "sim-client-secret", media_kinds=("audio",), media_params=params, handshake_timeout_s=5.0, close_timeout_s=2.0
        )
        events: list[Any] = []
        session = StreamSession(
            StreamTarget.from_webhook(started_event(stream)), settings, sink=EngineSink(engine), on_event=events.append, listener_class=pick_media_listener()
        )
        await session.start()
        await wait_for(lambda: engine.closed_index >= 5 * RATE, timeout_s=20.0)
        stream.terminate(StopReason.STOP_BC_MEETING_ENDED)
        await session.wait_closed()
        engine.flush(final=True)
    finally:
        await sim.close()
    assert engine.params.data_opt == DataOption.AUDIO_MULTI_STREAMS  # negotiated params reached the engine
    st = engine.stats
    assert st.packets == sum(len(p) for p in stream.sent.audio.values()) > 0
    assert st.duplicates == st.late_packets == st.decode_errors == 0
    assert engine.clock is not None
    offset = (engine.clock.origin_ms - stream.started_ms) * RATE // 1000  # content sample of engine index 0
    t_end = (rec.mixed.end + offset) * 1000 // RATE + 1
    for p in content.participants:
        s = rec.participants[p.user_id]
        ref = expected_int16(content, p.user_id, RATE, 0, t_end)
        a = max(s.start, -offset)
        pcm, gaps = s.window(a, s.end)
        np.testing.assert_array_equal(pcm, ref[a + offset : s.end + offset])
        assert (~gaps).sum() > RATE // 2  # it spoke, and what it said is exactly where it belongs
    ref = expected_int16(content, 0, RATE, 0, t_end)
    a = max(rec.mixed.start, -offset)
    np.testing.assert_array_equal(rec.mixed.window(a, rec.mixed.end)[0], ref[a + offset : rec.mixed.end + offset])
