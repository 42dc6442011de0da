"""Load mode: pre-built frames, real-time and as-fast-as-possible pacing (correctness only, no timings)."""

from __future__ import annotations

import base64
import itertools

import orjson
import pytest

from gateway.protocol import AudioParams, MsgType
from gateway.sim import Simulator
from gateway.sim.load import FrameBank
from tests.sim.helpers import Session, config, wait_for


def test_frame_bank_templates_patch_timestamps() -> None:
    params = AudioParams(data_opt=2)
    bank = FrameBank(params, speakers=2, payloads=[b"\x01\x02" * 320, b"\x03\x04" * 320])
    assert [u for u, _ in bank.users] == [16778240, 16779264]
    tpl = bank.frames[1][0]
    tpl.buf[tpl.ts_offset : tpl.ts_offset + 13] = b"1795543931137"
    doc = orjson.loads(bytes(tpl.buf))
    assert doc["msg_type"] == MsgType.MEDIA_DATA_AUDIO
    c = doc["content"]
    assert (c["user_id"], c["timestamp"], c["length"]) == (16779264, 1795543931137, 640)
    assert base64.b64decode(c["data"]) == b"\x03\x04" * 320  # row k starts at payload k


def test_frame_bank_mixed_stream_single_user_and_silence_default() -> None:
    bank = FrameBank(AudioParams(sample_rate=0, send_rate=100), speakers=3)
    assert bank.users == [(0, "")]
    c = orjson.loads(bytes(bank.frames[0][0].buf))["content"]
    assert base64.b64decode(c["data"]) == bytes(1600)  # 8 kHz x 100 ms x 2 bytes


@pytest.mark.parametrize("pace", ["realtime", "max"])
async def test_load_streams_deliver_contiguous_prebuilt_audio(pace: str) -> None:
    async with Simulator(config()) as sim:
        driver = sim.start_load(pace=pace, speakers=2)
        streams = [sim.create_stream(webhook=False, load=True) for _ in range(3)]
        sessions = []
        for st in streams:
            s = Session(sim, st, auto_keepalive=True)
            await s.join({"audio": {"audio": {"data_opt": 2}}})
            sessions.append(s)
        for s in sessions:
            msgs = [m["content"] for m in await s.media["audio"].drain(0.4) if m["msg_type"] == MsgType.MEDIA_DATA_AUDIO]
            by_user: dict[int, list[int]] = {}
            for c in msgs:
                assert len(base64.b64decode(c["data"])) == 640
                by_user.setdefault(c["user_id"], []).append(c["timestamp"])
            assert set(by_user) == {16778240, 16779264}
            for ts in by_user.values():
                assert ts[0] == s.stream.started_ms and all(b - a == 20 for a, b in itertools.pairwise(ts))
        assert driver.frames_sent == sum(st.sent.media_counts.get("audio", 0) for st in streams) > 0
        assert all(not st.sent.audio for st in streams)  # load mode records counts, not payloads
        for s in sessions:
            await s.close()


async def test_load_streams_need_start_load() -> None:
    async with Simulator(config()) as sim:
        with pytest.raises(RuntimeError, match="start_load"):
            sim.create_stream(webhook=False, load=True)


async def test_load_stream_honours_pause() -> None:
    async with Simulator(config()) as sim:
        sim.start_load(pace="realtime")
        stream = sim.create_stream(webhook=False, load=True)
        s = Session(sim, stream, auto_keepalive=True)
        await s.join({"audio": None})
        assert await wait_for(lambda: stream.sent.media_counts.get("audio", 0) > 5)
        stream.pause()
        await s.media["audio"].drain(0.1)
        count = stream.sent.media_counts["audio"]
        await s.media["audio"].drain(0.2)
        assert stream.sent.media_counts["audio"] == count
        await s.close()
