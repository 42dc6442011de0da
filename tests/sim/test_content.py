"""Synthetic meeting content: exact audio sizes and values, decodable codecs and pictures, and a
timeline (turns, transcripts, events) that agrees with itself."""

from __future__ import annotations

from collections import Counter
from typing import Any

import av
import numpy as np
import pytest

from gateway.protocol import (
    AudioParams,
    Codec,
    DataOption,
    DeskshareParams,
    EventType,
    Product,
    Resolution,
    SampleRate,
    VideoParams,
    ZccEventType,
)
from gateway.sim.codecs import alaw_decode, alaw_encode
from gateway.sim.content import MAX_SPEAKERS, TICK_MS, AudioBank, MeetingContent, read_frame_counter
from gateway.sim.drawing import read_user_colour

MULTI = DataOption.AUDIO_MULTI_STREAMS
MIXED = DataOption.AUDIO_MIXED_STREAM


@pytest.fixture(scope="module")
def meeting() -> MeetingContent:
    return MeetingContent(3, seed=0)


def _int16(payload: bytes) -> np.ndarray:
    return np.frombuffer(payload, dtype="<i2")


def _dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def _long_turn(c: MeetingContent, index: int, min_ms: int = 600, after_ms: int = 0) -> tuple[int, int]:
    """A stretch [t0, t1) where participant ``index`` speaks in every tick."""
    for start, end, seg, _ in c.utterances(after_ms, after_ms + 3 * c.period_ms):
        if seg.index == index and end - start >= min_ms and start >= after_ms:
            return start, end
    raise AssertionError(f"participant {index} has no turn of {min_ms} ms")


def _user_stream(c: MeetingContent, params: AudioParams, user_id: int, t0: int, t1: int) -> bytes:
    return b"".join(p for t in range(t0, t1, params.send_rate) for uid, _, p in c.audio_packets(params, t) if uid == user_id)


# --------------------------------------------------------------------------- L16


@pytest.mark.parametrize("sample_rate", list(SampleRate))
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("send_rate", [20, 40, 100, 1000])
def test_l16_packets_have_exact_sizes(meeting: MeetingContent, sample_rate: int, channels: int, send_rate: int) -> None:
    for data_opt in (MIXED, MULTI):
        params = AudioParams(sample_rate=sample_rate, channel=channels, send_rate=send_rate, data_opt=data_opt)
        expected = params.rate_hz * send_rate // 1000 * channels * 2
        sizes = Counter(len(p) for t in range(0, 2 * meeting.period_ms, send_rate) for _, _, p in meeting.audio_packets(params, t))
        assert sizes, "no packets at all"
        assert set(sizes) == {expected}


def test_l16_phase_is_continuous_across_packets(meeting: MeetingContent) -> None:
    """Concatenated 20 ms packets equal the tone computed in one shot from the absolute sample index."""
    for spec in meeting.participants:
        t0, t1 = _long_turn(meeting, spec.index, after_ms=spec.join_ms)
        for sr in SampleRate:
            params = AudioParams(sample_rate=sr, data_opt=MULTI)
            got = _int16(_user_stream(meeting, params, spec.user_id, t0, t1))
            rate = params.rate_hz
            n = np.arange(rate * t0 // 1000, rate * t1 // 1000)
            want = np.round(0.25 * 32767 * np.sin(2 * np.pi * spec.tone_hz * n / rate)).astype(np.int16)
            np.testing.assert_array_equal(got, want)
            ref = meeting.expected_pcm(spec.user_id, rate, t0, t1)
            np.testing.assert_array_equal(np.round(ref * 32768).astype(np.int16), want)


def test_longer_send_rate_equals_concatenated_20ms_packets(meeting: MeetingContent) -> None:
    """A 100 ms (or 1 s) packet carries the same samples as five (fifty) 20 ms ticks, silence included."""
    for send_rate in (100, 1000):
        for data_opt in (MIXED, MULTI):
            long = AudioParams(send_rate=send_rate, data_opt=data_opt, channel=2)
            short = AudioParams(send_rate=20, data_opt=data_opt, channel=2)
            silence = b"\0" * short.bytes_per_packet
            for t in range(0, 2 * meeting.period_ms, send_rate):
                for uid, _, payload in meeting.audio_packets(long, t):
                    parts = []
                    for k in range(send_rate // TICK_MS):
                        mine = [p for u, _, p in meeting.audio_packets(short, t + k * TICK_MS) if u == uid]
                        parts.append(mine[0] if mine else silence)
                    assert payload == b"".join(parts)


def test_stereo_carries_the_mono_signal_on_both_channels(meeting: MeetingContent) -> None:
    t0, t1 = _long_turn(meeting, 0)
    mono = _int16(_user_stream(meeting, AudioParams(data_opt=MULTI), meeting.participants[0].user_id, t0, t1))
    stereo = _int16(_user_stream(meeting, AudioParams(data_opt=MULTI, channel=2), meeting.participants[0].user_id, t0, t1))
    np.testing.assert_array_equal(stereo[0::2], mono)
    np.testing.assert_array_equal(stereo[1::2], mono)


@pytest.mark.parametrize("sample_rate", list(SampleRate))
def test_fft_of_each_participant_shows_its_tone(sample_rate: int) -> None:
    c = MeetingContent(5, seed=3)
    params = AudioParams(sample_rate=sample_rate, data_opt=MULTI)
    tones = {p.tone_hz for p in c.participants}
    assert len(tones) == len(c.participants)
    for spec in c.participants:
        t0, _ = _long_turn(c, spec.index, after_ms=spec.join_ms)
        got = _int16(_user_stream(c, params, spec.user_id, t0, t0 + 500))
        assert abs(_dominant_hz(got, params.rate_hz) - spec.tone_hz) <= 2.0
        # the amplitude is about a quarter of full scale
        assert 0.24 * 32767 <= np.abs(got).max() <= 0.251 * 32767


def test_mixed_is_the_saturating_sum_of_active_speakers() -> None:
    c = MeetingContent(3, seed=1, amplitude=0.45)  # three speakers at 0.45 clip
    mixed, multi = AudioParams(data_opt=MIXED), AudioParams(data_opt=MULTI)
    saturated = silent_ticks = 0
    for t in range(0, 2 * c.period_ms, TICK_MS):
        parts = c.audio_packets(multi, t)
        mix = c.audio_packets(mixed, t)
        assert [u for u, _, _ in parts] == [c.participants[i].user_id for i in c.speakers(t)]
        if not parts:
            assert mix == []
            silent_ticks += 1
            continue
        assert len(mix) == 1 and mix[0][:2] == (0, "")
        total = sum(_int16(p).astype(np.int32) for _, _, p in parts)
        np.testing.assert_array_equal(_int16(mix[0][2]), np.clip(total, -32768, 32767))
        saturated += int((np.abs(total) > 32767).any())
    assert saturated > 0 and silent_ticks > 0


def test_expected_pcm_of_the_mix_matches_the_mixed_stream(meeting: MeetingContent) -> None:
    params = AudioParams(data_opt=MIXED)
    silence = b"\0" * params.bytes_per_packet
    t1 = meeting.period_ms
    stream = b"".join((meeting.audio_packets(params, t) or [(0, "", silence)])[0][2] for t in range(0, t1, TICK_MS))
    ref = meeting.expected_pcm(0, 16000, 0, t1)
    np.testing.assert_array_equal(np.round(ref * 32768).astype(np.int16), _int16(stream))
    # sums of the individual references, through any sub-range (not tick-aligned)
    part = sum(meeting.expected_pcm(p.user_id, 8000, 1234, 5677) for p in meeting.participants)
    np.testing.assert_allclose(meeting.expected_pcm(0, 8000, 1234, 5677), part)


@pytest.mark.parametrize("participants", [1, 2, 3, 4, 8, 12])
def test_at_most_three_speakers_with_overlaps_and_gaps(participants: int) -> None:
    for seed in range(3):
        c = MeetingContent(participants, seed=seed)
        counts = Counter(len(c.speakers(t)) for t in range(0, c.period_ms, TICK_MS))
        assert max(counts) <= MAX_SPEAKERS
        assert counts[0] > 0, "no gap where nobody speaks"
        assert counts[1] > 0
        if participants >= 2:
            assert counts[2] > 0, "no two-speaker overlap"
        if participants >= 3:
            assert counts[3] > 0, "no three-speaker overlap"
        params = AudioParams(data_opt=MULTI)
        assert max(len(c.audio_packets(params, t)) for t in range(0, c.period_ms, TICK_MS)) <= MAX_SPEAKERS


def test_late_joiner_speaks_only_after_joining_and_leaver_stops(meeting: MeetingContent) -> None:
    late = meeting.participants[-1]
    leaver = meeting.participants[1]
    assert late.join_ms > 0 and leaver.leave_ms is not None
    params = AudioParams(data_opt=MULTI)
    spoke: dict[int, list[int]] = {p.user_id: [] for p in meeting.participants}
    for t in range(0, 3 * meeting.period_ms, TICK_MS):
        for uid, name, _ in meeting.audio_packets(params, t):
            spoke[uid].append(t)
            assert name == meeting.participant(uid).user_name
    assert min(spoke[late.user_id]) >= late.join_ms
    assert min(spoke[late.user_id]) <= late.join_ms + 1000 + TICK_MS
    assert max(spoke[leaver.user_id]) < leaver.leave_ms
    assert not meeting.is_speaking(late.user_id, late.join_ms - TICK_MS)


def test_audio_is_a_pure_function_of_seed_params_and_time() -> None:
    a, b = MeetingContent(4, seed=7), MeetingContent(4, seed=7)
    all_params = [
        AudioParams(data_opt=MULTI),
        AudioParams(sample_rate=SampleRate.SR_8K, codec=Codec.G711, data_opt=MULTI),
        AudioParams(codec=Codec.G722, data_opt=MIXED),
        AudioParams(sample_rate=SampleRate.SR_48K, codec=Codec.OPUS, channel=2, data_opt=MULTI),
    ]
    times = list(range(0, 4000, TICK_MS))
    rng = np.random.default_rng(0)
    for params in all_params:
        forward = [a.audio_packets(params, t) for t in times]
        shuffled = {t: b.audio_packets(params, t) for t in rng.permutation(times).tolist()}
        assert forward == [shuffled[t] for t in times]
    other = MeetingContent(4, seed=8)
    assert [s.start_ms for s in other.segments] != [s.start_ms for s in a.segments]


def test_meetings_share_encoded_loops_through_the_bank() -> None:
    params = AudioParams(sample_rate=SampleRate.SR_48K, codec=Codec.OPUS, data_opt=MULTI)
    a, b = MeetingContent(3, seed=1), MeetingContent(3, seed=2)
    t_a = next(t for t in range(0, 5000, TICK_MS) if 0 in a.speakers(t))
    t_b = next(t for t in range(0, 5000, TICK_MS) if 0 in b.speakers(t))
    a.audio_packets(params, t_a)
    b.audio_packets(params, t_b)
    assert a._loops[((0,), params.codec, 48000, 1)] is b._loops[((0,), params.codec, 48000, 1)]
    private = MeetingContent(3, seed=1, bank=AudioBank())
    assert private.audio_packets(params, t_a) == a.audio_packets(params, t_a)
    assert private._loops[((0,), params.codec, 48000, 1)] is not a._loops[((0,), params.codec, 48000, 1)]


# --------------------------------------------------------------------------- codecs


def _decode_audio(codec_name: str, packets: list[bytes], rate: int, layout: str = "mono") -> np.ndarray:
    ctx: Any = av.CodecContext.create(codec_name, "r")
    ctx.sample_rate = rate
    ctx.layout = layout
    out = []
    for p in packets:
        for frame in ctx.decode(av.Packet(p)):
            arr = frame.to_ndarray()
            if arr.dtype.kind == "f":
                arr = arr * 32768
            out.append(arr.reshape(-1) if frame.format.is_packed else arr[0])
    return np.concatenate(out).astype(np.float64)


def test_g711_alaw_decodes_to_the_signal_within_quantisation_error(meeting: MeetingContent) -> None:
    params = AudioParams(sample_rate=SampleRate.SR_8K, codec=Codec.G711, data_opt=MULTI)
    spec = meeting.participants[0]
    t0, t1 = _long_turn(meeting, 0)
    packets = [p for t in range(t0, t1, TICK_MS) for u, _, p in meeting.audio_packets(params, t) if u == spec.user_id]
    assert {len(p) for p in packets} == {160}
    ours = alaw_decode(b"".join(packets)).astype(np.float64)
    ffmpeg = _decode_audio("pcm_alaw", packets, 8000)
    np.testing.assert_array_equal(ours, ffmpeg)
    want = meeting.expected_pcm(spec.user_id, 8000, t0, t1) * 32768
    assert np.all(np.abs(ours - want) <= np.abs(want) / 16 + 16)
    # the table round-trips every A-law code
    codes = np.arange(256, dtype=np.uint8).tobytes()
    assert alaw_encode(alaw_decode(codes)) == codes


def test_g722_decodes_to_the_participant_tone(meeting: MeetingContent) -> None:
    params = AudioParams(sample_rate=SampleRate.SR_16K, codec=Codec.G722, data_opt=MULTI)
    for spec in meeting.participants:
        t0, t1 = _long_turn(meeting, spec.index, after_ms=spec.join_ms)
        packets = [p for t in range(t0, t1, TICK_MS) for u, _, p in meeting.audio_packets(params, t) if u == spec.user_id]
        assert {len(p) for p in packets} == {160}
        pcm = _decode_audio("g722", packets, 16000)
        assert abs(_dominant_hz(pcm[len(pcm) // 4 :], 16000) - spec.tone_hz) <= 5.0
        assert np.abs(pcm).max() > 0.15 * 32768


@pytest.mark.parametrize("channels", [1, 2])
def test_opus_decodes_to_the_participant_tone(meeting: MeetingContent, channels: int) -> None:
    params = AudioParams(sample_rate=SampleRate.SR_48K, codec=Codec.OPUS, channel=channels, data_opt=MULTI)
    for spec in meeting.participants:
        t0, t1 = _long_turn(meeting, spec.index, after_ms=spec.join_ms)
        packets = [p for t in range(t0, t1, TICK_MS) for u, _, p in meeting.audio_packets(params, t) if u == spec.user_id]
        assert len(packets) == (t1 - t0) // TICK_MS
        pcm = _decode_audio("libopus", packets, 48000, "stereo" if channels == 2 else "mono")
        left = pcm[0::channels]
        assert len(left) == 960 * len(packets)
        assert abs(_dominant_hz(left[len(left) // 4 :], 48000) - spec.tone_hz) <= 5.0
    mixed = AudioParams(sample_rate=SampleRate.SR_48K, codec=Codec.OPUS, channel=channels, data_opt=MIXED)
    with pytest.raises(ValueError):
        meeting.audio_packets(AudioParams(sample_rate=SampleRate.SR_48K, codec=Codec.OPUS, send_rate=40), _long_turn(meeting, 0)[0])
    assert all(len(meeting.audio_packets(mixed, t)) <= 1 for t in range(0, 2000, TICK_MS))


# --------------------------------------------------------------------------- video and share


def _decode_image(codec_name: str, data: bytes) -> np.ndarray:
    ctx = av.CodecContext.create(codec_name, "r")
    frames = ctx.decode(av.Packet(data))
    assert len(frames) == 1
    return frames[0].to_ndarray(format="rgb24")


@pytest.mark.parametrize(("codec", "decoder"), [(Codec.JPG, "mjpeg"), (Codec.PNG, "png")])
@pytest.mark.parametrize("resolution", list(Resolution))
def test_image_frames_decode_to_size_counter_and_speaker_colour(codec: int, decoder: str, resolution: int) -> None:
    c = MeetingContent(3, seed=0, video_scale=2 if resolution >= Resolution.FHD else 1)
    params = VideoParams(codec=codec, resolution=resolution, fps=5)
    width, height = Resolution(resolution).size
    scale = c.video_scale
    for frame_index, t in ((0, 0), (7, 1400), (4321, 3500), (999999, 5000)):
        uid, name, data = c.video_frame(params, frame_index, t)  # type: ignore[misc]
        rgb = _decode_image(decoder, data)
        assert rgb.shape == (height // scale, width // scale, 3)
        assert read_frame_counter(rgb) == frame_index
        shown = c.participant_by_colour(read_user_colour(rgb))
        assert (shown.user_id, shown.user_name) == (uid, name)
        active = c.active_speaker(t)
        if active is not None and c.video_on(active.user_id, t):
            assert uid == active.user_id


def test_video_follows_the_active_speaker_and_stops_without_cameras() -> None:
    c = MeetingContent(3, seed=0)
    params = VideoParams(codec=Codec.JPG, resolution=Resolution.SD)
    seen = set()
    for t in range(0, c.period_ms, 200):
        frame = c.video_frame(params, t // 200, t)
        assert frame is not None  # participant 0's camera is always on
        seen.add(frame[0])
    assert len(seen) >= 2
    solo = MeetingContent(1, seed=0)
    assert solo.video_frame(params, 0, 0) is not None
    zcc = MeetingContent(seed=0, product=Product.CONTACT_CENTER)
    assert zcc.video_frame(params, 0, 0) is None
    # individual subscription: only the subscribed user's camera
    late = c.participants[-1]
    sub = VideoParams(codec=Codec.JPG, resolution=Resolution.SD, data_opt=DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM)
    assert c.video_frame(sub, 0, 0, user_id=late.user_id) is None  # not joined yet
    got = c.video_frame(sub, 5, late.join_ms + 600, user_id=late.user_id)
    assert got is not None and got[0] == late.user_id


def test_h264_stream_has_keyframes_with_sps_pps_and_readable_counters() -> None:
    keyint = 10
    c = MeetingContent(3, seed=0, keyframe_interval=keyint)
    params = VideoParams(codec=Codec.H264, resolution=Resolution.SD, fps=25)
    ctx = av.CodecContext.create("h264", "r")
    for i in range(3 * keyint + 3):
        _, _, data = c.video_frame(params, i, i * 40)  # type: ignore[misc]
        assert data.startswith(b"\0\0\0\1") or data.startswith(b"\0\0\1")
        nal_types = [data[k + 3] & 0x1F for k in range(len(data) - 3) if data[k : k + 3] == b"\0\0\1"]
        if i % keyint == 0:
            assert 5 in nal_types
            assert nal_types.index(7) < nal_types.index(8) < nal_types.index(5)
        else:
            assert 5 not in nal_types and 7 not in nal_types
        frames = ctx.decode(av.Packet(data))
        assert len(frames) == 1, "one access unit per message, no reordering delay"
        rgb = frames[0].to_ndarray(format="rgb24")
        assert rgb.shape == (360, 640, 3)
        assert read_frame_counter(rgb) == i
    # a jump restarts the encoder with a key frame that a fresh decoder can start from
    _, _, data = c.video_frame(params, 1234, 50000)  # type: ignore[misc]
    fresh = av.CodecContext.create("h264", "r")
    assert read_frame_counter(fresh.decode(av.Packet(data))[0].to_ndarray(format="rgb24")) == 1234


def test_share_frames_only_while_sharing(meeting: MeetingContent) -> None:
    params = DeskshareParams(codec=Codec.JPG, resolution=Resolution.HD, fps=1)
    sharing = 0
    for t in range(0, 2 * meeting.period_ms, 500):
        frame = meeting.share_frame(params, t // 500, t)
        sharer = meeting.sharer(t)
        if sharer is None:
            assert frame is None
            continue
        sharing += 1
        uid, name, data = frame  # type: ignore[misc]
        assert (uid, name) == (sharer.user_id, sharer.user_name)
        rgb = _decode_image("mjpeg", data)
        assert rgb.shape == (720, 1280, 3)
        assert read_frame_counter(rgb) == t // 500
    assert sharing > 0
    h264 = DeskshareParams(codec=Codec.H264, resolution=Resolution.SD, fps=10)
    t0 = meeting._share_window()[0]
    ctx = av.CodecContext.create("h264", "r")
    for i in range(5):
        _, _, data = meeting.share_frame(h264, i, t0 + i * 100)  # type: ignore[misc]
        assert read_frame_counter(ctx.decode(av.Packet(data))[0].to_ndarray(format="rgb24")) == i


def test_pictures_are_deterministic() -> None:
    a, b = MeetingContent(3, seed=5), MeetingContent(3, seed=5)
    a.warm_up(VideoParams(codec=Codec.JPG), DeskshareParams(codec=Codec.PNG, resolution=Resolution.SD))
    assert sum(1 for key in a._video_encoders if key[0] == "canvas") == 4
    for params in (VideoParams(codec=Codec.JPG), VideoParams(codec=Codec.PNG, resolution=Resolution.SD), VideoParams(codec=Codec.H264, fps=10)):
        assert [a.video_frame(params, i, i * 100) for i in range(12)] == [b.video_frame(params, i, i * 100) for i in range(12)]


def test_read_frame_counter_rejects_other_pictures() -> None:
    with pytest.raises(ValueError):
        read_frame_counter(np.zeros((360, 640, 3), dtype=np.uint8))


# --------------------------------------------------------------------------- transcripts, chat, events


def test_transcripts_follow_the_talk_turns(meeting: MeetingContent) -> None:
    horizon = 3 * meeting.period_ms
    items = meeting.transcripts(0, horizon)
    assert items
    texts = [d["text"] for d in items]
    assert len(set(texts)) == len(texts)
    assert any(not t.isascii() for t in texts)
    covered: dict[int, set[int]] = {p.user_id: set() for p in meeting.participants}
    for d in items:
        assert set(d) >= {"user_id", "user_name", "start_ms", "end_ms", "language", "text"}
        assert d["user_name"] == meeting.participant(d["user_id"]).user_name
        assert isinstance(d["language"], int)
        for t in range(d["start_ms"], d["end_ms"], TICK_MS):
            assert meeting.is_speaking(d["user_id"], t)
            covered[d["user_id"]].add(t)
    for p in meeting.participants:
        talk = {t for t in range(0, horizon, TICK_MS) if meeting.is_speaking(p.user_id, t)}
        # every tick of speech belongs to an utterance (those ending after the horizon excepted)
        assert talk - covered[p.user_id] <= {t for t in talk if t >= horizon - 2100}
    # windows partition the utterances by end time
    split = meeting.transcripts(0, 4000) + meeting.transcripts(4000, horizon)
    assert split == items
    assert {d["language"] for d in items} >= {9, 14}


def test_chat_messages_plain_and_structured(meeting: MeetingContent) -> None:
    msgs = meeting.chats(0, 3 * meeting.period_ms)
    assert len(msgs) == 9
    assert [m["t_ms"] for m in msgs] == sorted(m["t_ms"] for m in msgs)
    structured = [m for m in msgs if m["structured"] is not None]
    assert 0 < len(structured) < len(msgs)
    for m in msgs:
        spec = meeting.participant(m["user_id"])
        assert spec.in_meeting(m["t_ms"]) and m["user_name"] == spec.user_name
    for m in structured:
        s = m["structured"]
        assert s["sender"] == {"user_id": m["user_id"], "user_name": m["user_name"]}
        assert s["chat_session"] == 1 and s["operation_type"] == 1 and s["message_id"]
    assert len({m["text"] for m in msgs}) == len(msgs)


def test_events_agree_with_the_timeline(meeting: MeetingContent) -> None:
    horizon = 3 * meeting.period_ms
    events = meeting.events(0, horizon)
    assert events == meeting.events(0, 3000) + meeting.events(3000, horizon)
    times = [f["t_ms"] for _, f in events]
    assert times == sorted(times)
    kinds = Counter(e for e, _ in events)
    for kind in (EventType.PARTICIPANT_JOIN, EventType.PARTICIPANT_LEAVE, EventType.ACTIVE_SPEAKER_CHANGE,
                 EventType.SHARING_START, EventType.SHARING_STOP, EventType.PARTICIPANT_VIDEO_ON, EventType.PARTICIPANT_VIDEO_OFF):
        assert kinds[kind] > 0, kind
    etype, first = events[0]
    assert etype == EventType.PARTICIPANT_JOIN and first["t_ms"] == 0
    initial = [p for p in meeting.participants if p.join_ms == 0]
    assert first["participants"] == [{"user_id": p.user_id, "user_name": p.user_name} for p in initial]
    late, leaver = meeting.participants[-1], meeting.participants[1]
    assert (EventType.PARTICIPANT_JOIN, late.join_ms) in [(e, f["t_ms"]) for e, f in events]
    assert (EventType.PARTICIPANT_LEAVE, leaver.leave_ms) in [(e, f["t_ms"]) for e, f in events]
    active = None
    video: dict[int, bool] = {}
    sharing = False
    for etype, f in events:
        t = f["t_ms"]
        if etype == EventType.ACTIVE_SPEAKER_CHANGE:
            assert f["user_id"] != active
            active = f["user_id"]
            assert meeting.is_speaking(active, t) and meeting.active_speaker(t).user_id == active  # type: ignore[union-attr]
            assert f["user_name"] == meeting.participant(active).user_name
        elif etype in (EventType.PARTICIPANT_VIDEO_ON, EventType.PARTICIPANT_VIDEO_OFF):
            uid = f["participants"][0]["user_id"]
            on = etype == EventType.PARTICIPANT_VIDEO_ON
            assert video.get(uid, False) != on
            video[uid] = on
            assert meeting.video_on(uid, t) == on
        elif etype == EventType.SHARING_START:
            assert not sharing and meeting.sharer(t) is not None
            sharing = True
        elif etype == EventType.SHARING_STOP:
            assert sharing and meeting.sharer(t) is None
            sharing = False
        elif etype == EventType.PARTICIPANT_LEAVE:
            assert video.get(f["participants"][0]["user_id"]) is not True, "camera off before leaving"
        for key in ("user_id",):
            if key in f:
                assert isinstance(f[key], int)


def test_contact_center_has_two_parties_with_channels() -> None:
    c = MeetingContent(seed=4, product=Product.CONTACT_CENTER)
    caller, agent = c.participants
    assert (caller.role, agent.role) == ("caller", "agent")
    channels = {c.channel_id(caller.user_id), c.channel_id(agent.user_id)}
    assert len(channels) == 2 and all(isinstance(ch, str) and ch for ch in channels)
    events = c.events(0, 2 * c.period_ms)
    assert [e for e, _ in events][:2] == [ZccEventType.CONSUMER_ANSWERED, ZccEventType.USER_ANSWERED]
    for _, f in events:
        info = f["participant_info"]
        assert info["channel_id"] in channels and info["participant_mode"] in ("caller", "callee")
    params = AudioParams(data_opt=MULTI)
    speakers = {u for t in range(0, c.period_ms, TICK_MS) for u, _, _ in c.audio_packets(params, t)}
    assert speakers == {caller.user_id, agent.user_id}
    texts = c.transcripts(0, c.period_ms)
    assert texts and all(d["channel_id"] == c.channel_id(d["user_id"]) for d in texts)
    assert c.share_frame(DeskshareParams(), 0, c.period_ms // 2) is None
    with pytest.raises(ValueError):
        MeetingContent(3).channel_id(MeetingContent(3).participants[0].user_id)
