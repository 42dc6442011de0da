"""Typed event records on the meeting's media clock: transcripts, chat, participants, speakers, state.

Every record a consumer reads from a stream's event ring (``client.attach(id).events()``) can be
turned into one of the dataclasses here with :func:`typed`. Each carries ``timestamp`` (RTMS ms),
``media_ms`` (ms after the stream's media-clock origin, ``origin_ms`` in the segment header) and
``sample_index`` (the audio frame index at that instant, the index the PCM rings use), so a
transcript or a speaker change lines up with audio samples: ``pcm[sample_index - start]``.

Producer side: :func:`enrich` adds ``media_ms``/``sample_index`` (and for transcripts
``start_index``/``end_index``) to the JSON records the gateway publishes; records written by the
native path (transcript and chat text) get them on the reader side from the header timestamp.

Record types (``type`` field): ``transcript``, ``chat``, ``participant_join``/``participant_leave``,
``active_speaker``, ``sharing_start``/``sharing_stop``, ``video_on``/``video_off``,
``session_state``, ``stream_state``, ``video_format`` and anything else the session emits
(:class:`Event`, with every field kept in ``fields``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ActiveSpeaker",
    "Chat",
    "Event",
    "MediaClock",
    "Participants",
    "Sharing",
    "StateChange",
    "Transcript",
    "VideoFormat",
    "VideoState",
    "clock_of",
    "enrich",
    "typed",
]


@dataclass(frozen=True, slots=True)
class MediaClock:
    """Maps RTMS millisecond timestamps to the stream's audio frame indices (docs/SHM.md 4)."""

    origin_ms: int
    rate: int

    def media_ms(self, timestamp_ms: int) -> int:
        return timestamp_ms - self.origin_ms

    def sample_index(self, timestamp_ms: int) -> int:
        """Frame index of ``timestamp_ms`` (negative before the origin)."""
        return (timestamp_ms - self.origin_ms) * self.rate // 1000


@dataclass(frozen=True, slots=True)
class Event:
    """Any event record: its type, times on the media clock, and every field it had."""

    type: str
    timestamp: int
    media_ms: int | None
    sample_index: int | None
    user_id: int
    seq: int
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transcript(Event):
    text: str = ""
    user_name: str | None = None
    #: utterance start and end (RTMS ms, as Zoom sent them; None when the native path stored text only).
    start_time: int | None = None
    end_time: int | None = None
    start_index: int | None = None
    end_index: int | None = None
    language: int | None = None


@dataclass(frozen=True, slots=True)
class Chat(Event):
    text: str = ""
    user_name: str | None = None
    #: the structured form (PROTOCOL.md 4.5: chat_session, operation_type, message_id, sender, receiver, text), if sent.
    structured: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Participants(Event):
    """participant_join / participant_leave: ``participants`` is a list of (user_id, user_name)."""

    joined: bool = True
    participants: tuple[tuple[int, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class ActiveSpeaker(Event):
    user_name: str | None = None


@dataclass(frozen=True, slots=True)
class Sharing(Event):
    started: bool = True


@dataclass(frozen=True, slots=True)
class VideoState(Event):
    on: bool = True
    participants: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class StateChange(Event):
    """session_state / stream_state: ``state`` name and ``reason`` code."""

    state: str = ""
    reason: int | None = None


@dataclass(frozen=True, slots=True)
class VideoFormat(Event):
    """video_format: a kind's picture size became known or changed; H.264 parameter sets (base64)."""

    kind: str = "video"
    codec: str = ""
    width: int = 0
    height: int = 0
    sps: str = ""
    pps: str = ""


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


def enrich(record: dict[str, Any], clock: MediaClock | None) -> dict[str, Any]:
    """``record`` with ``media_ms``/``sample_index`` (and transcript start/end indices) added in place."""
    if clock is None:
        return record
    ts = record.get("timestamp")
    if isinstance(ts, int) and not isinstance(ts, bool) and ts > 0:
        record.setdefault("media_ms", clock.media_ms(ts))
        record.setdefault("sample_index", clock.sample_index(ts))
    for key, out in (("start_time", "start_index"), ("end_time", "end_index")):
        t = record.get(key)
        if isinstance(t, int) and not isinstance(t, bool) and t > 0:
            record.setdefault(out, clock.sample_index(t))
    return record


def clock_of(stream: Any) -> MediaClock | None:
    """The media clock of an attached stream (``gateway.client.StreamReader``); None before its origin is set."""
    origin = stream.origin_ms
    rate = getattr(stream, "audio_rate", 0)
    return MediaClock(origin, rate) if origin is not None and rate else None


def _structured_chat(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def typed(record: dict[str, Any], clock: MediaClock | None = None) -> Event:
    """One event-ring record (a dict from ``EventReader.read_since``) as a typed :class:`Event`."""
    rec = enrich(dict(record), clock)
    kind = str(rec.get("type", "event"))
    ts = _int(rec.get("timestamp"))
    base: dict[str, Any] = {
        "type": kind,
        "timestamp": ts,
        "media_ms": rec.get("media_ms"),
        "sample_index": rec.get("sample_index"),
        "user_id": _int(rec.get("user_id")),
        "seq": _int(rec.get("seq")),
        "fields": rec,
    }
    if kind == "transcript":
        lang = rec.get("language")
        return Transcript(**base, text=str(rec.get("text", "")), user_name=rec.get("user_name"),
                          start_time=rec.get("start_time"), end_time=rec.get("end_time"),
                          start_index=rec.get("start_index"), end_index=rec.get("end_index"),
                          language=lang if isinstance(lang, int) else None)
    if kind == "chat":
        text = str(rec.get("text", ""))
        return Chat(**base, text=text, user_name=rec.get("user_name"), structured=_structured_chat(text))
    if kind in ("participant_join", "participant_leave"):
        people = tuple((_int(p.get("user_id")), p.get("user_name")) for p in rec.get("participants") or () if isinstance(p, dict))
        return Participants(**base, joined=kind == "participant_join", participants=people)
    if kind == "active_speaker":
        return ActiveSpeaker(**base, user_name=rec.get("user_name"))
    if kind in ("sharing_start", "sharing_stop"):
        return Sharing(**base, started=kind == "sharing_start")
    if kind in ("video_on", "video_off"):
        ids = tuple(_int(p.get("user_id")) for p in rec.get("participants") or () if isinstance(p, dict))
        return VideoState(**base, on=kind == "video_on", participants=ids)
    if kind in ("session_state", "stream_state"):
        reason = rec.get("reason", rec.get("stop_reason"))
        return StateChange(**base, state=str(rec.get("state", "")), reason=reason if isinstance(reason, int) else None)
    if kind == "video_format":
        return VideoFormat(**base, kind=str(rec.get("kind", "video")), codec=str(rec.get("codec", "")),
                           width=_int(rec.get("width")), height=_int(rec.get("height")),
                           sps=str(rec.get("sps", "")), pps=str(rec.get("pps", "")))
    return Event(**base)
