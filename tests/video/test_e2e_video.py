"""Acceptance, end to end: simulator -> gateway (native listener, shared memory, media follower) -> consumers.

One simulated meeting with H.264 camera video (10 fps), JPEG screen share, mixed audio, transcripts
and chat, through a real :class:`~gateway.app.Gateway` with ``[video] decode = true``:

* every H.264 access unit and every JPEG image is in the shared-memory rings byte for byte, in order;
* a consumer that attaches late finds a key frame carrying SPS/PPS and decodes from it;
* ``video_format`` announces the picture size and parameter sets;
* transcripts and chat arrive in order with the times the simulator gave them, on the media clock;
* the decoded-frame ring holds pictures whose drawn frame counters are the simulator's frame numbers.
"""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from typing import Any

import av
import pytest

from gateway import client, events
from gateway.app import Gateway
from gateway.config import AudioSettings, PublishConfig, SessionsConfig
from gateway.sim.content import read_frame_counter
from gateway.video import NAL_PPS, NAL_SPS, VideoConfig, iter_nals, parse_decoded
from tests.gateway.conftest import wait_for
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

FPS = 10


def _config(shm_dir: str, prefix: str, engine: bool = True, **video: Any) -> Any:
    sessions = SessionsConfig(
        media_kinds=("audio", "video", "deskshare", "transcript", "chat"),
        media_params={"audio": {"data_opt": 1}, "video": {"codec": 7, "fps": FPS, "resolution": 1},
                      "deskshare": {"codec": 5, "fps": 1, "resolution": 1}},
    )
    config = make_config(sessions=sessions)
    return replace(config, publish=PublishConfig(shm=True, shm_dir=shm_dir, shm_prefix=prefix), video=VideoConfig(**video),
                   audio=AudioSettings(engine=engine))


def _nal_types(data: bytes) -> list[int]:
    return [data[s] & 0x1F for s, _ in iter_nals(data)]


@pytest.mark.parametrize("engine", [True, False], ids=["audio_engine", "native_sink"])
async def test_video_share_text_and_decoded_frames_end_to_end(sim_factory: Any, tmp_path: Any, prefix: str, engine: bool) -> None:
    """Both sinks the app builds: the audio engine in front of the publisher (Python path for
    video and text) and the publisher alone (the native listener writes straight into the rings)."""
    shm_dir = str(tmp_path)
    gw = Gateway(_config(shm_dir, prefix, engine, decode=True, decode_queue=64))
    await gw.start()
    sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url)
    readers: list[client.StreamReader] = []
    try:
        stream = sim.create_stream()
        sid = stream.stream_id
        await wait_for(lambda: {s.stream_id for s in client.list_streams(prefix, shm_dir)} >= {sid, sid + "/decoded"}, timeout_s=20)
        early = client.attach(sid, prefix, shm_dir)
        decoded_stream = client.attach(sid + "/decoded", prefix, shm_dir)
        readers += [early, decoded_stream]
        await wait_for(lambda: stream.sent.media_counts.get("video", 0) >= 5, timeout_s=30)
        late = client.attach(sid, prefix, shm_dir)  # joins mid-GOP
        readers.append(late)
        late_video = late.video()
        late_video.cursor = late_video.write_seq
        await wait_for(lambda: stream.sent.media_counts.get("video", 0) >= 45 and len(stream.sent.chats) >= 2
                       and len(stream.sent.transcripts) >= 2 and stream.sent.media_counts.get("deskshare", 0) >= 2, timeout_s=60)
        stream.pause()
        session = gw.streams[sid]
        await wait_for(lambda: all(session.stats()["frames"].get(k, 0) >= stream.sent.media_counts.get(k, 0)
                                   for k in ("video", "deskshare", "transcript", "chat")), timeout_s=20)
        follower_stats = gw.status()["streams"][0]["stats"]["media_follower"]
        decoded_reader = decoded_stream.video()
        await wait_for(lambda: decoded_reader.write_seq >= stream.sent.media_counts["video"], timeout_s=30)
        origin = early.origin_ms
        assert origin is not None
        video_frames, _, lost = early.video().read_since(0)
        assert lost == 0
        share_frames, _, share_lost = early.share().read_since(0)
        ring_events, _, ev_lost = early.events().read_since(0)
        late_frames, _, _ = late_video.read_since()
        decoded, _, dec_lost = decoded_reader.read_since(0)
        got_video = [(f.timestamp_ms, f.user_id, f.data.tobytes(), f.key) for f in video_frames]
        got_share = [(f.timestamp_ms, f.user_id, f.data.tobytes()) for f in share_frames]
        got_late = [(f.key, f.data.tobytes(), f.timestamp_ms) for f in late_frames]
        got_decoded = [(f.timestamp_ms, parse_decoded(f.data)) for f in decoded]
        got_decoded = [(ts, w, h, fmt, read_frame_counter(px)) for ts, (w, h, fmt, _n, px) in got_decoded]
        clock = events.clock_of(early)
        typed = [events.typed(e, clock) for e in ring_events]
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=20)
    finally:
        for r in readers:
            r.close()
        await gw.close()
    # the decoded-frame segment goes with its stream (its follower removes it, on the event loop)
    await wait_for(lambda: not [n for n in os.listdir(shm_dir) if n.startswith(prefix + ".")], timeout_s=10)

    # 1. every frame byte-exact and in order; key frames flagged (IDR units carry SPS and PPS)
    sent_video = sorted((ts, uid, p) for uid, packets in stream.sent.video.items() for ts, p in packets)
    assert [(ts, uid, p) for ts, uid, p, _ in got_video] == sent_video
    keys = [k for *_, k in got_video]
    assert keys[0] and sum(keys) >= 2
    for _, _, data, key in got_video:
        types = _nal_types(data)
        assert key == (5 in types)
        if key:
            assert NAL_SPS in types and NAL_PPS in types
    sent_share = sorted((ts, uid, p) for uid, packets in stream.sent.share.items() for ts, p in packets)
    assert share_lost == 0 and got_share == sent_share and len(sent_share) >= 2
    assert all(p[:2] == b"\xff\xd8" for _, _, p in got_share)

    # 2. the late consumer: skip to the first key frame, decode everything from there
    first_key = next(i for i, (key, _, _) in enumerate(got_late) if key)
    ctx: Any = av.CodecContext.create("h264", "r")
    counters = []
    for _, data, _ in got_late[first_key:]:
        for frame in ctx.decode(av.Packet(data)):
            counters.append(read_frame_counter(frame.to_ndarray(format="rgb24")))
    started = stream.started_ms
    expected = [(ts - started) * FPS // 1000 for _, _, ts in got_late[first_key:]]
    assert counters == expected and len(counters) >= 10

    # 3. format announced with the parameter sets in force
    formats = [e for e in typed if isinstance(e, events.VideoFormat) and e.kind == "video"]
    assert formats and (formats[0].width, formats[0].height) == (640, 360) and formats[0].codec == "H264"
    sps = base64.b64decode(formats[-1].sps)
    key_data = next(d for _, _, d, k in got_video if k)
    assert sps in key_data and base64.b64decode(formats[-1].pps) in key_data
    share_formats = [e for e in typed if isinstance(e, events.VideoFormat) and e.kind == "share"]
    assert share_formats and (share_formats[0].width, share_formats[0].height) == (640, 360)

    # 4. transcripts and chat in order, with the simulator's times, on the media clock
    assert ev_lost == 0
    transcripts = [e for e in typed if isinstance(e, events.Transcript)]
    sent_tr = stream.sent.transcripts
    assert [t.text for t in transcripts] == [t["text"] for t in sent_tr]
    assert [t.timestamp for t in transcripts] == [started + t["start_ms"] for t in sent_tr]
    if engine:  # the Python path keeps Zoom's start/end times and language (the native path stores the text)
        assert [(t.start_time, t.end_time, t.language) for t in transcripts] == [
            (started + t["start_ms"], started + t["end_ms"], t["language"]) for t in sent_tr]
    assert all(t.end_index == (t.end_time - origin) * 16 for t in transcripts if t.end_time is not None)
    assert clock is not None and clock.rate == 16000
    for t in transcripts:
        assert t.sample_index == (t.timestamp - origin) * 16000 // 1000 and t.media_ms == t.timestamp - origin
    chats = [e for e in typed if isinstance(e, events.Chat)]
    assert [c.text if c.structured is None else c.structured["text"] for c in chats] == [c["text"] for c in stream.sent.chats]
    assert [c.structured for c in chats] == [c["structured"] for c in stream.sent.chats]
    assert [c.timestamp for c in chats] == [started + c["t_ms"] for c in stream.sent.chats]
    seqs = [e.seq for e in typed]
    assert seqs == sorted(seqs)
    kinds = {e.type for e in typed}
    assert {"participant_join", "active_speaker", "video_on"} <= kinds

    assert follower_stats["video_frames"] > 0 and follower_stats["video_key_frames"] >= 1 and follower_stats["video_follower_lost"] == 0

    # 5. decoded pictures carry the simulator's frame numbers
    assert dec_lost == 0 and len(got_decoded) == len(sent_video)
    for ts, w, h, fmt, counter in got_decoded:
        assert (w, h, fmt) == (640, 360, "rgb24")
        assert counter == (ts - started) * FPS // 1000
