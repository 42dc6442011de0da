"""``gateway control`` against the real simulator: webhooks, a stream, pause/resume gaps, stop.

The simulator's REST side (:class:`ZoomRestSim` over :class:`SimulatorRtmsApp`) runs in the test's
loop; the command runs in a worker thread with its own loop, exactly as from a shell. A small test
client (tests/sim/helpers.py) plays the app's stream consumer: a full gateway-to-shared-memory run
is the integration test's job.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import orjson

from gateway import cli, control_cli, protocol
from gateway.protocol import MsgType, SessionState, StopReason, StreamState
from gateway.sim import Simulator
from gateway.sim.rest import SimulatorRtmsApp
from tests.control.helpers import ACCOUNT_ID, API_CLIENT_SECRET, env, gateway_control, zoom
from tests.sim.helpers import WEBHOOK_SECRET, Session, WebhookSink, config, wait_for

MEETING_ID = 85746065432
MEETING_UUID = "/xK3+9qLmTgW//eYz0Qk1A=="  # both of Zoom's double-encoding triggers
RATE_MS = 20


def audio_ts(msgs: list[dict[str, Any]]) -> list[int]:
    return [m["content"]["timestamp"] for m in msgs if m.get("msg_type") == MsgType.MEDIA_DATA_AUDIO]


async def test_control_start_pause_resume_stop_against_the_simulator() -> None:
    async with WebhookSink() as sink, Simulator(config(webhook_url=sink.url)) as sim:
        app = SimulatorRtmsApp(sim)
        meeting = app.add_meeting(MEETING_ID, MEETING_UUID)
        async with zoom(app) as z:
            # start: a signed meeting.rtms_started for this meeting, and a stream serving it
            assert await gateway_control(z.base_url, "start", MEETING_ID) == 0
            assert await wait_for(lambda: "meeting.rtms_started" in sink.events())
            headers, raw = sink.requests[0]
            assert protocol.verify_webhook_signature(WEBHOOK_SECRET, headers["x-zm-request-timestamp"], raw, headers["x-zm-signature"])
            payload = orjson.loads(raw)["payload"]
            stream = meeting.stream
            assert stream is not None and payload["meeting_uuid"] == MEETING_UUID and payload["rtms_stream_id"] == stream.stream_id
            assert protocol.pick_signaling_url(payload["server_urls"]) == stream.signaling_url

            s = Session(sim, stream)
            await s.join({"audio": {"audio": {"send_rate": RATE_MS}}})
            sig, media = s.signaling, s.media["audio"]
            assert sig is not None
            await sig.recv_type(MsgType.SESSION_STATE_UPDATE)  # STARTED
            before = audio_ts(await media.drain(0.4))
            assert len(before) >= 5

            # pause (by UUID this time): msg 9 PAUSED, then no audio
            assert await gateway_control(z.base_url, "pause", MEETING_UUID) == 0
            paused = await sig.recv_type(MsgType.SESSION_STATE_UPDATE)
            assert paused["state"] == SessionState.PAUSED and stream.paused
            during = audio_ts(await media.drain(0.5))
            # only frames produced before the pause (already in flight) may still arrive: media stopped
            assert all(ts <= paused["timestamp"] + 2 * RATE_MS for ts in during)
            before += during

            assert await gateway_control(z.base_url, "resume", MEETING_ID) == 0
            resumed = await sig.recv_type(MsgType.SESSION_STATE_UPDATE)
            assert resumed["state"] == SessionState.RESUMED
            after = audio_ts(await media.drain(0.4))
            assert len(after) >= 5  # media restarted

            # one timeline: gap-free before, gap-free after, the hole only over the paused span
            assert all(b - a == RATE_MS for a, b in itertools.pairwise(before))
            assert all(b - a == RATE_MS for a, b in itertools.pairwise(after))
            assert before[-1] <= paused["timestamp"] + 2 * RATE_MS
            assert after[0] >= resumed["timestamp"] - 2 * RATE_MS
            assert after[0] - before[-1] >= 400  # nothing captured while paused was delivered

            # stop: msg 8 TERMINATED with the stop reason, and a signed meeting.rtms_stopped
            assert await gateway_control(z.base_url, "stop", MEETING_ID) == 0
            state = await sig.recv_type(MsgType.STREAM_STATE_UPDATE)
            assert state["state"] == StreamState.TERMINATED and state["reason"] == StopReason.STOP_BC_USER_TRIGGERED
            assert await wait_for(lambda: "meeting.rtms_stopped" in sink.events())
            stopped = next(b for b in sink.bodies() if b["event"] == "meeting.rtms_stopped")
            assert stopped["payload"]["meeting_uuid"] == MEETING_UUID and stopped["payload"]["stop_reason"] == StopReason.STOP_BC_USER_TRIGGERED
            assert stream.terminated and [r.action for r in z.requests] == ["start", "pause", "resume", "stop"]
            await s.close()

            # a second start opens a new stream for the same meeting
            assert await gateway_control(z.base_url, "start", MEETING_ID) == 0
            assert meeting.stream is not stream and len(meeting.streams) == 2
            assert await wait_for(lambda: sink.events().count("meeting.rtms_started") == 2)


async def test_control_errors_against_the_simulator_exit_codes() -> None:
    async with Simulator(config()) as sim:
        app = SimulatorRtmsApp(sim)
        app.add_meeting(1001, live=False)
        app.add_meeting(1002, host_present=False)
        live = app.add_meeting(1003)
        async with zoom(app) as z:
            assert await gateway_control(z.base_url, "start", 1001) == 3  # meeting not live
            assert await gateway_control(z.base_url, "start", 4242) == 3  # unknown meeting
            assert await gateway_control(z.base_url, "start", 1002) == 4  # host absent
            assert await gateway_control(z.base_url, "pause", 1003) == 1  # nothing running yet
            z.app_permitted = False
            assert await gateway_control(z.base_url, "start", 1003) == 5
            z.app_permitted = True
            z.force_rate_limit(2, retry_after=0)
            assert await gateway_control(z.base_url, "start", 1003) == 7  # still limited after one retry
            assert live.stream is None and sim.streams == {}
            bad = {**env(), "ZM_API_CLIENT_SECRET": "wrong"}
            assert await gateway_control(z.base_url, "start", 1003, bad) == 6  # credentials rejected
            assert await gateway_control(z.base_url, "start", 1003, {**env(), "ZM_RTMS_CLIENT": ""}) == 2  # no RTMS app id
            del bad["ZM_ACCOUNT_ID"]
            assert await gateway_control(z.base_url, "start", 1003, bad) == 2  # missing credentials


async def test_main_entry_runs_on_its_own_loop(monkeypatch: Any, capsys: Any) -> None:
    for name, value in env().items():
        monkeypatch.setenv(name, value)
    async with Simulator(config()) as sim:
        app = SimulatorRtmsApp(sim)
        meeting = app.add_meeting(MEETING_ID)
        async with zoom(app) as z:
            argv = ["control", "start", "--meeting", str(MEETING_ID), "--api-base", z.api_base, "--oauth-url", z.oauth_url]
            assert await asyncio.to_thread(cli.main, argv) == 0  # exactly `gateway control start ...`
            assert meeting.stream is not None and meeting.stream.instance_id == meeting.uuid
            assert await asyncio.to_thread(control_cli.main, ["stop", "--meeting", "1", "--api-base", z.api_base, "--oauth-url", z.oauth_url]) == 3
    out = capsys.readouterr()
    assert "start: accepted" in out.out and "is not live" in out.err
    assert API_CLIENT_SECRET not in out.out + out.err and ACCOUNT_ID not in out.out + out.err
