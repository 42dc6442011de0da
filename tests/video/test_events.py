"""Typed event records on the media clock (gateway.events) and ``gateway tap --jsonl`` carrying them."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway import client, events, tap
from gateway.protocol import AudioParams, MediaMessage
from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher

ORIGIN = 1_738_392_033_000


def test_clock_maps_timestamps_to_sample_indices() -> None:
    clock = events.MediaClock(ORIGIN, 16000)
    assert clock.sample_index(ORIGIN + 1500) == 24000 and clock.media_ms(ORIGIN + 1500) == 1500
    assert clock.sample_index(ORIGIN - 20) == -320
    rec = events.enrich({"type": "transcript", "timestamp": ORIGIN + 100, "start_time": ORIGIN + 100, "end_time": ORIGIN + 900}, clock)
    assert (rec["media_ms"], rec["sample_index"], rec["start_index"], rec["end_index"]) == (100, 1600, 1600, 14400)
    assert events.enrich({"type": "x"}, None) == {"type": "x"}


def test_every_record_type_becomes_its_class() -> None:
    clock = events.MediaClock(ORIGIN, 8000)
    ts = ORIGIN + 250
    cases: list[tuple[dict[str, Any], type, dict[str, Any]]] = [
        ({"type": "transcript", "text": "hi", "user_id": 5, "user_name": "A", "start_time": ts, "end_time": ts + 500, "language": 9},
         events.Transcript, {"text": "hi", "start_index": 2000, "end_index": 6000, "language": 9, "user_id": 5}),
        ({"type": "chat", "text": "plain"}, events.Chat, {"text": "plain", "structured": None}),
        ({"type": "chat", "text": json.dumps({"message_id": "m1", "text": "x"})}, events.Chat, {"structured": {"message_id": "m1", "text": "x"}}),
        ({"type": "participant_join", "participants": [{"user_id": 1, "user_name": "A"}, {"user_id": "2"}]}, events.Participants,
         {"joined": True, "participants": ((1, "A"), (2, None))}),
        ({"type": "participant_leave", "participants": [{"user_id": 1}]}, events.Participants, {"joined": False}),
        ({"type": "active_speaker", "user_id": 3, "user_name": "C"}, events.ActiveSpeaker, {"user_id": 3, "user_name": "C"}),
        ({"type": "sharing_start", "user_id": 3}, events.Sharing, {"started": True}),
        ({"type": "sharing_stop"}, events.Sharing, {"started": False}),
        ({"type": "video_off", "participants": [{"user_id": 4}]}, events.VideoState, {"on": False, "participants": (4,)}),
        ({"type": "session_state", "state": "STOPPED", "stop_reason": 6}, events.StateChange, {"state": "STOPPED", "reason": 6}),
        ({"type": "stream_state", "state": "ACTIVE", "reason": 0}, events.StateChange, {"state": "ACTIVE", "reason": 0}),
        ({"type": "video_format", "kind": "share", "codec": "JPG", "width": 640, "height": 360}, events.VideoFormat,
         {"kind": "share", "width": 640, "height": 360}),
        ({"type": "reconnected", "scope": "media"}, events.Event, {"type": "reconnected"}),
    ]
    for rec, cls, expect in cases:
        ev = events.typed({**rec, "timestamp": ts, "seq": 7}, clock)
        assert type(ev) is cls, rec
        assert ev.timestamp == ts and ev.media_ms == 250 and ev.sample_index == 2000 and ev.seq == 7
        for key, value in expect.items():
            assert getattr(ev, key) == value, (rec, key)
        assert ev.fields["type"] == rec["type"]


def test_native_text_records_and_json_events_share_the_clock(prefix: str) -> None:
    """Transcript text stored by the native path and JSON events read back typed, aligned to audio."""
    pub = ShmPublisher("s-events", config=ShmConfig(prefix=prefix), audio=AudioParams(), origin_ms=ORIGIN)
    try:
        pub.on_transcript(MediaMessage(msg_type=17, user_id=9, user_name="N", timestamp=ORIGIN + 2000, data="hello",
                                       start_time=ORIGIN + 2000, end_time=ORIGIN + 2600, language=9))
        pub.publish_event({"type": "active_speaker", "user_id": 9, "timestamp": ORIGIN + 1990})
        with client.StreamReader(pub.path) as reader:
            clock = events.clock_of(reader)
            recs, _, _ = reader.events().read_since(0)
        typed = [events.typed(r, clock) for r in recs]
    finally:
        pub.close()
    assert clock == events.MediaClock(ORIGIN, 16000)
    tr, sp = typed
    assert isinstance(tr, events.Transcript) and (tr.sample_index, tr.start_index, tr.end_index) == (32000, 32000, 41600)
    assert isinstance(sp, events.ActiveSpeaker) and sp.sample_index == 31840


def test_tap_jsonl_lines_carry_media_clock_fields(prefix: str, tmp_path: Any) -> None:
    out = tmp_path / "events.jsonl"
    with ShmDirectory(ShmConfig(prefix=prefix)) as directory:
        pub = ShmPublisher("s-tap", directory, audio=AudioParams(), origin_ms=ORIGIN)
        pub.publish_event({"type": "chat", "text": "one", "timestamp": ORIGIN + 40, "user_id": 2})
        pub.publish_event({"type": "chat", "text": "two", "timestamp": ORIGIN + 80, "user_id": 2})
        parser = argparse.ArgumentParser()
        tap.add_arguments(parser)
        args = parser.parse_args(["--prefix", prefix, "--stream", "s-tap", "--jsonl", str(out), "--seconds", "0.2"])
        assert tap.run(args) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(d["text"], d["media_ms"], d["sample_index"]) for d in lines] == [("one", 40, 640), ("two", 80, 1280)]
