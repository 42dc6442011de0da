"""The interface between a stream's media sockets and everything downstream.

A media listener (native ``gateway._native.MediaListener`` or the pure-Python one) parses each
media frame and calls one method of a :class:`MediaSink`. Audio, video and share payloads are
*borrowed* ``memoryview`` objects valid only during the call: copy what you keep. Transcripts
and chat are low-rate and arrive as decoded :class:`~gateway.protocol.MediaMessage` objects.
Control messages never go through the sink; they go to the session controller.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .protocol import MediaMessage


@runtime_checkable
class MediaSink(Protocol):
    """Receives one stream's media on the event-loop thread. Must never block."""

    def on_audio(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        """One audio packet (``timestamp`` in ms; ``user_id`` 0 = Zoom's mixed stream)."""

    def on_video(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        """One video message (a JPEG/PNG image, or an H.264 Annex-B chunk)."""

    def on_share(self, user_id: int, user_name: str | None, timestamp: int, data: memoryview) -> None:
        """One screen-share message (same shape as video)."""

    def on_transcript(self, msg: MediaMessage) -> None:
        """One transcript utterance (``msg.data`` is the text)."""

    def on_chat(self, msg: MediaMessage) -> None:
        """One chat message (``msg.data`` is text, or JSON text for the structured form)."""

    def on_drop(self, kind: str, reason: str) -> None:
        """A media message was dropped (bad base64, malformed JSON, oversized...): count it."""
