"""gateway.pipeline: the engine in front of the publisher, its configuration, and the app's choice of path."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from gateway import client
from gateway.app import Gateway
from gateway.audio import AudioConfig, AudioFormat
from gateway.config import AudioSettings, PublishConfig, config_from_mapping
from gateway.errors import ConfigError
from gateway.pipeline import EngineSink, format_plan, parse_format, parse_format_spec, pcm_params_for
from gateway.protocol import (
    AudioParams,
    Codec,
    DataOption,
    MediaMessage,
    MsgType,
    SampleRate,
    WebhookEvent,
    WebhookKind,
)
from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher
from gateway.sim.content import MeetingContent
from tests.audio.helpers import T0, expected_int16, meeting_packets
from tests.gateway.test_app_fakes import make_config

RATE = 16000


@pytest.fixture
def directory() -> Iterator[ShmDirectory]:
    d = ShmDirectory(ShmConfig(prefix=f"rtms-pl-{uuid.uuid4().hex[:10]}"))
    yield d
    d.close()


def read_all(reader: client.AudioReader) -> tuple[int, np.ndarray, np.ndarray]:
    arr, cursor, lost, gaps = reader.read_since(0)
    assert lost == 0
    start = cursor - len(arr)
    gap = np.zeros(len(arr), bool)
    for g in gaps:
        gap[g.start - start : g.start - start + g.length] = True
    return start, np.array(arr, copy=True), gap


def test_mix_exclude_and_pass_through_of_other_media(directory: ShmDirectory) -> None:
    params = AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS)
    content = MeetingContent(3, seed=7, late_join_ms=None, leave_ms=None)
    excluded = content.participants[2].user_id
    pub = ShmPublisher("s-excl", directory, audio=params)
    sink = EngineSink(pub, params, AudioConfig(mix_exclude=frozenset({excluded})))
    for uid, name, ts, payload in meeting_packets(content, params, 0, 2000):
        sink.on_audio(uid, name, ts, memoryview(payload))
    sink.on_transcript(MediaMessage(MsgType.MEDIA_DATA_TRANSCRIPT, user_id=content.participants[0].user_id, user_name="Ann", timestamp=T0 + 500, data="hello"))
    sink.on_drop("video", "bad_base64")
    with client.attach("s-excl", prefix=directory.config.prefix) as s:
        sink.close()
        assert sink.closed and pub.closed
        sink.close()  # idempotent
        origin = s.origin_ms
        assert origin is not None
        off = (origin - T0) * RATE // 1000
        start, mix, _ = read_all(s.mixed())
        total = np.zeros(len(mix), np.int32)
        for p in content.participants:
            if p.user_id != excluded:
                ref = expected_int16(content, p.user_id, RATE, 0, 2100)
                total += ref[start + off : start + off + len(mix)] if start + off >= 0 else np.concatenate([np.zeros(-(start + off), np.int16), ref[: len(mix) + start + off]])
        np.testing.assert_array_equal(mix, np.clip(total, -32768, 32767))
        names = {p.user_id: p.user_name for p in s.participants()}
        assert excluded in names  # its own ring is still there
        assert names == {0: "", **{p.user_id: p.user_name for p in content.participants if p.user_id in names}}  # named from the packets
        events, _, _ = s.events().read_since(0)
        assert [e["text"] for e in events if e["type"] == "transcript"] == ["hello"]
        assert s.drops()["video"] == 1


def test_zoom_mixed_stream_passes_through_into_ring_zero(directory: ShmDirectory) -> None:
    params = AudioParams(data_opt=DataOption.AUDIO_MIXED_STREAM)
    content = MeetingContent(3, seed=3, late_join_ms=None, leave_ms=None)
    pub = ShmPublisher("s-mixed", directory, audio=params, formats=[AudioFormat(16000, "float32", 1)])
    sink = EngineSink(pub, params, AudioConfig(), formats=[AudioFormat(16000, "float32", 1)])
    packets = meeting_packets(content, params, 0, 2000)
    assert {p[0] for p in packets} == {0}
    for uid, name, ts, payload in packets:
        sink.on_audio(uid, name, ts, memoryview(payload))
    assert sink.stats()["audio_engine"]["packets"] == len(packets)
    with client.attach("s-mixed", prefix=directory.config.prefix) as s:
        sink.close()
        off = (s.origin_ms - T0) * RATE // 1000
        start, mix, gap = read_all(s.mixed())
        ref = expected_int16(content, 0, RATE, 0, 2100)
        lo = max(start, -off)
        np.testing.assert_array_equal(mix[lo - start :], ref[lo + off : start + off + len(mix)])
        assert gap[: lo - start].all()
        f_start, f32, f_gap = read_all(s.audio_format(16000, "float32", 1))
        assert f_start == start
        np.testing.assert_array_equal(f32, mix.astype(np.float32) / 32768.0)
        np.testing.assert_array_equal(f_gap, gap)


def test_format_specs() -> None:
    assert parse_format("48000:float32:2") == AudioFormat(48000, "float32", 2)
    assert parse_format_spec("each:16000:int16:1") == ("each", AudioFormat(16000, "int16", 1))
    assert parse_format_spec("mixed:16000:int16:1") == parse_format_spec("16000:int16:1") == ("mixed", AudioFormat(16000, "int16", 1))
    for bad in ("16000:float32", "16k:float32:1", "16000:float64:1", "96000:int16:1", "16000:int16:3", "all:16000:int16:1"):
        with pytest.raises(ValueError):
            parse_format(bad)
    assert format_plan([parse_format("16000:int16:1"), parse_format("16000:int16:1")]) == [AudioFormat(16000, "int16", 1)]
    assert pcm_params_for(AudioParams(codec=Codec.OPUS, sample_rate=SampleRate.SR_48K, channel=2)) == AudioParams(codec=Codec.L16, sample_rate=SampleRate.SR_48K, channel=2)


def test_audio_section_is_validated() -> None:
    cfg = config_from_mapping({"audio": {"reorder_ms": 80, "mix_exclude": ["16778240"], "formats": ["16000:float32:1"]}}, env={})
    assert cfg.audio == AudioSettings(reorder_ms=80, mix_exclude=("16778240",), formats=("16000:float32:1",))
    cfg.validate(require_credentials=False)
    for bad in ({"formats": ["16000:float64:1"]}, {"mix_exclude": ["ann"]}, {"reorder_ms": -1}, {"mix_gain": 0.0}):
        with pytest.raises(ConfigError, match="audio"):
            config_from_mapping({"audio": bad}, env={}).validate(require_credentials=False)
    env = config_from_mapping({}, env={"GATEWAY_AUDIO_ENGINE": "false"})
    assert env.audio.engine is False


def _started(stream_id: str) -> WebhookEvent:
    return WebhookEvent(kind=WebhookKind.STARTED, event="meeting.rtms_started", event_ts=1, payload={}, stream_id=stream_id,
                        server_urls="ws://127.0.0.1:1", instance_key="m", instance_id="i")


@pytest.mark.parametrize("engine", [True, False])
def test_app_picks_the_engine_or_the_native_fast_path(tmp_path: object, engine: bool) -> None:
    prefix = f"rtms-pa-{uuid.uuid4().hex[:8]}"
    config = replace(make_config(), publish=PublishConfig(shm=True, shm_dir=str(tmp_path), shm_prefix=prefix),
                     audio=AudioSettings(engine=engine, formats=("16000:float32:1",)))
    gw = Gateway(config)
    sink = gw._sink_factory(_started("stream-x"))
    try:
        if engine:
            assert isinstance(sink, EngineSink) and isinstance(sink.publisher, ShmPublisher)
            assert sink.publisher.format_count == 1
        else:
            assert isinstance(sink, ShmPublisher) and sink.format_count == 0
    finally:
        sink.close()
        gw._shm().close()


def test_each_participant_gets_its_format_rings_until_the_spares_run_out(directory: ShmDirectory) -> None:
    params = AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS)
    content = MeetingContent(3, seed=7, late_join_ms=None, leave_ms=None)
    each = [AudioFormat(16000, "float32", 1), AudioFormat(8000, "int16", 1)]
    config = ShmConfig(prefix=directory.config.prefix, max_participants=3)  # rings for all three, formats for two
    pub = ShmPublisher("s-each", directory, config=config, audio=params, participant_formats=each)
    sink = EngineSink(pub, params, AudioConfig(), participant_formats=each, participant_groups=2)
    for uid, name, ts, payload in meeting_packets(content, params, 0, 6000):
        sink.on_audio(uid, name, ts, memoryview(payload))
    with client.attach("s-each", prefix=directory.config.prefix) as s:
        sink.close()
        owners = sorted({f.user_id for f in s.formats()})
        assert len(owners) == 2 and sink.stats()["audio_formats_skipped"] == 1  # third speaker: no spare left
        for uid in owners:
            start, pcm, gap = read_all(s.audio(uid))
            f_start, f32, f_gap = read_all(s.audio_format(16000, "float32", 1, user_id=uid))
            assert f_start == start
            np.testing.assert_array_equal(f32, pcm.astype(np.float32) / 32768.0)
            np.testing.assert_array_equal(f_gap, gap)
            r8 = s.audio_format(8000, "int16", 1, user_id=uid)
            assert r8.start_index == start // 2 and r8.write_index >= (start + len(pcm)) // 2 - 200


def test_engine_counters_reach_prometheus() -> None:
    gw = Gateway(make_config())
    gw.metrics.retired.add({"audio_engine": {"duplicates": 2, "reorders": 3, "gap_frames": 640}})
    text = gw.metrics.render().decode()
    for line in ('rtms_audio_engine_total{counter="duplicates"} 2.0', 'rtms_audio_engine_total{counter="reorders"} 3.0',
                 'rtms_audio_engine_total{counter="gap_frames"} 640.0'):
        assert line in text


async def test_idle_flush_publishes_the_last_window_when_audio_stops(directory: ShmDirectory) -> None:
    import asyncio

    params = AudioParams(data_opt=DataOption.AUDIO_MULTI_STREAMS)
    pub = ShmPublisher("s-idle", directory, audio=params)
    sink = EngineSink(pub, params, AudioConfig(reorder_ms=60), idle_flush_ms=50)
    payload = memoryview(np.full(320, 1000, np.int16).tobytes())
    for i in range(10):  # 200 ms of one speaker, then silence (nothing more arrives)
        sink.on_audio(16778240, "Ann", T0 + 20 * i, payload)
    with client.attach("s-idle", prefix=directory.config.prefix) as s:
        r = s.audio(16778240)
        before = r.write_index
        assert before < 3 * 320 + 10 * 320  # the reorder window still holds the tail
        for _ in range(100):
            if r.write_index >= 3 * 320 + 10 * 320:
                break
            await asyncio.sleep(0.02)
        _, pcm, gap = read_all(r)
        assert r.write_index == 3 * 320 + 10 * 320 and (pcm[~gap] == 1000).sum() == 3200  # all of it, once
        sink.close()
