"""Zoom's official ``rtms`` 1.1.0 client joins the simulator and receives exactly what it sent.

The SDK runs in a subprocess (one explicit EventLoop per process, OFFICIAL_CLIENT.md 7). The
simulated meeting started 8 s before the join, so the startup audio buffer (``buffer_data``
defaults to true) arrives as a burst, then about 3 s of real-time L16 16 kHz mono multi-stream
audio and the transcripts of finished utterances. The simulator then pauses (no more media),
lets the client drain, and ends the stream with msg 8 TERMINATED so the SDK closes cleanly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path

import pytest
import rtms  # noqa: F401  (fails loudly if the official client is not installed)

from gateway.protocol import StopReason
from gateway.sim.server import SimConfig, Simulator

RUNNER = Path(__file__).with_name("official_client_runner.py")
CLIENT_ID = "official-client-test-id"
CLIENT_SECRET = "official-client-test-secret"

pytestmark = [pytest.mark.official, pytest.mark.timeout(90)]


async def _wait_for(predicate, within_s: float) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def test_official_client_receives_exact_audio_and_transcripts(tmp_path: Path) -> None:
    cfg = SimConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, keepalive_interval_s=0.25, participants=3, seed=7)
    async with Simulator(cfg) as sim:
        stream = sim.create_stream(backlog_ms=8000, webhook=False)
        payload = sim.join_payload(stream)
        out = tmp_path / "callbacks.jsonl"
        conf = tmp_path / "runner.json"
        conf.write_text(json.dumps({"payload": payload, "out": str(out), "deadline_s": 45}))
        env = {**os.environ, "ZM_RTMS_CLIENT": CLIENT_ID, "ZM_RTMS_SECRET": CLIENT_SECRET}
        proc = await asyncio.create_subprocess_exec(sys.executable, str(RUNNER), str(conf), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            assert await _wait_for(lambda: stream.client.ready_acks_signaling >= 1, 20), "the official client never sent msg 7"
            await asyncio.sleep(3.0)  # real-time media
            stream.pause()
            await asyncio.sleep(1.0)  # let the client's poll loop drain what is in flight
            stream.terminate(StopReason.STOP_BC_MEETING_ENDED)
            output, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, output.decode(errors="replace")[-3000:]

    records = [json.loads(line) for line in out.read_text().splitlines()]
    by_cb: dict[str, list[dict]] = {}
    for r in records:
        by_cb.setdefault(r["cb"], []).append(r)
    assert [r["reason"] for r in by_cb.get("join_confirm", [])] == [0]
    assert [r["reason"] for r in by_cb.get("leave", [])] == [int(StopReason.STOP_BC_MEETING_ENDED)]

    # Audio: per user, exactly the bytes (and timestamps) the simulator sent, in order.
    sent = stream.sent
    received: dict[int, list[tuple[int, bytes]]] = {}
    for r in by_cb.get("audio", []):
        received.setdefault(r["user_id"], []).append((r["ts"], base64.b64decode(r["data"])))
    assert set(received) == set(sent.audio) and len(sent.audio) >= 2
    for uid, packets in sent.audio.items():
        assert received[uid] == packets, f"user {uid}: {len(received[uid])} packets received vs {len(packets)} sent"
    total = sum(len(p) for p in sent.audio.values())
    assert total > 8 * 50  # the 8 s startup backlog plus real time, across speakers
    assert all(len(p) == 640 for pkts in sent.audio.values() for _, p in pkts)  # L16 16 kHz mono 20 ms

    # Transcripts: exactly the texts sent, in order.
    texts = [r["text"] for r in by_cb.get("transcript", [])]
    assert texts == sent.transcript_texts() and len(texts) >= 1

    # Keep-alives: answered on signaling and on both media sockets, none with a wrong timestamp.
    acc = stream.client.keepalive_accepted
    assert acc.get("signaling", 0) >= 3
    assert acc.get("media:audio", 0) >= 3 and acc.get("media:transcript", 0) >= 3
    assert not stream.client.keepalive_rejected
    # The client's messages: msg 7 on signaling (never on media), one media handshake per kind.
    assert stream.client.ready_acks_signaling >= 1 and stream.client.ready_acks_media == 0
    assert sorted(label for label, status in stream.client.media_handshakes if status == 0) == ["media:audio", "media:transcript"]


async def test_official_client_rejoins_after_media_tcp_drop(tmp_path: Path) -> None:
    """A media socket abort (no close frame) makes the SDK rejoin from signaling (OFFICIAL_CLIENT.md 4.5);
    audio produced meanwhile is buffered and replayed, so at most the frames in flight at the cut are lost."""
    cfg = SimConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, keepalive_interval_s=0.25, participants=3, seed=11)
    async with Simulator(cfg) as sim:
        stream = sim.create_stream(webhook=False)
        out = tmp_path / "callbacks.jsonl"
        conf = tmp_path / "runner.json"
        conf.write_text(json.dumps({"payload": sim.join_payload(stream), "out": str(out), "deadline_s": 45}))
        env = {**os.environ, "ZM_RTMS_CLIENT": CLIENT_ID, "ZM_RTMS_SECRET": CLIENT_SECRET}
        proc = await asyncio.create_subprocess_exec(sys.executable, str(RUNNER), str(conf), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            assert await _wait_for(lambda: stream.client.ready_acks_signaling >= 1, 20)
            await asyncio.sleep(1.0)
            cut_ts = stream.started_ms + stream.elapsed_ms()
            stream.abort_media("audio")
            assert await _wait_for(lambda: stream.client.ready_acks_signaling >= 2, 15), "the SDK did not rejoin"
            await asyncio.sleep(1.5)
            stream.pause()
            await asyncio.sleep(1.0)
            stream.terminate(StopReason.STOP_BC_MEETING_ENDED)
            output, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, output.decode(errors="replace")[-3000:]

    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["reason"] for r in records if r["cb"] == "join_confirm"] == [0]  # the rejoin fires no callback
    assert [r["reason"] for r in records if r["cb"] == "leave"] == [int(StopReason.STOP_BC_MEETING_ENDED)]
    assert stream.client.signaling_accepted == 2 and len(stream.client.reconnects) == 1
    received: dict[int, list[tuple[int, bytes]]] = {}
    for r in records:
        if r["cb"] == "audio":
            received.setdefault(r["user_id"], []).append((r["ts"], base64.b64decode(r["data"])))
    for uid, packets in stream.sent.audio.items():
        got = received.get(uid, [])
        sent_set = set(packets)
        assert all(p in sent_set for p in got)  # nothing invented or corrupted
        assert [ts for ts, _ in got] == sorted(ts for ts, _ in got)  # in order, no duplicates from the replay
        assert len(set(got)) == len(got)
        assert len(packets) - len(got) <= 10  # only frames in flight at the cut can be lost
    assert any(ts > cut_ts + 500 for pkts in received.values() for ts, _ in pkts)  # media flows after the rejoin
