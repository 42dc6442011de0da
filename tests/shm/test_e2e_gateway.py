"""Acceptance: simulated meetings -> the real gateway -> shared memory -> consumers in other processes.

A follower process reads every participant's audio and every video frame while the stream runs;
a second consumer is SIGKILLed mid-stream; the follower must have received exactly what the
simulator sent, in order, and the gateway must not have noticed the killed consumer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import zlib
from dataclasses import replace
from typing import Any

from gateway import client
from gateway.app import Gateway
from gateway.config import PublishConfig, SessionsConfig
from tests.gateway.conftest import sim_factory, wait_for  # noqa: F401 - fixture used by name
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def _consumer(mode: str, prefix: str, stream_id: str, shm_dir: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.shm.reader_proc", mode, prefix, stream_id, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "RTMS_SHM_DIR": shm_dir})
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    return proc


async def test_meeting_through_the_gateway_reaches_consumers_in_other_processes(sim_factory: Any, tmp_path: Any, prefix: str) -> None:  # noqa: F811
    shm_dir = str(tmp_path)
    config = make_config(sessions=SessionsConfig(media_kinds=("audio", "video", "transcript"), media_params={"audio": {"data_opt": 2}}))
    config = replace(config, publish=PublishConfig(shm=True, shm_dir=shm_dir, shm_prefix=prefix))
    gw = Gateway(config)
    await gw.start()
    sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url)
    follower = victim = None
    try:
        stream = sim.create_stream()
        await wait_for(lambda: len(client.list_streams(prefix, shm_dir)) == 1, timeout_s=20)
        follower = await _consumer("followall", prefix, stream.stream_id, shm_dir)
        await wait_for(lambda: stream.sent.media_counts.get("video", 0) >= 2, timeout_s=20)
        victim = await _consumer("spin", prefix, stream.stream_id, shm_dir)
        sent_before_kill = stream.sent.media_counts.get("audio", 0)
        await wait_for(lambda: stream.sent.media_counts.get("audio", 0) > sent_before_kill + 50, timeout_s=20)
        victim.kill()  # SIGKILL mid-read (it loops reading and sleeping on the futex)
        assert await asyncio.wait_for(victim.wait(), 60) == -9
        killed_at = stream.sent.media_counts.get("audio", 0)
        await wait_for(lambda: stream.sent.media_counts.get("audio", 0) > killed_at + 100, timeout_s=20)
        stream.pause()
        session = gw.streams[stream.stream_id]
        await wait_for(lambda: all(session.stats()["frames"].get(k, 0) >= stream.sent.media_counts.get(k, 0) for k in ("audio", "video")), timeout_s=20)
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=20)
        out, _ = await asyncio.wait_for(follower.communicate(), 60)
        assert follower.returncode == 0
        got = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        for proc in (follower, victim):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        await gw.close()
    sent_audio = {uid: sorted(packets) for uid, packets in stream.sent.audio.items()}
    assert len(sent_audio) >= 2 and set(got["audio"]) == {str(u) for u in sent_audio} | {"0"}
    for uid, packets in sent_audio.items():
        expected = 0
        for _, payload in packets:
            expected = zlib.crc32(payload, expected)
        assert got["audio"][str(uid)] == {"crc": expected, "lost": 0}, f"user {uid}"
    sent_video = sorted((ts, uid, zlib.crc32(p)) for uid, packets in stream.sent.video.items() for ts, p in packets)
    assert got["video_lost"] == 0 and len(sent_video) >= 2
    assert [tuple(f[1:]) for f in got["video"]] == sent_video
    assert [f[0] for f in got["video"]] == list(range(len(sent_video)))
    assert os.listdir(shm_dir) == []  # segments and directory removed
