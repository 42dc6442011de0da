"""A media sink that only counts: frames and bytes per kind and per participant, transcripts, drops.

It is the default sink when no publisher is configured, and the demo's source of truth for "did
everything arrive": with ``checksum=True`` it keeps a running CRC-32 of each participant's payloads
per kind, which the demo compares with the simulator's record of what it sent.
"""

from __future__ import annotations

import zlib
from typing import Any

from .protocol import MediaMessage

KINDS = ("audio", "video", "deskshare", "transcript", "chat")


class StatsSink:
    """Counts one stream's media (implements :class:`gateway.sink.MediaSink`)."""

    __slots__ = ("_audio", "_share", "_video", "bytes", "checksum", "crc", "drops", "frames", "media_params", "names", "texts", "transcripts", "users")

    def __init__(self, *, checksum: bool = False, keep_texts: bool = False) -> None:
        self.checksum = checksum
        self.frames: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.bytes: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.drops: dict[str, int] = {}
        #: kind -> user_id -> [frames, bytes]
        self.users: dict[str, dict[int, list[int]]] = {kind: {} for kind in KINDS}
        self.names: dict[int, str] = {}
        #: (kind, user_id) -> running CRC-32 of the payloads in arrival order (when ``checksum``).
        self.crc: dict[tuple[str, int], int] = {}
        self.transcripts = 0
        self.texts: list[str] | None = [] if keep_texts else None
        self.media_params: dict[str, Any] = {}
        self._audio = self.users["audio"]
        self._video = self.users["video"]
        self._share = self.users["deskshare"]

    def _count(self, kind: str, table: dict[int, list[int]], user_id: int, user_name: str | None, data: memoryview) -> None:
        n = len(data)
        self.frames[kind] += 1
        self.bytes[kind] += n
        entry = table.get(user_id)
        if entry is None:
            entry = table[user_id] = [0, 0]
            if user_name:
                self.names[user_id] = user_name
        entry[0] += 1
        entry[1] += n
        if self.checksum:
            key = (kind, user_id)
            self.crc[key] = zlib.crc32(data, self.crc.get(key, 0))

    def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self._count("audio", self._audio, user_id, user_name, data)

    def on_video(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self._count("video", self._video, user_id, user_name, data)

    def on_share(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        self._count("deskshare", self._share, user_id, user_name, data)

    def _text(self, kind: str, msg: MediaMessage) -> str:
        text = msg.data if isinstance(msg.data, str) else bytes(msg.data).decode("utf-8", "replace")
        self._count(kind, self.users[kind], msg.user_id, msg.user_name, memoryview(text.encode()))
        return text

    def on_transcript(self, msg: MediaMessage) -> None:
        self.transcripts += 1
        text = self._text("transcript", msg)
        if self.texts is not None:
            self.texts.append(text)

    def on_chat(self, msg: MediaMessage) -> None:
        self._text("chat", msg)

    def on_drop(self, kind: str, reason: str) -> None:
        self.drops[kind] = self.drops.get(kind, 0) + 1

    def on_media_params(self, kind: str, params: Any) -> None:
        self.media_params[kind] = params

    @property
    def participants(self) -> int:
        """Distinct non-mixed participants seen on any kind (user id 0 is Zoom's mixed stream)."""
        ids: set[int] = set()
        for table in self.users.values():
            ids.update(uid for uid in table if uid != 0)
        return len(ids)

    def stats(self) -> dict[str, Any]:
        return {
            "frames": dict(self.frames),
            "bytes": dict(self.bytes),
            "sink_drops": dict(self.drops),  # the listener's own count is the exported one
            "transcripts": self.transcripts,
            "participants": self.participants,
        }

    def close(self) -> None:
        """Nothing to release; present so the app can close every sink the same way."""
