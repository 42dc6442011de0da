"""The RTMS V1 wire vocabulary, shared by the gateway and the simulator.

Everything that names a ``msg_type``, an enum integer, a status code, a field or a signature
lives here and nowhere else (see ``../shared/rtms/PROTOCOL.md``). Builders return plain dicts
ready for :func:`encode`; decoders accept every documented variant and raise
:class:`~gateway.errors.ProtocolError` naming the field on bad input.

The native parser (``_native/``) reads the media messages (14-18) itself; its pure-Python twin
and everything else go through :func:`decode` here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import IntEnum, IntFlag, StrEnum
from typing import Any

import orjson

from .errors import ParseError, ProtocolError, UnknownMessageType

PROTOCOL_VERSION = 1
KEEP_ALIVE_INTERVAL_S = 10.0
KEEP_ALIVE_MAX_MISSED = 3
SIGNALING_RECONNECT_WINDOW_S = 60.0
#: Media reconnection window by profile: the 2026 docs say 65 s, the 2025 docs 30 s (CONFLICT).
MEDIA_RECONNECT_WINDOW_S = {"2026": 65.0, "2025": 30.0}
#: Zoom's documented client backoff for reconnects: 3, 6, 12, 24 s, capped at 30 s.
RECONNECT_BACKOFF_S = (3.0, 6.0, 12.0, 24.0, 30.0)
STARTUP_AUDIO_BUFFER_S = 60.0
MAX_AUDIO_SEND_RATE_MS = 1000
MAX_MULTI_STREAM_SPEAKERS = 3
MAX_FPS = 30
WEBHOOK_TIMESTAMP_TOLERANCE_S = 300


# --------------------------------------------------------------------------- enums


class MsgType(IntEnum):
    """RTMS_MESSAGE_TYPE (PROTOCOL.md 2.2)."""

    UNDEFINED = 0
    SIGNALING_HAND_SHAKE_REQ = 1
    SIGNALING_HAND_SHAKE_RESP = 2
    DATA_HAND_SHAKE_REQ = 3
    DATA_HAND_SHAKE_RESP = 4
    EVENT_SUBSCRIPTION = 5
    EVENT_UPDATE = 6
    CLIENT_READY_ACK = 7
    STREAM_STATE_UPDATE = 8
    SESSION_STATE_UPDATE = 9
    SESSION_STATE_REQ = 10
    SESSION_STATE_RESP = 11
    KEEP_ALIVE_REQ = 12
    KEEP_ALIVE_RESP = 13
    MEDIA_DATA_AUDIO = 14
    MEDIA_DATA_VIDEO = 15
    MEDIA_DATA_SHARE = 16
    MEDIA_DATA_TRANSCRIPT = 17
    MEDIA_DATA_CHAT = 18
    STREAM_STATE_REQ = 19
    STREAM_STATE_RESP = 20
    STREAM_CLOSE_REQ = 21
    STREAM_CLOSE_RESP = 22
    META_DATA_AUDIO = 23
    META_DATA_VIDEO = 24
    META_DATA_SHARE = 25
    META_DATA_TRANSCRIPT = 26
    META_DATA_CHAT = 27
    VIDEO_SUBSCRIPTION_REQ = 28
    VIDEO_SUBSCRIPTION_RESP = 29


MEDIA_MSG_TYPES = frozenset(range(14, 19))


class EventType(IntEnum):
    """RTMS_EVENT_TYPE for meetings, webinars and Video SDK (PROTOCOL.md 5.2)."""

    UNDEFINED = 0
    FIRST_PACKET_TIMESTAMP = 1
    ACTIVE_SPEAKER_CHANGE = 2
    PARTICIPANT_JOIN = 3
    PARTICIPANT_LEAVE = 4
    SHARING_START = 5
    SHARING_STOP = 6
    MEDIA_CONNECTION_INTERRUPTED = 7
    PARTICIPANT_VIDEO_ON = 8
    PARTICIPANT_VIDEO_OFF = 9
    CHAT_GROUP_CREATE = 10
    CHAT_GROUP_DELETE = 11
    CHAT_GROUP_MEMBERS_ADD = 12
    CHAT_GROUP_MEMBERS_DELETE = 13
    CHAT_GROUP_MEMBER_STATUS_UPDATE = 14


#: Events the server always sends; a client must never subscribe to them.
AUTOMATIC_EVENTS = frozenset({EventType.FIRST_PACKET_TIMESTAMP, EventType.MEDIA_CONNECTION_INTERRUPTED})


class ZccEventType(IntEnum):
    """RTMS_ZCC_VOICE_EVENT_TYPE (PROTOCOL.md 5.14); overlaps EventType 8-14 by number."""

    UNDEFINED = 0
    CONSUMER_ANSWERED = 8
    CONSUMER_END = 9
    USER_ANSWERED = 10
    USER_END = 11
    USER_HOLD = 12
    USER_UNHOLD = 13
    MONITOR_STARTED = 14
    MONITOR_TRANSITIONED = 15
    MONITOR_ENDED = 16
    TAKEOVER_STARTED = 17
    TRANSFER_INITIATED = 18
    TRANSFER_CANCELED = 19
    TRANSFER_ACCEPTED = 20
    TRANSFER_COMPLETED = 21
    TRANSFER_REJECTED = 22
    TRANSFER_TIMEOUT = 23
    CONFERENCE_CANCELED = 24
    CONFERENCE_PARTICIPANT_CANCELED = 25
    CONFERENCE_PARTICIPANT_INVITED = 26
    CONFERENCE_PARTICIPANT_REJECTED = 27
    CONFERENCE_PARTICIPANT_TIMEOUT = 28
    CONFERENCE_PARTICIPANT_LEFT = 29


class StatusB(IntEnum):
    """RTMS_STATUS_CODE list B: the 2026 numbering (PROTOCOL.md 5.3)."""

    STATUS_OK = 0
    STATUS_INVALID_MESSAGE_TYPE = 1
    STATUS_INVALID_RTMS_STREAM_ID = 2
    STATUS_INVALID_SIGNATURE = 3
    STATUS_INVALID_PAYLOAD = 4
    STATUS_INVALID_EVENTS = 5
    STATUS_INVALID_EVENT_TYPE = 6
    STATUS_INVALID_MEDIA_TYPE = 7
    STATUS_DUPLICATE_SIGNAL_REQUEST = 8
    STATUS_MEDIA_TYPE_AUDIO_NOT_SUPPORT = 9
    STATUS_MEDIA_TYPE_VIDEO_NOT_SUPPORT = 10
    STATUS_MEDIA_TYPE_DESKSHARE_NOT_SUPPORT = 11
    STATUS_MEDIA_TYPE_TRANSCRIPT_NOT_SUPPORT = 12
    STATUS_MEDIA_TYPE_CHAT_NOT_SUPPORT = 13
    STATUS_MEDIA_TYPE_INVALID_VALUE = 14
    STATUS_MEDIA_DATA_ALL_CONNECTION_EXIST = 15
    STATUS_DUPLICATE_MEDIA_DATA_CONNECTION = 16
    STATUS_INVALID_MEDIA_PARAMS = 17
    STATUS_INVALID_MEDIA_AUDIO_PARAMS = 18
    STATUS_INVALID_MEDIA_AUDIO_CONTENT_TYPE = 19
    STATUS_INVALID_MEDIA_AUDIO_SAMPLE_RATE = 20
    STATUS_INVALID_MEDIA_AUDIO_CHANNEL = 21
    STATUS_INVALID_MEDIA_AUDIO_CODEC = 22
    STATUS_INVALID_MEDIA_AUDIO_DATA_OPT = 23
    STATUS_INVALID_MEDIA_AUDIO_SEND_RATE = 24
    STATUS_INVALID_MEDIA_VIDEO_PARAMS = 25
    STATUS_INVALID_MEDIA_VIDEO_CONTENT_TYPE = 26
    STATUS_INVALID_MEDIA_VIDEO_CODEC = 27
    STATUS_INVALID_MEDIA_VIDEO_RESOLUTION = 28
    STATUS_INVALID_MEDIA_VIDEO_DATA_OPT = 29
    STATUS_INVALID_MEDIA_VIDEO_FPS = 30
    STATUS_INVALID_MEDIA_DESKSHARE_PARAMS = 31
    STATUS_INVALID_MEDIA_DESKSHARE_CONTENT_TYPE = 32
    STATUS_INVALID_MEDIA_DESKSHARE_CODEC = 33
    STATUS_INVALID_MEDIA_DESKSHARE_RESOLUTION = 34
    STATUS_INVALID_MEDIA_DESKSHARE_FPS = 35
    STATUS_INVALID_MEDIA_TRANSCRIPT_PARAMS = 36
    STATUS_INVALID_MEDIA_TRANSCRIPT_CONTENT_TYPE = 37
    STATUS_INVALID_MEDIA_CHAT_PARAMS = 38
    STATUS_INVALID_MEDIA_CHAT_CONTENT_TYPE = 39
    STATUS_INVALID_RTMS_SESSION_ID = 40
    STATUS_INVALID_CLIENT_READY_ACK = 41
    STATUS_INVALID_EVENT_SUBSCRIBE = 42
    STATUS_INVALID_MEDIA_TRANSCRIPT_SOURCE_LANGUAGE = 43
    STATUS_DUPLICATE_VIDEO_SUBSCRIPTION = 44
    STATUS_INTERNAL_EXCEPTION = 45
    INVALID_MEDIA_TRANSCRIPT_TARGET_LANGUAGE = 46
    CHAT_SESSION_KEY_NOT_AVAILABLE = 47


_STATUS_A_NAMES = (
    "OK CONNECTION_TIMEOUT INVALID_JSON_MSG_SIZE INVALID_JSON_MSG INVALID_MESSAGE_TYPE MSG_TYPE_NOT_EXIST "
    "MSG_TYPE_NOT_UINT MEETING_UUID_NOT_EXIST MEETING_UUID_NOT_STRING MEETING_UUID_IS_EMPTY "
    "RTMS_STREAM_ID_NOT_EXIST RTMS_STREAM_ID_NOT_STRING RTMS_STREAM_ID_IS_EMPTY SESSION_NOT_FOUND "
    "SIGNATURE_NOT_EXIST INVALID_SIGNATURE INVALID_MEETING_OR_STREAM_ID DUPLICATE_SIGNAL_REQUEST "
    "EVENTS_NOT_EXIST EVENTS_VALUE_NOT_ARRAY EVENT_TYPE_NOT_EXIST EVENT_TYPE_VALUE_NOT_UINT "
    "MEDIA_TYPE_NOT_EXIST MEDIA_TYPE_NOT_UINT MEDIA_TYPE_AUDIO_NOT_SUPPORT MEDIA_TYPE_VIDEO_NOT_SUPPORT "
    "MEDIA_TYPE_DESKSHARE_NOT_SUPPORT MEDIA_TYPE_TRANSCRIPT_NOT_SUPPORT MEDIA_TYPE_CHAT_NOT_SUPPORT "
    "MEDIA_TYPE_INVALID_VALUE MEDIA_DATA_ALL_CONNECTION_EXIST DUPLICATE_MEDIA_DATA_CONNECTION "
    "MEDIA_PARAMS_NOT_EXIST INVALID_MEDIA_PARAMS NO_MEDIA_TYPE_SPECIFIED INVALID_MEDIA_AUDIO_PARAMS "
    "MEDIA_AUDIO_CONTENT_TYPE_NOT_UINT INVALID_MEDIA_AUDIO_CONTENT_TYPE MEDIA_AUDIO_SAMPLE_RATE_NOT_UINT "
    "INVALID_MEDIA_AUDIO_SAMPLE_RATE MEDIA_AUDIO_CHANNEL_NOT_UINT INVALID_MEDIA_AUDIO_CHANNEL "
    "MEDIA_AUDIO_CODEC_NOT_UINT INVALID_MEDIA_AUDIO_CODEC MEDIA_AUDIO_DATA_OPT_NOT_UINT "
    "INVALID_MEDIA_AUDIO_DATA_OPT MEDIA_AUDIO_SEND_RATE_NOT_UINT MEDIA_AUDIO_FRAME_SIZE_NOT_UINT "
    "INVALID_MEDIA_VIDEO_PARAMS INVALID_MEDIA_VIDEO_CONTENT_TYPE MEDIA_VIDEO_CONTENT_TYPE_NOT_UINT "
    "INVALID_MEDIA_VIDEO_CODEC MEDIA_VIDEO_CODEC_NOT_UINT INVALID_MEDIA_VIDEO_RESOLUTION "
    "MEDIA_VIDEO_RESOLUTION_NOT_UINT INVALID_MEDIA_VIDEO_DATA_OPT MEDIA_VIDEO_DATA_OPT_NOT_UINT "
    "MEDIA_VIDEO_FPS_NOT_UINT INVALID_MEDIA_SHARE_PARAMS INVALID_MEDIA_DESKSHARE_CONTENT_TYPE "
    "MEDIA_DESKSHARE_CONTENT_TYPE_NOT_UINT INVALID_MEDIA_DESKSHARE_CODEC MEDIA_DESKSHARE_CODEC_NOT_UINT "
    "INVALID_MEDIA_DESKSHARE_RESOLUTION MEDIA_DESKSHARE_RESOLUTION_NOT_UINT MEDIA_DESKSHARE_FPS_NOT_UINT "
    "INVALID_MEDIA_TRANSCRIPT_PARAMS INVALID_MEDIA_TRANSCRIPT_CONTENT_TYPE "
    "MEDIA_TRANSCRIPT_CONTENT_TYPE_NOT_UINT INVALID_MEDIA_CHAT_PARAMS INVALID_MEDIA_CHAT_CONTENT_TYPE "
    "MEDIA_CHAT_CONTENT_TYPE_NOT_UINT INVALID_AUDIO_DATA_BUFFER INVALID_VIDEO_DATA_BUFFER "
    "POST_FIRST_PACKET_FAILURE RTMS_SESSION_NOT_FOUND"
).split()

#: RTMS_STATUS_CODE list A: the 2025 numbering (0-75), names prefixed STATUS_.
StatusA = IntEnum("StatusA", {f"STATUS_{name}": i for i, name in enumerate(_STATUS_A_NAMES)})  # type: ignore[misc]
assert len(StatusA) == 76


class StatusProfile(StrEnum):
    """Which status-code numbering a peer speaks: A (2025 docs) or B (2026 docs, default)."""

    A = "A"
    B = "B"


class Status(StrEnum):
    """Semantic status reasons, numbered differently by each profile (see :func:`status_code`)."""

    OK = "OK"
    INVALID_MESSAGE_TYPE = "INVALID_MESSAGE_TYPE"
    INVALID_JSON = "INVALID_JSON"
    INVALID_STREAM_ID = "INVALID_STREAM_ID"
    MISSING_INSTANCE_ID = "MISSING_INSTANCE_ID"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    INVALID_EVENTS = "INVALID_EVENTS"
    INVALID_EVENT_TYPE = "INVALID_EVENT_TYPE"
    DUPLICATE_SIGNAL_REQUEST = "DUPLICATE_SIGNAL_REQUEST"
    AUDIO_NOT_SUPPORT = "AUDIO_NOT_SUPPORT"
    VIDEO_NOT_SUPPORT = "VIDEO_NOT_SUPPORT"
    DESKSHARE_NOT_SUPPORT = "DESKSHARE_NOT_SUPPORT"
    TRANSCRIPT_NOT_SUPPORT = "TRANSCRIPT_NOT_SUPPORT"
    CHAT_NOT_SUPPORT = "CHAT_NOT_SUPPORT"
    MEDIA_TYPE_INVALID_VALUE = "MEDIA_TYPE_INVALID_VALUE"
    ALL_CONNECTION_EXIST = "ALL_CONNECTION_EXIST"
    DUPLICATE_MEDIA_CONNECTION = "DUPLICATE_MEDIA_CONNECTION"
    INVALID_MEDIA_PARAMS = "INVALID_MEDIA_PARAMS"
    INVALID_AUDIO_PARAMS = "INVALID_AUDIO_PARAMS"
    INVALID_AUDIO_CONTENT_TYPE = "INVALID_AUDIO_CONTENT_TYPE"
    INVALID_AUDIO_SAMPLE_RATE = "INVALID_AUDIO_SAMPLE_RATE"
    INVALID_AUDIO_CHANNEL = "INVALID_AUDIO_CHANNEL"
    INVALID_AUDIO_CODEC = "INVALID_AUDIO_CODEC"
    INVALID_AUDIO_DATA_OPT = "INVALID_AUDIO_DATA_OPT"
    INVALID_AUDIO_SEND_RATE = "INVALID_AUDIO_SEND_RATE"
    INVALID_VIDEO_PARAMS = "INVALID_VIDEO_PARAMS"
    INVALID_VIDEO_CONTENT_TYPE = "INVALID_VIDEO_CONTENT_TYPE"
    INVALID_VIDEO_CODEC = "INVALID_VIDEO_CODEC"
    INVALID_VIDEO_RESOLUTION = "INVALID_VIDEO_RESOLUTION"
    INVALID_VIDEO_DATA_OPT = "INVALID_VIDEO_DATA_OPT"
    INVALID_VIDEO_FPS = "INVALID_VIDEO_FPS"
    INVALID_DESKSHARE_PARAMS = "INVALID_DESKSHARE_PARAMS"
    INVALID_DESKSHARE_CONTENT_TYPE = "INVALID_DESKSHARE_CONTENT_TYPE"
    INVALID_DESKSHARE_CODEC = "INVALID_DESKSHARE_CODEC"
    INVALID_DESKSHARE_RESOLUTION = "INVALID_DESKSHARE_RESOLUTION"
    INVALID_DESKSHARE_FPS = "INVALID_DESKSHARE_FPS"
    INVALID_TRANSCRIPT_PARAMS = "INVALID_TRANSCRIPT_PARAMS"
    INVALID_TRANSCRIPT_CONTENT_TYPE = "INVALID_TRANSCRIPT_CONTENT_TYPE"
    INVALID_TRANSCRIPT_LANGUAGE = "INVALID_TRANSCRIPT_LANGUAGE"
    INVALID_CHAT_PARAMS = "INVALID_CHAT_PARAMS"
    INVALID_CHAT_CONTENT_TYPE = "INVALID_CHAT_CONTENT_TYPE"
    INVALID_SESSION_ID = "INVALID_SESSION_ID"
    INVALID_CLIENT_READY_ACK = "INVALID_CLIENT_READY_ACK"
    DUPLICATE_VIDEO_SUBSCRIPTION = "DUPLICATE_VIDEO_SUBSCRIPTION"
    INTERNAL_EXCEPTION = "INTERNAL_EXCEPTION"


# Semantic reason -> (list B code, list A code). List A has no equivalent for a few newer reasons;
# those fall back to the closest older code (commented).
_STATUS_TABLE: dict[Status, tuple[int, int]] = {
    Status.OK: (0, 0),
    Status.INVALID_MESSAGE_TYPE: (1, 4),
    Status.INVALID_JSON: (4, 3),
    Status.INVALID_STREAM_ID: (2, 16),
    Status.MISSING_INSTANCE_ID: (4, 7),
    Status.INVALID_SIGNATURE: (3, 15),
    Status.INVALID_EVENTS: (5, 18),
    Status.INVALID_EVENT_TYPE: (6, 20),
    Status.DUPLICATE_SIGNAL_REQUEST: (8, 17),
    Status.AUDIO_NOT_SUPPORT: (9, 24),
    Status.VIDEO_NOT_SUPPORT: (10, 25),
    Status.DESKSHARE_NOT_SUPPORT: (11, 26),
    Status.TRANSCRIPT_NOT_SUPPORT: (12, 27),
    Status.CHAT_NOT_SUPPORT: (13, 28),
    Status.MEDIA_TYPE_INVALID_VALUE: (14, 29),
    Status.ALL_CONNECTION_EXIST: (15, 30),
    Status.DUPLICATE_MEDIA_CONNECTION: (16, 31),
    Status.INVALID_MEDIA_PARAMS: (17, 33),
    Status.INVALID_AUDIO_PARAMS: (18, 35),
    Status.INVALID_AUDIO_CONTENT_TYPE: (19, 37),
    Status.INVALID_AUDIO_SAMPLE_RATE: (20, 39),
    Status.INVALID_AUDIO_CHANNEL: (21, 41),
    Status.INVALID_AUDIO_CODEC: (22, 43),
    Status.INVALID_AUDIO_DATA_OPT: (23, 45),
    Status.INVALID_AUDIO_SEND_RATE: (24, 46),  # A: SEND_RATE_NOT_UINT is the only send-rate code
    Status.INVALID_VIDEO_PARAMS: (25, 48),
    Status.INVALID_VIDEO_CONTENT_TYPE: (26, 49),
    Status.INVALID_VIDEO_CODEC: (27, 51),
    Status.INVALID_VIDEO_RESOLUTION: (28, 53),
    Status.INVALID_VIDEO_DATA_OPT: (29, 55),
    Status.INVALID_VIDEO_FPS: (30, 57),
    Status.INVALID_DESKSHARE_PARAMS: (31, 58),
    Status.INVALID_DESKSHARE_CONTENT_TYPE: (32, 59),
    Status.INVALID_DESKSHARE_CODEC: (33, 61),
    Status.INVALID_DESKSHARE_RESOLUTION: (34, 63),
    Status.INVALID_DESKSHARE_FPS: (35, 65),
    Status.INVALID_TRANSCRIPT_PARAMS: (36, 66),
    Status.INVALID_TRANSCRIPT_CONTENT_TYPE: (37, 67),
    Status.INVALID_TRANSCRIPT_LANGUAGE: (43, 66),  # A has no language code: INVALID_MEDIA_TRANSCRIPT_PARAMS
    Status.INVALID_CHAT_PARAMS: (38, 69),
    Status.INVALID_CHAT_CONTENT_TYPE: (39, 70),
    Status.INVALID_SESSION_ID: (40, 75),
    Status.INVALID_CLIENT_READY_ACK: (41, 4),  # A: no dedicated code; INVALID_MESSAGE_TYPE
    Status.DUPLICATE_VIDEO_SUBSCRIPTION: (44, 33),  # A: no dedicated code; INVALID_MEDIA_PARAMS
    Status.INTERNAL_EXCEPTION: (45, 74),  # A: POST_FIRST_PACKET_FAILURE is the closest server-side failure
}
assert set(_STATUS_TABLE) == set(Status)


def status_code(reason: Status, profile: StatusProfile | str = StatusProfile.B) -> int:
    """The integer a server of ``profile`` sends for ``reason``."""
    b, a = _STATUS_TABLE[reason]
    return a if StatusProfile(profile) is StatusProfile.A else b


def status_name(code: int, profile: StatusProfile | str = StatusProfile.B) -> str:
    """Human name of a status code in ``profile``'s numbering (``UNKNOWN_<n>`` if unlisted)."""
    table = StatusA if StatusProfile(profile) is StatusProfile.A else StatusB
    try:
        return table(code).name
    except ValueError:
        return f"UNKNOWN_{code}"


class ContentType(IntEnum):
    """MEDIA_CONTENT_TYPE."""

    UNDEFINED = 0
    RTP = 1
    RAW_AUDIO = 2
    RAW_VIDEO = 3
    FILE_STREAM = 4
    TEXT = 5


class Codec(IntEnum):
    """MEDIA_PAYLOAD_TYPE."""

    UNDEFINED = 0
    L16 = 1
    G711 = 2
    G722 = 3
    OPUS = 4
    JPG = 5
    PNG = 6
    H264 = 7


class SampleRate(IntEnum):
    """AUDIO_SAMPLE_RATE; :attr:`hz` gives the rate."""

    SR_8K = 0
    SR_16K = 1
    SR_32K = 2
    SR_48K = 3

    @property
    def hz(self) -> int:
        return (8000, 16000, 32000, 48000)[self.value]

    @classmethod
    def from_hz(cls, hz: int) -> SampleRate:
        return cls((8000, 16000, 32000, 48000).index(hz))


class AudioChannel(IntEnum):
    MONO = 1
    STEREO = 2


class DataOption(IntEnum):
    """MEDIA_DATA_OPTION (5 is historical and rejected)."""

    UNDEFINED = 0
    AUDIO_MIXED_STREAM = 1
    AUDIO_MULTI_STREAMS = 2
    VIDEO_SINGLE_ACTIVE_STREAM = 3
    VIDEO_SINGLE_INDIVIDUAL_STREAM = 4


class Resolution(IntEnum):
    """MEDIA_RESOLUTION; :attr:`size` gives (width, height)."""

    SD = 1
    HD = 2
    FHD = 3
    QHD = 4

    @property
    def size(self) -> tuple[int, int]:
        return {1: (640, 360), 2: (1280, 720), 3: (1920, 1080), 4: (2560, 1440)}[self.value]


class MediaType(IntFlag):
    """MEDIA_DATA_TYPE bitmask; ALL (32) is a distinct value, not the OR of the others."""

    UNDEFINED = 0
    AUDIO = 1
    VIDEO = 2
    DESKSHARE = 4
    TRANSCRIPT = 8
    CHAT = 16
    ALL = 32


#: media kind name (as in media_params and server_urls) -> MediaType bit and media msg_type.
MEDIA_KINDS: dict[str, tuple[MediaType, MsgType]] = {
    "audio": (MediaType.AUDIO, MsgType.MEDIA_DATA_AUDIO),
    "video": (MediaType.VIDEO, MsgType.MEDIA_DATA_VIDEO),
    "deskshare": (MediaType.DESKSHARE, MsgType.MEDIA_DATA_SHARE),
    "transcript": (MediaType.TRANSCRIPT, MsgType.MEDIA_DATA_TRANSCRIPT),
    "chat": (MediaType.CHAT, MsgType.MEDIA_DATA_CHAT),
}
KIND_BY_MSG_TYPE: dict[int, str] = {int(mt): kind for kind, (_, mt) in MEDIA_KINDS.items()}
#: server_urls keys a client tries per kind, in order (share and chat keys are UNCONFIRMED).
SERVER_URL_KEYS: dict[str, tuple[str, ...]] = {
    "audio": ("audio",),
    "video": ("video",),
    "deskshare": ("deskshare", "sharescreen", "share"),
    "transcript": ("transcript",),
    "chat": ("chat",),
}


def media_kinds(mask: int) -> list[str]:
    """Kinds named by a ``media_type`` mask (ALL expands to every kind)."""
    if mask & MediaType.ALL:
        return list(MEDIA_KINDS)
    return [kind for kind, (bit, _) in MEDIA_KINDS.items() if mask & bit]


class StopReason(IntEnum):
    """RTMS_STOP_REASON (PROTOCOL.md 5.8)."""

    UNDEFINED = 0
    STOP_BC_HOST_TRIGGERED = 1
    STOP_BC_USER_TRIGGERED = 2
    STOP_BC_USER_LEFT = 3
    STOP_BC_USER_EJECTED = 4
    STOP_BC_HOST_DISABLED_APP = 5
    STOP_BC_MEETING_ENDED = 6
    STOP_BC_STREAM_CANCELED = 7
    STOP_BC_STREAM_REVOKED = 8
    STOP_BC_ALL_APPS_DISABLED = 9
    STOP_BC_INTERNAL_EXCEPTION = 10
    STOP_BC_CONNECTION_TIMEOUT = 11
    STOP_BC_INSTANCE_CONNECTION_INTERRUPTED = 12
    STOP_BC_SIGNAL_CONNECTION_INTERRUPTED = 13
    STOP_BC_DATA_CONNECTION_INTERRUPTED = 14
    STOP_BC_SIGNAL_CONNECTION_CLOSED_ABNORMALLY = 15
    STOP_BC_DATA_CONNECTION_CLOSED_ABNORMALLY = 16
    STOP_BC_EXIT_SIGNAL = 17
    STOP_BC_AUTHENTICATION_FAILURE = 18
    STOP_BC_AWAIT_RECONNECTION_TIMEOUT = 19
    STOP_BC_RECEIVER_REQUEST_CLOSE = 20
    STOP_BC_CUSTOMER_DISCONNECTED = 21
    STOP_BC_AGENT_DISCONNECTED = 22
    STOP_BC_ADMIN_DISABLED_APP = 23
    STOP_BC_KEEP_ALIVE_TIMEOUT = 24
    STOP_BC_MANUAL_API_TRIGGERED = 25
    STOP_BC_STREAMING_NOT_SUPPORTED = 26


def stop_reason_name(code: int) -> str:
    try:
        return StopReason(code).name
    except ValueError:
        return f"UNKNOWN_{code}"


class SessionState(IntEnum):
    """RTMS_SESSION_STATE: what users see as a stream's session state."""

    INACTIVE = 0
    INITIALIZE = 1
    STARTED = 2
    PAUSED = 3
    RESUMED = 4
    STOPPED = 5


class StreamState(IntEnum):
    """RTMS_STREAM_STATE."""

    INACTIVE = 0
    ACTIVE = 1
    INTERRUPTED = 2
    TERMINATING = 3
    TERMINATED = 4
    PAUSED = 5
    RESUMED = 6


class TranscriptLanguage(IntEnum):
    """RTMS_TRANSCRIPT_LANGUAGE (-1 = none / auto)."""

    NONE = -1
    ARABIC = 0
    BENGALI = 1
    CANTONESE = 2
    CATALAN = 3
    CHINESE_SIMPLIFIED = 4
    CHINESE_TRADITIONAL = 5
    CZECH = 6
    DANISH = 7
    DUTCH = 8
    ENGLISH = 9
    ESTONIAN = 10
    FINNISH = 11
    FRENCH_CANADA = 12
    FRENCH_FRANCE = 13
    GERMAN = 14
    HEBREW = 15
    HINDI = 16
    HUNGARIAN = 17
    INDONESIAN = 18
    ITALIAN = 19
    JAPANESE = 20
    KOREAN = 21
    MALAY = 22
    PERSIAN = 23
    POLISH = 24
    PORTUGUESE = 25
    ROMANIAN = 26
    RUSSIAN = 27
    SPANISH = 28
    SWEDISH = 29
    TAGALOG = 30
    TAMIL = 31
    TELUGU = 32
    THAI = 33
    TURKISH = 34
    UKRAINIAN = 35
    VIETNAMESE = 36


class DataAttribute(IntEnum):
    """RTMS_DATA_MESSAGE_ATTRIBUTE (revisable transcripts, UNCONFIRMED on the wire)."""

    NONE = 0
    NEW = 1
    UPDATE = 2
    DELETE = 3


class ChatOperation(IntEnum):
    NEW = 1
    DELETE = 2
    UPDATE = 3
    ADD_EMOJI_REACTION = 4
    REMOVE_EMOJI_REACTION = 5


# --------------------------------------------------------------------------- products & webhooks


class Product(StrEnum):
    """The RTMS products; each names its webhook prefix and instance-id field."""

    MEETING = "meeting"
    WEBINAR = "webinar"
    SESSION = "session"
    CONTACT_CENTER = "contact_center"
    PHONE = "phone"

    @property
    def id_key(self) -> str:
        return _PRODUCT_ID_KEY[self]

    def event(self, what: str) -> str:
        """Webhook event name for ``what`` in started/stopped/interrupted."""
        if self is Product.CONTACT_CENTER:
            return f"contact_center.voice_rtms_{what}"
        return f"{self.value}.rtms_{what}"


_PRODUCT_ID_KEY = {
    Product.MEETING: "meeting_uuid",
    Product.WEBINAR: "webinar_uuid",
    Product.SESSION: "session_id",
    Product.CONTACT_CENTER: "engagement_id",
    Product.PHONE: "call_id",
}
#: Instance-id keys a handshake may carry (the official client always uses meeting_uuid).
HANDSHAKE_ID_KEYS = ("meeting_uuid", "webinar_uuid", "session_id", "engagement_id", "call_id")
#: Zoom SDK's priority when a payload carries several ids: meeting > webinar > session.
WEBHOOK_ID_PRIORITY = ("meeting_uuid", "webinar_uuid", "session_id", "engagement_id", "call_id")

URL_VALIDATION_EVENT = "endpoint.url_validation"
CONCURRENCY_EVENTS = frozenset({"rtms.concurrency_near_limit", "rtms.concurrency_limited"})


class WebhookKind(StrEnum):
    STARTED = "started"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    URL_VALIDATION = "url_validation"
    CONCURRENCY = "concurrency"


def _event_table() -> dict[str, tuple[Product, WebhookKind]]:
    table = {}
    for product in Product:
        for kind in (WebhookKind.STARTED, WebhookKind.STOPPED, WebhookKind.INTERRUPTED):
            table[product.event(kind.value)] = (product, kind)
    return table


WEBHOOK_EVENTS = _event_table()


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A decoded RTMS webhook. ``payload`` is the flattened payload as received."""

    event: str
    kind: WebhookKind
    event_ts: int
    product: Product | None = None
    instance_id: str | None = None
    instance_key: str | None = None
    stream_id: str | None = None
    server_urls: str | None = None
    stop_reason: int | None = None
    operator_id: str | None = None
    plain_token: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def signaling_url(self) -> str | None:
        """The ``wss://`` (or ``ws://``) URL from a possibly comma-separated ``server_urls``."""
        return pick_signaling_url(self.server_urls) if self.server_urls else None


def pick_signaling_url(server_urls: str) -> str:
    """``server_urls`` may list several comma-separated URLs for different protocols: pick wss, then ws."""
    urls = [u.strip() for u in server_urls.split(",") if u.strip()]
    if not urls:
        raise ProtocolError("server_urls is empty", field="payload.server_urls")
    for scheme in ("wss://", "ws://"):
        for url in urls:
            if url.lower().startswith(scheme):
                return url
    raise ProtocolError(f"no WebSocket URL in server_urls {server_urls!r}", field="payload.server_urls")


def webhook_signature(secret: str, timestamp: str | int, body: bytes) -> str:
    """``x-zm-signature`` for ``body``: ``v0=`` + hex HMAC-SHA256 of ``v0:{ts}:{body}``."""
    message = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_webhook_signature(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Constant-time check of ``x-zm-signature`` over the raw body."""
    if not signature.isascii():  # a header with undecodable bytes arrives with surrogates: no match
        return False
    expected = webhook_signature(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), signature.encode())


def url_validation_response(secret: str, plain_token: str) -> dict[str, str]:
    """Answer to ``endpoint.url_validation``: the token and its hex HMAC under the secret token."""
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}


def handshake_signature(client_id: str, client_secret: str, instance_id: str, stream_id: str) -> str:
    """Signature sent in msg 1 and every msg 3: hex HMAC-SHA256 of ``client_id,instance_id,stream_id``."""
    message = f"{client_id},{instance_id},{stream_id}".encode()
    return hmac.new(client_secret.encode(), message, hashlib.sha256).hexdigest()


def parse_webhook(body: bytes | str | Mapping[str, Any]) -> WebhookEvent:
    """Decode a webhook body; accepts flat and nested (``payload.object``) payloads."""
    doc = body if isinstance(body, Mapping) else decode_json(body)
    event = doc.get("event")
    if not isinstance(event, str) or not event:
        raise ProtocolError("webhook has no event name", field="event")
    event_ts = doc.get("event_ts", 0)
    if isinstance(event_ts, bool) or not isinstance(event_ts, int):
        raise ProtocolError("event_ts must be an integer (ms)", field="event_ts")
    payload = doc.get("payload")
    if not isinstance(payload, Mapping):
        raise ProtocolError("webhook payload must be an object", field="payload")
    flat: dict[str, Any] = dict(payload)
    nested = payload.get("object")
    if isinstance(nested, Mapping):  # rtms-samples / skills variant: ids under payload.object
        for key, value in nested.items():
            flat.setdefault(key, value)
        flat.pop("object", None)

    if event == URL_VALIDATION_EVENT:
        token = flat.get("plainToken")
        if not isinstance(token, str) or not token:
            raise ProtocolError("url_validation needs payload.plainToken", field="payload.plainToken")
        return WebhookEvent(event, WebhookKind.URL_VALIDATION, event_ts, plain_token=token, payload=flat)
    if event in CONCURRENCY_EVENTS:
        return WebhookEvent(event, WebhookKind.CONCURRENCY, event_ts, payload=flat)
    if event not in WEBHOOK_EVENTS:
        raise UnknownMessageType(f"unknown webhook event {event!r}", field="event")
    product, kind = WEBHOOK_EVENTS[event]

    instance_key = next((k for k in WEBHOOK_ID_PRIORITY if isinstance(flat.get(k), str) and flat[k]), None)
    if instance_key is None:
        raise ProtocolError(f"{event} carries no instance id", field=f"payload.{product.id_key}")
    stream_id = flat.get("rtms_stream_id")
    if not isinstance(stream_id, str) or not stream_id:
        raise ProtocolError(f"{event} needs rtms_stream_id", field="payload.rtms_stream_id")
    server_urls = flat.get("server_urls")
    if kind is WebhookKind.STARTED:
        if not isinstance(server_urls, str) or not server_urls:
            raise ProtocolError(f"{event} needs server_urls", field="payload.server_urls")
        pick_signaling_url(server_urls)
    elif server_urls is not None and not isinstance(server_urls, str):
        raise ProtocolError("server_urls must be a string", field="payload.server_urls")
    stop_reason = flat.get("stop_reason", flat.get("reason"))
    if stop_reason is not None and (isinstance(stop_reason, bool) or not isinstance(stop_reason, int)):
        raise ProtocolError("stop_reason must be an integer", field="payload.stop_reason")
    operator = flat.get("operator_id")
    return WebhookEvent(
        event,
        kind,
        event_ts,
        product=product,
        instance_id=flat[instance_key],
        instance_key=instance_key,
        stream_id=stream_id,
        server_urls=server_urls if isinstance(server_urls, str) else None,
        stop_reason=stop_reason,
        operator_id=operator if isinstance(operator, str) else None,
        payload=flat,
    )


def build_webhook(
    product: Product,
    kind: WebhookKind,
    *,
    instance_id: str,
    stream_id: str,
    event_ts: int,
    server_urls: str | None = None,
    stop_reason: int | None = None,
    operator_id: str | None = None,
    nested: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A webhook body as Zoom sends it (flat payload; ``nested=True`` for the payload.object variant)."""
    ids: dict[str, Any] = {product.id_key: instance_id, "rtms_stream_id": stream_id}
    if product is Product.SESSION:
        ids["session_key"] = (extra or {}).get("session_key", "rtms-gateway-sim")
    if kind is WebhookKind.STARTED:
        ids["operator_id"] = operator_id or "simOperator0000000000"
        if server_urls is None:
            raise ValueError("rtms_started needs server_urls")
        ids["server_urls"] = server_urls
    if kind is WebhookKind.STOPPED:
        ids["stop_reason"] = int(stop_reason if stop_reason is not None else StopReason.STOP_BC_MEETING_ENDED)
    if extra:
        ids.update({k: v for k, v in extra.items() if k != "session_key"})
    payload: dict[str, Any] = {"object": ids} if nested else ids
    return {"event": product.event(kind.value), "event_ts": int(event_ts), "payload": payload}


def build_url_validation(plain_token: str | None = None, *, event_ts: int = 0) -> dict[str, Any]:
    token = plain_token or secrets.token_urlsafe(16)
    return {"payload": {"plainToken": token}, "event_ts": event_ts, "event": URL_VALIDATION_EVENT}


# --------------------------------------------------------------------------- JSON framing


def encode(msg: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes for a message (send as a text frame; peers must also accept binary)."""
    return orjson.dumps(msg)


def decode_json(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Parse one JSON object, raising :class:`ParseError` (never a bare orjson error)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ParseError(f"expected a JSON object, got {type(doc).__name__}")
    return doc


def decode(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Parse one RTMS message (text or binary frame) and check its ``msg_type``.

    Unknown integer types raise :class:`UnknownMessageType` (callers count and ignore it); a
    missing or non-integer ``msg_type`` is a :class:`ProtocolError`.
    """
    doc = decode_json(data)
    mt = doc.get("msg_type")
    if isinstance(mt, bool) or not isinstance(mt, int):
        raise ProtocolError("msg_type must be an integer", field="msg_type")
    if not 0 < mt <= max(MsgType):
        raise UnknownMessageType(f"unknown msg_type {mt}", field="msg_type", msg_type=mt)
    return doc


# --------------------------------------------------------------------------- field helpers


def _req(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str, mt: int | None) -> Any:
    if key not in doc:
        raise ProtocolError("missing field", field=path, msg_type=mt)
    return _typed(doc[key], kind, path, mt)


def _typed(value: Any, kind: type | tuple[type, ...], path: str, mt: int | None) -> Any:
    if kind is int or kind == (int,):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"expected integer, got {type(value).__name__}", field=path, msg_type=mt)
        return value
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ProtocolError(f"expected {name}, got {type(value).__name__}", field=path, msg_type=mt)
    return value


def _opt(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str, mt: int | None, default: Any = None) -> Any:
    if key not in doc or doc[key] is None:
        return default
    return _typed(doc[key], kind, path, mt)


def parse_user_id(value: Any, path: str = "user_id", mt: int | None = None) -> int:
    """``user_id`` is documented as uint32 but examples show strings: accept both."""
    if isinstance(value, bool):
        raise ProtocolError("user_id must be a number", field=path, msg_type=mt)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ProtocolError(f"user_id must be an unsigned integer, got {value!r}", field=path, msg_type=mt)


def normalize_timestamp_ms(ts: int) -> int:
    """Accept seconds where ms are expected (docs example for msg 20): < 1e11 is seconds."""
    return ts * 1000 if 0 < ts < 100_000_000_000 else ts


def b64decode_strict(data: str | bytes, path: str = "content.data", mt: int | None = None) -> bytes:
    """Standard-alphabet base64 with padding; anything else is a :class:`ParseError`."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ParseError(f"bad base64: {exc}", field=path, msg_type=mt) from None


def b64encode(data: bytes | memoryview) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- media params


@dataclass(slots=True)
class AudioParams:
    """``media_params.audio``; defaults are the raw protocol's (L16, 16 kHz, mono, mixed, 20 ms)."""

    content_type: int = ContentType.RAW_AUDIO
    sample_rate: int = SampleRate.SR_16K
    channel: int = AudioChannel.MONO
    codec: int = Codec.L16
    data_opt: int = DataOption.AUDIO_MIXED_STREAM
    send_rate: int = 20

    @property
    def rate_hz(self) -> int:
        return SampleRate(self.sample_rate).hz

    @property
    def samples_per_packet(self) -> int:
        return self.rate_hz * self.send_rate // 1000

    @property
    def bytes_per_packet(self) -> int:
        """L16 payload size: rate x send_rate/1000 x channels x 2."""
        return self.samples_per_packet * self.channel * 2


@dataclass(slots=True)
class VideoParams:
    content_type: int = ContentType.RAW_VIDEO
    codec: int = Codec.JPG
    resolution: int = Resolution.HD
    data_opt: int = DataOption.VIDEO_SINGLE_ACTIVE_STREAM
    fps: int = 5


@dataclass(slots=True)
class DeskshareParams:
    content_type: int = ContentType.RAW_VIDEO
    codec: int = Codec.JPG
    resolution: int = Resolution.FHD
    fps: int = 1


@dataclass(slots=True)
class TranscriptParams:
    content_type: int = ContentType.TEXT
    src_language: int = TranscriptLanguage.ENGLISH
    enable_lid: bool = True


@dataclass(slots=True)
class ChatParams:
    content_type: int = ContentType.TEXT


PARAMS_BY_KIND: dict[str, type] = {
    "audio": AudioParams,
    "video": VideoParams,
    "deskshare": DeskshareParams,
    "transcript": TranscriptParams,
    "chat": ChatParams,
}
_PARAMS_STATUS = {
    "audio": Status.INVALID_AUDIO_PARAMS,
    "video": Status.INVALID_VIDEO_PARAMS,
    "deskshare": Status.INVALID_DESKSHARE_PARAMS,
    "transcript": Status.INVALID_TRANSCRIPT_PARAMS,
    "chat": Status.INVALID_CHAT_PARAMS,
}


def params_to_wire(params: Any) -> dict[str, Any]:
    return {f.name: (bool(v) if isinstance(v, bool) else int(v)) for f in fields(params) for v in [getattr(params, f.name)]}


@dataclass(slots=True)
class MediaParams:
    """The ``media_params`` object: one entry per kind (None = not requested)."""

    audio: AudioParams | None = None
    video: VideoParams | None = None
    deskshare: DeskshareParams | None = None
    transcript: TranscriptParams | None = None
    chat: ChatParams | None = None

    def to_wire(self) -> dict[str, Any]:
        return {kind: params_to_wire(p) for kind in PARAMS_BY_KIND if (p := getattr(self, kind)) is not None}


class ParamsRejected(ProtocolError):
    """Media params outside the documented matrix; ``status`` is the semantic reason to answer with."""

    def __init__(self, message: str, *, status: Status, field: str) -> None:
        self.status = status
        super().__init__(message, field=field, msg_type=MsgType.DATA_HAND_SHAKE_REQ)


def _param_int(raw: Mapping[str, Any], key: str, kind: str, status: Status, default: int) -> int:
    if key not in raw or raw[key] is None:
        return default
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamsRejected(f"{kind}.{key} must be an integer", status=status, field=f"media_params.{kind}.{key}")
    return value


def negotiate_media_params(raw: Any, kinds: list[str], *, deskshare_image_fps_max: int = 5) -> MediaParams:
    """Validate a msg 3 ``media_params`` against the documented matrix and fill defaults.

    Returns the *effective* params the server confirms in msg 4 (defaults filled, send_rate
    clamped to 1000, codec fallbacks applied). Raises :class:`ParamsRejected` with the status to
    answer. Only kinds in ``kinds`` are returned.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ParamsRejected("media_params must be an object", status=Status.INVALID_MEDIA_PARAMS, field="media_params")
    out = MediaParams()
    for kind in kinds:
        section = raw.get(kind)
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            raise ParamsRejected(f"{kind} params must be an object", status=_PARAMS_STATUS[kind], field=f"media_params.{kind}")
        if kind == "deskshare":
            out.deskshare = _negotiate_deskshare(section, deskshare_image_fps_max)
        else:
            setattr(out, kind, _NEGOTIATORS[kind](section))
    return out


def _negotiate_audio(raw: Mapping[str, Any]) -> AudioParams:
    d = AudioParams()
    ct = _param_int(raw, "content_type", "audio", Status.INVALID_AUDIO_CONTENT_TYPE, d.content_type)
    sr = _param_int(raw, "sample_rate", "audio", Status.INVALID_AUDIO_SAMPLE_RATE, d.sample_rate)
    ch = _param_int(raw, "channel", "audio", Status.INVALID_AUDIO_CHANNEL, d.channel)
    codec = _param_int(raw, "codec", "audio", Status.INVALID_AUDIO_CODEC, d.codec)
    opt = _param_int(raw, "data_opt", "audio", Status.INVALID_AUDIO_DATA_OPT, d.data_opt)
    rate = _param_int(raw, "send_rate", "audio", Status.INVALID_AUDIO_SEND_RATE, d.send_rate)

    def bad(status: Status, key: str, msg: str) -> ParamsRejected:
        return ParamsRejected(msg, status=status, field=f"media_params.audio.{key}")

    if ct not in (ContentType.RTP, ContentType.RAW_AUDIO):
        raise bad(Status.INVALID_AUDIO_CONTENT_TYPE, "content_type", f"audio content_type {ct} is not RTP or RAW_AUDIO")
    if sr not in tuple(SampleRate):
        raise bad(Status.INVALID_AUDIO_SAMPLE_RATE, "sample_rate", f"audio sample_rate {sr} is not 0-3")
    if ch not in (1, 2):
        raise bad(Status.INVALID_AUDIO_CHANNEL, "channel", f"audio channel {ch} is not 1 or 2")
    if codec not in (Codec.L16, Codec.G711, Codec.G722, Codec.OPUS):
        raise bad(Status.INVALID_AUDIO_CODEC, "codec", f"audio codec {codec} is not an audio codec")
    if opt not in (DataOption.AUDIO_MIXED_STREAM, DataOption.AUDIO_MULTI_STREAMS):
        raise bad(Status.INVALID_AUDIO_DATA_OPT, "data_opt", f"audio data_opt {opt} is not 1 or 2")
    if rate <= 0 or rate % 20:
        raise bad(Status.INVALID_AUDIO_SEND_RATE, "send_rate", f"send_rate {rate} is not a positive multiple of 20")
    rate = min(rate, MAX_AUDIO_SEND_RATE_MS)
    # The documented matrix (PROTOCOL.md 3.2).
    if codec == Codec.L16 and ct != ContentType.RAW_AUDIO:
        raise bad(Status.INVALID_AUDIO_CONTENT_TYPE, "content_type", "L16 is only offered as RAW_AUDIO")
    if codec == Codec.OPUS and sr != SampleRate.SR_48K:
        raise bad(Status.INVALID_AUDIO_SAMPLE_RATE, "sample_rate", "OPUS needs 48 kHz")
    if codec == Codec.G711 and sr != SampleRate.SR_8K:
        raise bad(Status.INVALID_AUDIO_SAMPLE_RATE, "sample_rate", "G711 needs 8 kHz")
    if codec == Codec.G722 and sr != SampleRate.SR_16K:
        raise bad(Status.INVALID_AUDIO_SAMPLE_RATE, "sample_rate", "G722 needs 16 kHz")
    if codec in (Codec.G711, Codec.G722) and ch != AudioChannel.MONO:
        raise bad(Status.INVALID_AUDIO_CHANNEL, "channel", "G711/G722 are mono only")
    if codec != Codec.L16 and rate != 20:
        raise bad(Status.INVALID_AUDIO_SEND_RATE, "send_rate", "compressed codecs use 20 ms packets")
    return AudioParams(ct, sr, ch, codec, opt, rate)


def _negotiate_visual(raw: Mapping[str, Any], kind: str, fps_image_max: int) -> tuple[int, int, int, int]:
    prefix = "VIDEO" if kind == "video" else "DESKSHARE"
    st = {n: Status[f"INVALID_{prefix}_{n}"] for n in ("CONTENT_TYPE", "CODEC", "RESOLUTION", "FPS")}
    d = VideoParams() if kind == "video" else DeskshareParams()
    ct = _param_int(raw, "content_type", kind, st["CONTENT_TYPE"], d.content_type)
    codec_given = raw.get("codec") is not None
    codec = _param_int(raw, "codec", kind, st["CODEC"], d.codec)
    res = _param_int(raw, "resolution", kind, st["RESOLUTION"], d.resolution)
    fps = _param_int(raw, "fps", kind, st["FPS"], d.fps)
    if ct != ContentType.RAW_VIDEO:
        raise ParamsRejected(f"{kind} content_type {ct} is not RAW_VIDEO", status=st["CONTENT_TYPE"], field=f"media_params.{kind}.content_type")
    if codec not in (Codec.JPG, Codec.PNG, Codec.H264):
        raise ParamsRejected(f"{kind} codec {codec} is not JPG/PNG/H264", status=st["CODEC"], field=f"media_params.{kind}.codec")
    if res not in tuple(Resolution):
        raise ParamsRejected(f"{kind} resolution {res} is not 1-4", status=st["RESOLUTION"], field=f"media_params.{kind}.resolution")
    if not 1 <= fps <= MAX_FPS:
        raise ParamsRejected(f"{kind} fps {fps} is not 1-30", status=st["FPS"], field=f"media_params.{kind}.fps")
    if fps > fps_image_max and not codec_given:
        codec, fps = Codec.JPG, fps_image_max  # documented fallback: JPG at the image-codec limit
    elif fps > fps_image_max and codec in (Codec.JPG, Codec.PNG):
        raise ParamsRejected(f"{kind} JPG/PNG only up to {fps_image_max} fps", status=st["FPS"], field=f"media_params.{kind}.fps")
    return ct, codec, res, fps


def _negotiate_video(raw: Mapping[str, Any]) -> VideoParams:
    ct, codec, res, fps = _negotiate_visual(raw, "video", 5)
    opt = _param_int(raw, "data_opt", "video", Status.INVALID_VIDEO_DATA_OPT, DataOption.VIDEO_SINGLE_ACTIVE_STREAM)
    if opt not in (DataOption.VIDEO_SINGLE_ACTIVE_STREAM, DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM):
        raise ParamsRejected(f"video data_opt {opt} is not 3 or 4", status=Status.INVALID_VIDEO_DATA_OPT, field="media_params.video.data_opt")
    return VideoParams(ct, codec, res, opt, fps)


#: Deskshare JPG/PNG fps limit: 1 (2026 event reference) or 5 (data-types enum) — CONFLICT, profile.
DESKSHARE_IMAGE_FPS_MAX = {"2026": 1, "enum": 5}


def _negotiate_deskshare(raw: Mapping[str, Any], image_fps_max: int = 5) -> DeskshareParams:
    ct, codec, res, fps = _negotiate_visual(raw, "deskshare", image_fps_max)
    return DeskshareParams(ct, codec, res, fps)


def _negotiate_transcript(raw: Mapping[str, Any]) -> TranscriptParams:
    ct = _param_int(raw, "content_type", "transcript", Status.INVALID_TRANSCRIPT_CONTENT_TYPE, ContentType.TEXT)
    if ct != ContentType.TEXT:
        raise ParamsRejected(f"transcript content_type {ct} is not TEXT", status=Status.INVALID_TRANSCRIPT_CONTENT_TYPE, field="media_params.transcript.content_type")
    lang_key = "src_language" if "src_language" in raw else "language"  # older samples send `language`
    lang = _param_int(raw, lang_key, "transcript", Status.INVALID_TRANSCRIPT_LANGUAGE, TranscriptLanguage.ENGLISH)
    if lang not in tuple(TranscriptLanguage):
        raise ParamsRejected(f"transcript language {lang} unknown", status=Status.INVALID_TRANSCRIPT_LANGUAGE, field=f"media_params.transcript.{lang_key}")
    lid = raw.get("enable_lid", True)
    if not isinstance(lid, bool):
        raise ParamsRejected("enable_lid must be a boolean", status=Status.INVALID_TRANSCRIPT_PARAMS, field="media_params.transcript.enable_lid")
    return TranscriptParams(ct, lang, lid)


def _negotiate_chat(raw: Mapping[str, Any]) -> ChatParams:
    ct = _param_int(raw, "content_type", "chat", Status.INVALID_CHAT_CONTENT_TYPE, ContentType.TEXT)
    if ct != ContentType.TEXT:
        raise ParamsRejected(f"chat content_type {ct} is not TEXT", status=Status.INVALID_CHAT_CONTENT_TYPE, field="media_params.chat.content_type")
    return ChatParams(ct)


_NEGOTIATORS = {
    "audio": _negotiate_audio,
    "video": _negotiate_video,
    "deskshare": _negotiate_deskshare,
    "transcript": _negotiate_transcript,
    "chat": _negotiate_chat,
}


def media_params_from_wire(raw: Any) -> MediaParams:
    """Read the confirmed ``media_params`` of a msg 4 (lenient: unknown keys ignored)."""
    out = MediaParams()
    if not isinstance(raw, Mapping):
        return out
    for kind, cls in PARAMS_BY_KIND.items():
        section = raw.get(kind)
        if isinstance(section, Mapping):
            names = {f.name for f in fields(cls)}
            kwargs = {k: v for k, v in section.items() if k in names and isinstance(v, (int, bool))}
            if kind == "transcript" and "language" in section and "src_language" not in kwargs:
                kwargs["src_language"] = section["language"]
            setattr(out, kind, cls(**kwargs))
    return out


# --------------------------------------------------------------------------- builders (client -> server)


def build_signaling_handshake(
    *,
    instance_id: str,
    stream_id: str,
    signature: str,
    instance_key: str = "meeting_uuid",
    sequence: int | None = None,
    buffer_data: bool | None = None,
    client_agent: str | None = None,
) -> dict[str, Any]:
    """msg 1. The official client always puts the instance id under ``meeting_uuid`` (ZCC: engagement_id)."""
    msg: dict[str, Any] = {
        "msg_type": MsgType.SIGNALING_HAND_SHAKE_REQ,
        "protocol_version": PROTOCOL_VERSION,
        instance_key: instance_id,
        "rtms_stream_id": stream_id,
        "signature": signature,
    }
    if sequence is not None:
        msg["sequence"] = sequence
    if buffer_data is not None:
        msg["buffer_data"] = buffer_data
    if client_agent:
        msg["rtms_client_agent"] = client_agent
    return msg


def build_data_handshake(
    *,
    instance_id: str,
    stream_id: str,
    signature: str,
    media_type: int,
    media_params: MediaParams | Mapping[str, Any] | None = None,
    instance_key: str = "meeting_uuid",
    sequence: int | None = None,
    payload_encryption: bool | None = None,
) -> dict[str, Any]:
    """msg 3 for one media socket."""
    msg: dict[str, Any] = {
        "msg_type": MsgType.DATA_HAND_SHAKE_REQ,
        "protocol_version": PROTOCOL_VERSION,
        instance_key: instance_id,
        "rtms_stream_id": stream_id,
        "signature": signature,
        "media_type": int(media_type),
    }
    if media_params is not None:
        msg["media_params"] = media_params.to_wire() if isinstance(media_params, MediaParams) else dict(media_params)
    if sequence is not None:
        msg["sequence"] = sequence
    if payload_encryption is not None:
        msg["payload_encryption"] = payload_encryption
    return msg


def build_event_subscription(event_types: list[int] | tuple[int, ...], subscribe: bool = True) -> dict[str, Any]:
    """msg 5; never includes the automatic events 1 and 7."""
    events = [{"event_type": int(e), "subscribe": subscribe} for e in event_types if e not in AUTOMATIC_EVENTS]
    return {"msg_type": MsgType.EVENT_SUBSCRIPTION, "events": events}


def build_client_ready_ack(stream_id: str) -> dict[str, Any]:
    return {"msg_type": MsgType.CLIENT_READY_ACK, "rtms_stream_id": stream_id}


def build_keep_alive_response(request: Mapping[str, Any]) -> dict[str, Any]:
    """msg 13: echoes the request's timestamp (and sequence, as the official client does)."""
    msg: dict[str, Any] = {"msg_type": MsgType.KEEP_ALIVE_RESP, "timestamp": request.get("timestamp", 0)}
    if "sequence" in request:
        msg["sequence"] = request["sequence"]
    return msg


def build_session_state_request(session_id: str) -> dict[str, Any]:
    return {"msg_type": MsgType.SESSION_STATE_REQ, "rtms_session_id": session_id}


def build_stream_state_request(stream_id: str) -> dict[str, Any]:
    return {"msg_type": MsgType.STREAM_STATE_REQ, "rtms_stream_id": stream_id}


def build_stream_close_request(stream_id: str) -> dict[str, Any]:
    return {"msg_type": MsgType.STREAM_CLOSE_REQ, "rtms_stream_id": stream_id}


def build_video_subscription(user_id: int, subscribe: bool, timestamp: int) -> dict[str, Any]:
    return {"msg_type": MsgType.VIDEO_SUBSCRIPTION_REQ, "user_id": int(user_id), "subscribe": subscribe, "timestamp": timestamp}


# --------------------------------------------------------------------------- builders (server -> client)


def build_signaling_handshake_response(
    status: int = 0, reason: str = "", *, server_urls: Mapping[str, str] | None = None, sequence: int = 0
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "msg_type": MsgType.SIGNALING_HAND_SHAKE_RESP,
        "protocol_version": PROTOCOL_VERSION,
        "sequence": sequence,
        "status_code": int(status),
        "reason": reason,
    }
    if status == 0:
        msg["media_server"] = {"server_urls": dict(server_urls or {})}
    return msg


def build_data_handshake_response(
    status: int = 0,
    reason: str = "",
    *,
    media_params: MediaParams | None = None,
    sequence: int = 0,
    payload_encrypted: bool = False,
) -> dict[str, Any]:
    """msg 4. Always carries ``payload_encrypted`` and ``media_params``: the official client needs both."""
    return {
        "msg_type": MsgType.DATA_HAND_SHAKE_RESP,
        "protocol_version": PROTOCOL_VERSION,
        "sequence": sequence,
        "status_code": int(status),
        "reason": reason,
        "payload_encrypted": payload_encrypted,
        "media_params": media_params.to_wire() if media_params is not None else {},
    }


def build_event(event_type: int, timestamp: int, **fields_: Any) -> dict[str, Any]:
    """msg 6 EVENT_UPDATE with ``event_type`` and ``timestamp`` plus event fields."""
    return {"msg_type": MsgType.EVENT_UPDATE, "event": {"event_type": int(event_type), "timestamp": timestamp, **fields_}}


def build_stream_state_update(state: int, reason: int, timestamp: int) -> dict[str, Any]:
    return {"msg_type": MsgType.STREAM_STATE_UPDATE, "state": int(state), "reason": int(reason), "timestamp": timestamp}


def build_session_state_update(
    state: int, session_id: str, timestamp: int, stop_reason: int = 0, *, reason_key: str = "stop_reason"
) -> dict[str, Any]:
    """msg 9; ``reason_key`` may be ``reason`` (docs' field table) instead of ``stop_reason``."""
    return {
        "msg_type": MsgType.SESSION_STATE_UPDATE,
        "state": int(state),
        reason_key: int(stop_reason),
        "timestamp": timestamp,
        "rtms_session_id": session_id,
    }


def build_keep_alive_request(timestamp: int, sequence: int | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"msg_type": MsgType.KEEP_ALIVE_REQ, "timestamp": timestamp}
    if sequence is not None:
        msg["sequence"] = sequence
    return msg


def build_session_state_response(session_id: str, state: int, timestamp: int, status: int | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"msg_type": MsgType.SESSION_STATE_RESP, "rtms_session_id": session_id, "state": int(state), "timestamp": timestamp}
    if status is not None:
        msg["status_code"] = status
    return msg


def build_stream_state_response(stream_id: str, state: int, timestamp: int) -> dict[str, Any]:
    return {"msg_type": MsgType.STREAM_STATE_RESP, "state": int(state), "rtms_stream_id": stream_id, "timestamp": timestamp}


def build_stream_close_response(stream_id: str, timestamp: int, status: int = 0, reason: str = "OK") -> dict[str, Any]:
    return {"msg_type": MsgType.STREAM_CLOSE_RESP, "rtms_stream_id": stream_id, "status_code": status, "reason": reason, "timestamp": timestamp}


def build_video_subscription_response(user_id: int, timestamp: int, status: int = 0, reason: str = "OK", subscribe: bool | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"msg_type": MsgType.VIDEO_SUBSCRIPTION_RESP, "user_id": int(user_id), "status_code": status, "reason": reason, "timestamp": timestamp}
    if subscribe is not None:
        msg["subscribe"] = subscribe
    return msg


def build_media(
    msg_type: int,
    *,
    data: bytes | str,
    timestamp: int,
    user_id: int | None = 0,
    user_name: str | None = "",
    with_length: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """msg 14-18. Binary ``data`` is base64-encoded; text (transcript, chat) is passed as is.

    The official client drops media without ``user_id``, ``user_name``, ``data`` and
    ``timestamp``, so they are always present unless explicitly set to None.
    """
    content: dict[str, Any] = {}
    if user_id is not None:
        content["user_id"] = user_id
    if user_name is not None:
        content["user_name"] = user_name
    if isinstance(data, (bytes, bytearray, memoryview)):
        content["data"] = b64encode(data)
        if with_length:
            content["length"] = len(data)
    else:
        content["data"] = data
    content["timestamp"] = timestamp
    content.update(extra)
    return {"msg_type": int(msg_type), "content": content}


# --------------------------------------------------------------------------- typed decoders


@dataclass(frozen=True, slots=True)
class SignalingHandshakeRequest:
    instance_id: str
    instance_key: str
    stream_id: str
    signature: str
    protocol_version: int
    sequence: int | None
    buffer_data: bool
    client_agent: str | None


def _instance(doc: Mapping[str, Any], mt: int) -> tuple[str, str]:
    for key in HANDSHAKE_ID_KEYS:
        if key in doc:
            value = _typed(doc[key], str, key, mt)
            if not value:
                raise ProtocolError("instance id is empty", field=key, msg_type=mt)
            return key, value
    raise ProtocolError("missing instance id (meeting_uuid/webinar_uuid/session_id/engagement_id)", field="meeting_uuid", msg_type=mt)


def parse_signaling_handshake(doc: Mapping[str, Any]) -> SignalingHandshakeRequest:
    mt = MsgType.SIGNALING_HAND_SHAKE_REQ
    key, instance = _instance(doc, mt)
    stream = _req(doc, "rtms_stream_id", str, "rtms_stream_id", mt)
    if not stream:
        raise ProtocolError("rtms_stream_id is empty", field="rtms_stream_id", msg_type=mt)
    return SignalingHandshakeRequest(
        instance_id=instance,
        instance_key=key,
        stream_id=stream,
        signature=_req(doc, "signature", str, "signature", mt),
        protocol_version=_opt(doc, "protocol_version", int, "protocol_version", mt, PROTOCOL_VERSION),
        sequence=_opt(doc, "sequence", int, "sequence", mt),
        buffer_data=_opt(doc, "buffer_data", bool, "buffer_data", mt, True),
        client_agent=_opt(doc, "rtms_client_agent", str, "rtms_client_agent", mt),
    )


@dataclass(frozen=True, slots=True)
class DataHandshakeRequest:
    instance_id: str
    instance_key: str
    stream_id: str
    signature: str
    media_type: int
    media_params: Any
    sequence: int | None
    payload_encryption: bool


def parse_data_handshake(doc: Mapping[str, Any]) -> DataHandshakeRequest:
    mt = MsgType.DATA_HAND_SHAKE_REQ
    key, instance = _instance(doc, mt)
    return DataHandshakeRequest(
        instance_id=instance,
        instance_key=key,
        stream_id=_req(doc, "rtms_stream_id", str, "rtms_stream_id", mt),
        signature=_req(doc, "signature", str, "signature", mt),
        media_type=_req(doc, "media_type", int, "media_type", mt),
        media_params=doc.get("media_params"),
        sequence=_opt(doc, "sequence", int, "sequence", mt),
        payload_encryption=_opt(doc, "payload_encryption", bool, "payload_encryption", mt, False),
    )


@dataclass(frozen=True, slots=True)
class SignalingHandshakeResponse:
    status_code: int
    reason: str
    server_urls: Mapping[str, str]

    def media_url(self, kind: str) -> str | None:
        """URL for a kind: its own key(s) first, then ``all``."""
        for key in (*SERVER_URL_KEYS.get(kind, (kind,)), "all"):
            if key in self.server_urls:
                return self.server_urls[key]
        return None


def parse_signaling_handshake_response(doc: Mapping[str, Any]) -> SignalingHandshakeResponse:
    mt = MsgType.SIGNALING_HAND_SHAKE_RESP
    status = _req(doc, "status_code", int, "status_code", mt)
    reason = _opt(doc, "reason", str, "reason", mt, "")
    urls: dict[str, str] = {}
    if status == 0:
        server = _req(doc, "media_server", dict, "media_server", mt)
        raw = _req(server, "server_urls", dict, "media_server.server_urls", mt)
        for k, v in raw.items():
            urls[k] = _typed(v, str, f"media_server.server_urls.{k}", mt)
    return SignalingHandshakeResponse(status, reason, urls)


@dataclass(frozen=True, slots=True)
class DataHandshakeResponse:
    status_code: int
    reason: str
    media_params: MediaParams
    payload_encrypted: bool


def parse_data_handshake_response(doc: Mapping[str, Any]) -> DataHandshakeResponse:
    mt = MsgType.DATA_HAND_SHAKE_RESP
    status = _req(doc, "status_code", int, "status_code", mt)
    enc_key = "payload_encrypted" if "payload_encrypted" in doc else "payload_encryption"
    return DataHandshakeResponse(
        status_code=status,
        reason=_opt(doc, "reason", str, "reason", mt, ""),
        media_params=media_params_from_wire(doc.get("media_params")),
        payload_encrypted=_opt(doc, enc_key, bool, enc_key, mt, False),
    )


@dataclass(frozen=True, slots=True)
class Participant:
    user_id: int
    user_name: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """msg 6. ``participants`` for join/leave/video events; ``participant_info`` for ZCC."""

    event_type: int
    timestamp: int
    user_id: int | None = None
    user_name: str | None = None
    participants: tuple[Participant, ...] = ()
    participant_info: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def parse_event(doc: Mapping[str, Any]) -> Event:
    mt = MsgType.EVENT_UPDATE
    ev = _req(doc, "event", dict, "event", mt)
    etype = _req(ev, "event_type", int, "event.event_type", mt)
    ts_key = "timestamp" if "timestamp" in ev else "event_ts"  # ZCC events use event_ts
    ts = _opt(ev, ts_key, int, f"event.{ts_key}", mt, 0)
    participants = []
    raw_parts = _opt(ev, "participants", list, "event.participants", mt, [])
    for i, p in enumerate(raw_parts):
        p = _typed(p, dict, f"event.participants[{i}]", mt)
        uid = parse_user_id(p.get("user_id"), f"event.participants[{i}].user_id", mt)
        participants.append(Participant(uid, _opt(p, "user_name", str, f"event.participants[{i}].user_name", mt)))
    uid = parse_user_id(ev["user_id"], "event.user_id", mt) if ev.get("user_id") is not None else None
    info_key = "participant_info" if "participant_info" in ev else "paticipant_info"  # 2025 docs' typo
    info = _opt(ev, info_key, dict, f"event.{info_key}", mt)
    return Event(etype, ts, uid, _opt(ev, "user_name", str, "event.user_name", mt), tuple(participants), info, ev)


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """msg 8 (stream) or msg 9 (session). ``reason`` reads ``stop_reason`` or ``reason``."""

    msg_type: int
    state: int
    reason: int
    timestamp: int
    session_id: str | None = None


def parse_state_update(doc: Mapping[str, Any]) -> StateUpdate:
    mt = _req(doc, "msg_type", int, "msg_type", None)
    state = _req(doc, "state", int, "state", mt)
    key = "stop_reason" if "stop_reason" in doc else "reason"
    reason = _opt(doc, key, int, key, mt, 0)
    ts = normalize_timestamp_ms(_opt(doc, "timestamp", int, "timestamp", mt, 0))
    return StateUpdate(mt, state, reason, ts, _opt(doc, "rtms_session_id", str, "rtms_session_id", mt))


@dataclass(frozen=True, slots=True)
class MediaMessage:
    """msg 14-18 decoded in Python (the native parser's twin does the same without objects).

    ``data`` is decoded bytes for audio/video/share and the text for transcript/chat.
    """

    msg_type: int
    user_id: int
    user_name: str | None
    timestamp: int
    data: bytes | str
    length: int | None = None
    channel_id: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    language: int | None = None
    attribute: int | None = None


def parse_media(doc: Mapping[str, Any]) -> MediaMessage:
    mt = _req(doc, "msg_type", int, "msg_type", None)
    if mt not in MEDIA_MSG_TYPES:
        raise ProtocolError("not a media message", field="msg_type", msg_type=mt)
    content = _req(doc, "content", dict, "content", mt)
    raw_data = _req(content, "data", (str, dict), "content.data", mt)
    ts = _req(content, "timestamp", int, "content.timestamp", mt)
    uid = parse_user_id(content["user_id"], "content.user_id", mt) if content.get("user_id") is not None else 0
    length = _opt(content, "length", int, "content.length", mt)
    data: bytes | str
    if mt in (MsgType.MEDIA_DATA_TRANSCRIPT, MsgType.MEDIA_DATA_CHAT):
        data = raw_data if isinstance(raw_data, str) else orjson.dumps(raw_data).decode()
    else:
        if not isinstance(raw_data, str):
            raise ProtocolError("binary media data must be a base64 string", field="content.data", msg_type=mt)
        data = b64decode_strict(raw_data, "content.data", mt)
        if length is not None and length != len(data):
            raise ProtocolError(f"length {length} != decoded size {len(data)}", field="content.length", msg_type=mt)
    return MediaMessage(
        msg_type=mt,
        user_id=uid,
        user_name=_opt(content, "user_name", str, "content.user_name", mt),
        timestamp=ts,
        data=data,
        length=length,
        channel_id=_opt(content, "channel_id", str, "content.channel_id", mt),
        start_time=_opt(content, "start_time", int, "content.start_time", mt),
        end_time=_opt(content, "end_time", int, "content.end_time", mt),
        language=_opt(content, "language", int, "content.language", mt),
        attribute=_opt(content, "attribute", int, "content.attribute", mt),
    )
