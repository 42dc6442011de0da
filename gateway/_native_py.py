"""Pure-Python twin of ``gateway._native.MediaListener``: the executable specification.

The native listener must behave exactly like this one (same sink calls with the same bytes, same
drop reasons, same counters); the test suite in ``tests/native/`` runs against both, and property
tests compare them message by message. The native listener's slow path (anything its scanner does
not recognise) calls :func:`classify_media` from here, so the two can never drift on odd input.

Serves :class:`gateway.sink.MediaSink` objects only (a ``NativeSink`` needs the native listener).
Selected with ``GATEWAY_PURE=1`` (see :mod:`gateway.listener`).
"""

from __future__ import annotations

import binascii
import logging
import re
import time
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport

from . import protocol
from .protocol import MsgType

log = logging.getLogger(__name__)

# Kinds in msg_type order (msg_type - 14); "unknown" when a drop happens before the type is known.
KINDS = ("audio", "video", "share", "transcript", "chat")
KIND_UNKNOWN = "unknown"
# Drop reasons, in the numbering of _native/sink.pxi (DROP_BAD_JSON = 1 ...).
DROP_REASONS = ("bad_json", "bad_base64", "too_large", "no_room", "bad_field")

_FIRST_MEDIA = int(MsgType.MEDIA_DATA_AUDIO)
_FIRST_TEXT = int(MsgType.MEDIA_DATA_TRANSCRIPT)
_LAST_MEDIA = int(MsgType.MEDIA_DATA_CHAT)
_KEEP_ALIVE_REQ = int(MsgType.KEEP_ALIVE_REQ)
_MAX_MSG_TYPE = int(max(MsgType))
_UINT32_MAX = 0xFFFFFFFF
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
# Standard alphabet, padded, length a multiple of 4 (stricter than base64.b64decode(validate=True),
# which accepts "AAAA====" and "QUJD="). Non-canonical trailing bits are accepted, as binascii does.
_B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_OPTIONAL_STR = ("user_name", "channel_id")
_OPTIONAL_INT = ("length", "start_time", "end_time", "language", "attribute")
_DEFAULT_MAX_FRAME = 8 * 1024 * 1024


class MediaDrop(Exception):
    """A media message is dropped; ``reason`` is one of :data:`DROP_REASONS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def b64decode_media(data: str) -> bytes:
    """Strict standard base64 (padded, length % 4 == 0); raises ``MediaDrop("bad_base64")``."""
    if not _B64_RE.fullmatch(data):
        raise MediaDrop("bad_base64")
    return binascii.a2b_base64(data)


def classify_media(doc: dict[str, Any], msg_type: int) -> tuple[int, str | None, int, Any, int | None]:
    """Validate a media message (msg 14-18) and return ``(user_id, user_name, timestamp, data, length)``.

    The order of checks is part of the contract (the native scanner reproduces it): every field's
    type first (``bad_field``), then the base64 (``bad_base64``), then ``length`` against the
    decoded size (``bad_field``, checked by the caller after decoding). ``data`` is returned as the
    raw JSON value (base64 str for audio/video/share; str or dict for transcript/chat).
    """
    content = doc.get("content")
    if not isinstance(content, dict):
        raise MediaDrop("bad_field")
    data = content.get("data")
    if msg_type >= _FIRST_TEXT:
        if not isinstance(data, (str, dict)):
            raise MediaDrop("bad_field")
    elif not isinstance(data, str):
        raise MediaDrop("bad_field")
    timestamp = content.get("timestamp")
    if not _is_int(timestamp) or not _INT64_MIN <= timestamp <= _INT64_MAX:
        raise MediaDrop("bad_field")
    raw_uid = content.get("user_id")
    if raw_uid is None:
        user_id = 0
    elif _is_int(raw_uid):
        user_id = raw_uid
    elif isinstance(raw_uid, str) and raw_uid.isascii() and raw_uid.isdigit():
        user_id = int(raw_uid)
    else:
        raise MediaDrop("bad_field")
    if not 0 <= user_id <= _UINT32_MAX:
        raise MediaDrop("bad_field")
    for key in _OPTIONAL_STR:
        value = content.get(key)
        if value is not None and not isinstance(value, str):
            raise MediaDrop("bad_field")
    for key in _OPTIONAL_INT:
        value = content.get(key)
        if value is not None and not _is_int(value):
            raise MediaDrop("bad_field")
    return user_id, content.get("user_name"), timestamp, data, content.get("length")


class MediaListener(WSListener):  # type: ignore[misc]
    """Media-socket listener: media to the sink, keep-alives answered inline, the rest to control.

    Never raises out of a callback and never closes the socket because of a bad message: every
    problem is a counted drop (see :meth:`stats`).
    """

    def __init__(self, sink: Any, control: Any, *, max_frame_bytes: int = _DEFAULT_MAX_FRAME) -> None:
        super().__init__()
        if not hasattr(sink, "on_audio"):
            raise TypeError(
                "the pure-Python MediaListener serves gateway.sink.MediaSink objects only; "
                "a NativeSink needs the native listener (unset GATEWAY_PURE)"
            )
        self.sink = sink
        self.control = control
        self.max_frame_bytes = int(max_frame_bytes)
        self.transport: Any = None
        self.frames = 0
        self.media_frames = 0
        self.bytes = 0
        self.keepalives_answered = 0
        self.unknown_types = 0
        self.callback_errors = 0
        self.last_rx_ns = 0
        self.drops_by_reason: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._fragments: bytearray | None = None
        self._fragments_too_large = False
        self._fragment_bytes = 0
        self._deliver_binary = (sink.on_audio, sink.on_video, sink.on_share)

    # ------------------------------------------------------------------ picows callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._call_control("on_connected", transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._call_control("on_disconnected")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type == WSMsgType.TEXT or msg_type == WSMsgType.BINARY:
            if frame.fin:
                self._on_message(frame.get_payload_as_memoryview())
            else:
                self._fragments = bytearray()
                self._fragment_bytes = 0
                self._fragments_too_large = False
                self._add_fragment(frame)
        elif msg_type == WSMsgType.CONTINUATION:
            if self._fragments is None:
                return  # stray continuation: nothing to continue
            self._add_fragment(frame)
            if frame.fin:
                payload, self._fragments = self._fragments, None
                if self._fragments_too_large:
                    self._count_frame(self._fragment_bytes)
                    self._drop(KIND_UNKNOWN, "too_large")
                else:
                    self._on_message(payload)
        elif msg_type == WSMsgType.PING or msg_type == WSMsgType.CLOSE:
            # Replies go to the connected transport (the same object picows passes here).
            reply_to = self.transport if self.transport is not None else transport
            if msg_type == WSMsgType.PING:
                reply_to.send_pong(frame.get_payload_as_bytes())  # only reached with auto-pong off
            else:
                reply_to.send_close(frame.get_close_code(), frame.get_close_message())
                reply_to.disconnect()

    def _add_fragment(self, frame: WSFrame) -> None:
        """Append a fragment; past ``max_frame_bytes`` only the size is kept (the message is dropped)."""
        assert self._fragments is not None
        self._fragment_bytes += frame.payload_size
        if self._fragment_bytes > self.max_frame_bytes:
            self._fragments_too_large = True
            self._fragments.clear()
        else:
            self._fragments += frame.get_payload_as_memoryview()

    # ------------------------------------------------------------------ public

    def feed(self, payload: bytes, binary: bool = False) -> None:
        """Test hook: process one complete message exactly as ``on_ws_frame`` would."""
        self._on_message(payload)

    def stats(self) -> dict[str, Any]:
        """Counters, for metrics and tests (a fresh dict)."""
        return {
            "frames": self.frames,
            "media_frames": self.media_frames,
            "bytes": self.bytes,
            "keepalives_answered": self.keepalives_answered,
            "unknown_types": self.unknown_types,
            "callback_errors": self.callback_errors,
            "drops": sum(self.drops_by_reason.values()),
            "drops_by_reason": dict(self.drops_by_reason),
            "last_rx_ns": self.last_rx_ns,
        }

    # ------------------------------------------------------------------ message path

    def _count_frame(self, size: int) -> None:
        self.frames += 1
        self.bytes += size
        self.last_rx_ns = time.monotonic_ns()

    def _drop(self, kind: str, reason: str) -> None:
        self.drops_by_reason[reason] += 1
        try:
            self.sink.on_drop(kind, reason)
        except Exception:
            self.callback_errors += 1
            log.exception("sink.on_drop raised")

    def _on_message(self, payload: bytes | bytearray | memoryview) -> None:
        size = len(payload)
        self._count_frame(size)
        if size > self.max_frame_bytes:
            self._drop(KIND_UNKNOWN, "too_large")
            return
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._drop(KIND_UNKNOWN, "bad_json")
            return
        if not isinstance(doc, dict):
            self._drop(KIND_UNKNOWN, "bad_json")
            return
        msg_type = doc.get("msg_type")
        if not _is_int(msg_type):
            self._drop(KIND_UNKNOWN, "bad_field")
            return
        if _FIRST_MEDIA <= msg_type <= _LAST_MEDIA:
            self._on_media(doc, msg_type)
        elif msg_type == _KEEP_ALIVE_REQ:
            self._answer_keep_alive(doc)
            self._call_control("on_control", doc)
        elif 0 < msg_type <= _MAX_MSG_TYPE:
            self._call_control("on_control", doc)
        else:
            self.unknown_types += 1

    def _on_media(self, doc: dict[str, Any], msg_type: int) -> None:
        kind_index = msg_type - _FIRST_MEDIA
        kind = KINDS[kind_index]
        try:
            user_id, user_name, timestamp, data, length = classify_media(doc, msg_type)
            if msg_type < _FIRST_TEXT:
                decoded = b64decode_media(data)
                if length is not None and length != len(decoded):
                    raise MediaDrop("bad_field")
            else:
                message = protocol.parse_media(doc)
        except MediaDrop as drop:
            self._drop(kind, drop.reason)
            return
        except protocol.ProtocolError:  # parse_media disagreeing with classify_media: still a drop
            self._drop(kind, "bad_field")
            return
        self.media_frames += 1
        try:
            if msg_type < _FIRST_TEXT:
                self._deliver_binary[kind_index](user_id, user_name, timestamp, memoryview(decoded))
            elif msg_type == _FIRST_TEXT:
                self.sink.on_transcript(message)
            else:
                self.sink.on_chat(message)
        except Exception:
            self.callback_errors += 1
            log.exception("media sink raised on %s", kind)

    def _answer_keep_alive(self, doc: dict[str, Any]) -> None:
        transport = self.transport
        if transport is None:
            return
        try:
            transport.send(WSMsgType.TEXT, protocol.encode(protocol.build_keep_alive_response(doc)))
        except Exception:
            self.callback_errors += 1
            log.exception("keep-alive reply failed")
            return
        self.keepalives_answered += 1

    def _call_control(self, method: str, *args: Any) -> None:
        try:
            getattr(self.control, method)(*args)
        except Exception:
            self.callback_errors += 1
            log.exception("control.%s raised", method)
