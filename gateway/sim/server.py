"""A local RTMS server that plays Zoom (PROTOCOL.md 2-4, 6, 12; OFFICIAL_CLIENT.md 9a).

One :class:`Simulator` owns a signaling listener and a separate media listener (picows servers on
loopback, like production's separate hosts), a webhook emitter, and the streams it announced.
Each :class:`SimStream` checks handshakes like Zoom, paces media from a content timeline in real
time, runs keep-alives with the 3-missed rule, and exposes fault switches and records of what was
sent and what the client did, so tests can assert exact bytes.

Media clock: a stream starts "producing" at its ``rtms_started`` time. Audio, transcripts and chat
are delivered from per-kind cursors, so anything produced while no socket was ready (the startup
backlog, an interruption) arrives in a burst once the client is ready again, capped at 60 s.
Video and share are never buffered.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from .. import protocol
from ..errors import ProtocolError
from ..protocol import (
    AudioParams,
    EventType,
    MediaParams,
    MediaType,
    MsgType,
    Product,
    SessionState,
    Status,
    StatusProfile,
    StopReason,
    StreamState,
    WebhookKind,
)
from .load import LoadDriver
from .webhooks import WebhookEmitter

log = logging.getLogger("gateway.sim")

#: media kinds each product can stream (PROTOCOL.md 3.1, 9).
PRODUCT_KINDS: dict[Product, tuple[str, ...]] = {
    Product.MEETING: ("audio", "video", "deskshare", "transcript", "chat"),
    Product.WEBINAR: ("audio", "video", "deskshare", "transcript", "chat"),
    Product.SESSION: ("audio", "transcript"),
    Product.CONTACT_CENTER: ("audio", "transcript"),
    Product.PHONE: ("audio", "transcript"),
}
_NOT_SUPPORTED = {
    "audio": Status.AUDIO_NOT_SUPPORT,
    "video": Status.VIDEO_NOT_SUPPORT,
    "deskshare": Status.DESKSHARE_NOT_SUPPORT,
    "transcript": Status.TRANSCRIPT_NOT_SUPPORT,
    "chat": Status.CHAT_NOT_SUPPORT,
}
TICK_S = 0.020
INJECTIONS = ("malformed_json", "truncated", "bad_base64", "unknown_msg_type")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class SimConfig:
    """Everything that makes this simulator behave like one Zoom deployment or another."""

    host: str = "127.0.0.1"
    port: int = 0  # signaling listener
    media_port: int = 0  # media listener (separate, like production)
    client_id: str = "sim-client-id"
    client_secret: str = "sim-client-secret"
    webhook_secret: str = "sim-webhook-secret"
    webhook_url: str | None = None
    webhook_nested: bool = False
    webhook_duplicates: int = 1
    product: Product = Product.MEETING
    status_profile: StatusProfile = StatusProfile.B
    #: media kinds the app is scoped for; msg 2 lists only these (plus ``all``).
    scopes: tuple[str, ...] = ("audio", "video", "deskshare", "transcript", "chat")
    deskshare_key: str = "deskshare"
    chat_key: str = "chat"
    include_all_url: bool = True
    participants: int = 3
    seed: int = 0
    #: factory(participants, seed, product) -> content object (see gateway.sim.content.MeetingContent).
    content_factory: Callable[[int, int, Product], Any] | None = None
    keepalive_interval_s: float = protocol.KEEP_ALIVE_INTERVAL_S
    keepalive_only_when_idle: bool = False
    keepalive_max_missed: int = protocol.KEEP_ALIVE_MAX_MISSED
    #: scales every timer (keep-alive interval and reconnection windows) so tests run fast.
    time_scale: float = 1.0
    signaling_window_s: float = protocol.SIGNALING_RECONNECT_WINDOW_S
    media_window_profile: str = "2026"  # 65 s; "2025": 30 s
    keepalive_stop_reason: int = StopReason.STOP_BC_KEEP_ALIVE_TIMEOUT
    window_stop_reason: int = StopReason.STOP_BC_AWAIT_RECONNECTION_TIMEOUT
    duplicate_signaling: str = "reject"  # or "evict"
    close_after_reject: bool = True
    session_reason_key: str = "stop_reason"  # or "reason"
    handshake_timeout_s: float = 10.0  # close sockets that send no msg 1/3 within this (scaled)
    stream_state_ts_seconds: bool = False  # sloppiness: msg 20 timestamp in seconds, like the docs' example
    user_id_as_string: bool = False  # sloppiness: events carry user_id as a string
    filter_events_by_subscription: bool = True
    events_grace_s: float = 0.1  # after the first msg 7, before timeline events flow
    reject_automatic_subscriptions: bool = True
    send_stream_active: bool = True  # msg 8 ACTIVE before msg 9 STARTED
    stream_state_on_pause: bool = False  # also msg 8 PAUSED/RESUMED
    session_stop_on_terminate: bool = True
    terminate_close_delay_s: float = 0.5  # after msg 8 TERMINATED, close sockets the client left open
    payload_encrypted: bool = False
    send_length: bool = True
    deskshare_image_fps_max: int = 5
    audio_buffer_s: float = protocol.STARTUP_AUDIO_BUFFER_S
    record_payloads: bool = True
    #: serve wss:// with this server-side ``ssl.SSLContext`` (production is TLS-only; tests use ws://).
    ssl_context: Any = None
    #: host name put in the URLs (e.g. "localhost" for wss with a hostname certificate); default: ``host``.
    url_host: str | None = None

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    @property
    def media_window_s(self) -> float:
        return protocol.MEDIA_RECONNECT_WINDOW_S[self.media_window_profile]


@dataclass
class SentRecord:
    """What the simulator sent on one stream, for exact assertions."""

    audio: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    video: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    share: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    chats: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    signaling: list[dict[str, Any]] = field(default_factory=list)
    media_counts: dict[str, int] = field(default_factory=dict)
    #: audio packets the faults withheld / sent twice / sent late, as (user_id, timestamp);
    #: ``audio_reordered`` entries are (user_id, timestamp, packets of that user sent before it).
    audio_dropped: list[tuple[int, int]] = field(default_factory=list)
    audio_duplicated: list[tuple[int, int]] = field(default_factory=list)
    audio_reordered: list[tuple[int, int, int]] = field(default_factory=list)

    def audio_bytes(self, user_id: int | None = None) -> bytes:
        """All audio payloads sent (for one user, or every user in send order per user)."""
        users = [user_id] if user_id is not None else sorted(self.audio)
        return b"".join(p for u in users for _, p in self.audio.get(u, ()))

    def transcript_texts(self) -> list[str]:
        return [t["text"] for t in self.transcripts]

    def signaling_types(self) -> list[int]:
        return [m["msg_type"] for m in self.signaling]


@dataclass
class ClientRecord:
    """What the client did on one stream."""

    messages: list[tuple[str, int]] = field(default_factory=list)  # (socket label, msg_type)
    signaling_handshakes: int = 0
    signaling_accepted: int = 0
    signaling_rejected: list[int] = field(default_factory=list)
    media_handshakes: list[tuple[str, int]] = field(default_factory=list)  # (kinds label, status)
    ready_acks_signaling: int = 0
    ready_acks_media: int = 0
    keepalive_sent: dict[str, int] = field(default_factory=dict)
    keepalive_accepted: dict[str, int] = field(default_factory=dict)
    keepalive_rejected: dict[str, int] = field(default_factory=dict)
    subscriptions: set[int] = field(default_factory=set)
    rejected_subscriptions: list[int] = field(default_factory=list)
    buffer_data: bool | None = None
    reconnects: list[float] = field(default_factory=list)  # loop time of each signaling handshake after the first
    unparseable: int = 0

    def types(self, label: str | None = None) -> list[int]:
        return [mt for lab, mt in self.messages if label is None or lab == label]


class Faults:
    """Per-stream switches read by the simulator on every relevant step."""

    def __init__(self) -> None:
        self.send_keepalives = True
        self.ignore_client = False
        self.reject_signaling: list[int] = []  # status codes for the next signaling handshakes
        self.reject_media: list[tuple[str | None, int]] = []  # (kind or None = any, status)
        self.refuse_other_listeners = False
        self.audio = AudioFaults()


@dataclass
class AudioFaults:
    """Per-packet audio faults, keyed by ``(user_id, media timestamp ms)`` or drawn by a seeded RNG.

    ``delay`` holds a packet back until that many later packets *of the same user* went out
    (``swap`` = delay 1: it trades places with the next one). Every fault applied is recorded in
    :class:`SentRecord` (``audio_dropped``, ``audio_duplicated``, ``audio_reordered``), so a test
    knows exactly which packets were withheld, sent twice or sent late. A packet still held when
    the stream ends is never sent (it counts as reordered, not dropped; tests should end with a
    few clean packets).
    """

    drop: set[tuple[int, int]] = field(default_factory=set)
    duplicate: set[tuple[int, int]] = field(default_factory=set)
    swap: set[tuple[int, int]] = field(default_factory=set)
    delay: dict[tuple[int, int], int] = field(default_factory=dict)
    #: probabilities per packet (exclusive, checked in this order), drawn from ``random.Random(seed)``.
    drop_p: float = 0.0
    duplicate_p: float = 0.0
    reorder_p: float = 0.0
    #: a randomly reordered packet is delayed by 1..max_delay packets of its user.
    max_delay: int = 3
    seed: int = 0
    _rng: random.Random | None = field(default=None, repr=False)

    def decide(self, key: tuple[int, int]) -> tuple[str, int]:
        """``("send"|"drop"|"duplicate"|"delay", n)`` for one packet."""
        if key in self.drop:
            return "drop", 0
        if key in self.duplicate:
            return "duplicate", 0
        if key in self.swap:
            return "delay", 1
        if key in self.delay:
            return "delay", max(1, self.delay[key])
        if self.drop_p or self.duplicate_p or self.reorder_p:
            if self._rng is None:
                self._rng = random.Random(self.seed)
            r = self._rng.random()
            if r < self.drop_p:
                return "drop", 0
            if r < self.drop_p + self.duplicate_p:
                return "duplicate", 0
            if r < self.drop_p + self.duplicate_p + self.reorder_p:
                return "delay", self._rng.randint(1, max(1, self.max_delay))
        return "send", 0


class _Conn(WSListener):
    """One accepted WebSocket (signaling or media)."""

    def __init__(self, sim: Simulator, listener: int, role: str, path: str) -> None:
        super().__init__()
        self.sim = sim
        self.listener = listener
        self.role = role
        self.path = path
        self.transport: WSTransport | None = None
        self.stream: SimStream | None = None
        self.kinds: tuple[str, ...] = ()
        self.is_all = False
        self.label = role
        self.handshaken = False
        self.ready = False
        self.alive = False
        self.server_closed = False
        self.ka_pending: list[int] = []
        self.ka_unanswered = 0
        self.ka_sequence = 0
        self.ka_task: asyncio.Task[None] | None = None
        self._hs_timer: asyncio.TimerHandle | None = None
        self.last_send = 0.0

    # picows callbacks
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.alive = True
        self.sim._conns.add(self)
        cfg = self.sim.config
        self._hs_timer = self.sim.loop.call_later(cfg.scaled(cfg.handshake_timeout_s), self._handshake_timeout)

    def _handshake_timeout(self) -> None:
        """A socket that never completes its handshake is closed (1000), as a real server would."""
        if not self.handshaken and self.alive:
            self.sim.idle_closed += 1
            self.close(WSCloseCode.OK, b"no handshake")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mt = frame.msg_type
        if mt == WSMsgType.TEXT or mt == WSMsgType.BINARY:
            try:
                self.sim._on_message(self, frame.get_payload_as_bytes())
            except Exception:  # one bad step must not kill the connection silently
                log.exception("simulator failed handling a %s message", self.label)
        elif mt == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.alive = False
        if self._hs_timer is not None:
            self._hs_timer.cancel()
        if self.ka_task is not None:
            self.ka_task.cancel()
        self.sim._conns.discard(self)
        if self.stream is not None:
            self.stream._on_disconnect(self)

    # sending
    def send(self, msg: dict[str, Any]) -> None:
        if self.alive and self.transport is not None:
            self.transport.send(WSMsgType.TEXT, protocol.encode(msg))
            self.last_send = self.sim.loop.time()

    def send_raw(self, data: bytes, msg_type: WSMsgType = WSMsgType.TEXT) -> None:
        if self.alive and self.transport is not None:
            self.transport.send(msg_type, data)
            self.last_send = self.sim.loop.time()

    def close(self, code: WSCloseCode = WSCloseCode.OK, reason: bytes = b"") -> None:
        self.server_closed = True
        if self.alive and self.transport is not None:
            self.transport.send_close(code, reason)
            self.transport.disconnect()

    def abort(self) -> None:
        """TCP drop without a close frame (the official client then rejoins)."""
        self.server_closed = True
        if self.alive and self.transport is not None:
            self.transport.disconnect(graceful=False)


@dataclass
class _Listener:
    signaling: asyncio.Server
    media: asyncio.Server
    signaling_port: int
    media_port: int


class SimStream:
    """One RTMS stream: handshakes, media pacing, keep-alives, states, faults and records."""

    def __init__(
        self, sim: Simulator, *, stream_id: str, instance_id: str, product: Product, content: Any, started_ms: int, backlog_ms: int, load: bool = False
    ) -> None:
        self.sim = sim
        self.cfg = sim.config
        self.stream_id = stream_id
        self.instance_id = instance_id
        self.product = product
        self.content = content
        self.started_ms = started_ms  # the rtms_started event time: media time 0
        self._mono0 = sim.loop.time() - backlog_ms / 1000.0
        self.listener = 0
        self.media_listener: int | None = None  # None: the media listener paired with the signaling one
        self.state = StreamState.INACTIVE
        self.session_state = SessionState.INACTIVE
        self.session_id = secrets.token_hex(16)
        self.extra_sessions: dict[str, SessionState] = {}  # further app users' sessions on the same stream
        self.paused = False
        self.terminated = False
        self.stop_reason: int | None = None
        self.signaling: _Conn | None = None
        self.media: dict[str, _Conn] = {}
        self.all_conn: _Conn | None = None
        self.params = MediaParams()
        self.faults = Faults()
        self.sent = SentRecord()
        self.client = ClientRecord()
        self.video_subscription: int | None = None
        self.video_on: set[int] = set()
        self.sharing = False
        self._cursor = {"audio": 0, "transcript": 0, "chat": 0}
        self._held_audio: dict[int, list[list[Any]]] = {}  # per user: [packets still to wait, ts, payload, msg]
        self._frame_idx = {"video": 0, "deskshare": 0}
        self._events_cursor = 0
        self._events_started = False
        self._signaling_timer: asyncio.TimerHandle | None = None
        self._media_timers: dict[str, asyncio.TimerHandle] = {}
        self.load = load  # audio comes from the simulator's LoadDriver (pre-built frames), no per-stream pump
        self._pump_task: asyncio.Task[None] | None = None if load else sim.loop.create_task(self._pump())
        self._session_announced = False
        self._ready_once = False
        self.finished = asyncio.Event()

    # ------------------------------------------------------------------ addresses & webhooks

    @property
    def signaling_url(self) -> str:
        return self.sim.signaling_url(self.listener)

    def webhook_body(self, kind: WebhookKind, *, stop_reason: int | None = None, server_urls: str | None = None) -> dict[str, Any]:
        return protocol.build_webhook(
            self.product,
            kind,
            instance_id=self.instance_id,
            stream_id=self.stream_id,
            event_ts=now_ms() if kind is not WebhookKind.STARTED else self.started_ms,
            server_urls=(server_urls or self.signaling_url) if kind is WebhookKind.STARTED else None,
            stop_reason=stop_reason,
            nested=self.cfg.webhook_nested,
        )

    def send_webhook(self, kind: WebhookKind, *, stop_reason: int | None = None, **post_kwargs: Any) -> asyncio.Task[Any]:
        return self.sim.webhooks.post_soon(self.webhook_body(kind, stop_reason=stop_reason), **post_kwargs)

    # ------------------------------------------------------------------ clocks

    def elapsed_ms(self) -> int:
        return int((self.sim.loop.time() - self._mono0) * 1000)

    def _code(self, status: Status | int) -> int:
        return protocol.status_code(status, self.cfg.status_profile) if isinstance(status, Status) else int(status)

    # ------------------------------------------------------------------ signaling handshake

    def _signaling_handshake(self, conn: _Conn, req: protocol.SignalingHandshakeRequest, doc: dict[str, Any]) -> None:
        c = self.client
        c.signaling_handshakes += 1
        if c.signaling_handshakes > 1:
            c.reconnects.append(self.sim.loop.time())
        reject: tuple[Status | int, str] | None = None
        if req.instance_id != self.instance_id:
            reject = (Status.INVALID_STREAM_ID, "meeting id does not match the stream")
        elif req.signature != protocol.handshake_signature(self.cfg.client_id, self.cfg.client_secret, req.instance_id, req.stream_id):
            reject = (Status.INVALID_SIGNATURE, "invalid signature")
        elif self.terminated:
            reject = (Status.INVALID_STREAM_ID, "stream has ended")
        elif self.faults.refuse_other_listeners and conn.listener != self.listener:
            reject = (Status.INVALID_STREAM_ID, "stream moved to another server")
        elif self.faults.reject_signaling:
            reject = (self.faults.reject_signaling.pop(0), "injected rejection")
        elif self.signaling is not None and self.signaling.alive:
            if self.cfg.duplicate_signaling == "reject":
                reject = (Status.DUPLICATE_SIGNAL_REQUEST, "duplicate signal request")
            else:  # evict the incumbent (the skill docs' "kicks out the first")
                old = self.signaling
                self.signaling = None
                self._close_media(abort=False)
                old.close(WSCloseCode.OK, b"evicted by a new signaling connection")
        if reject is not None:
            code = self._code(reject[0])
            c.signaling_rejected.append(code)
            conn.send(protocol.build_signaling_handshake_response(code, reject[1], sequence=req.sequence or 0))
            if self.cfg.close_after_reject:
                conn.close(WSCloseCode.OK, b"handshake rejected")
            return
        # accepted
        c.signaling_accepted += 1
        conn.stream = self
        conn.handshaken = True
        self.signaling = conn
        if c.buffer_data is None:
            c.buffer_data = req.buffer_data
            if not req.buffer_data:  # drop the startup backlog (audio/transcript/chat)
                el = self.elapsed_ms()
                for kind in self._cursor:
                    self._cursor[kind] = el
        if self._signaling_timer is not None:
            self._signaling_timer.cancel()
            self._signaling_timer = None
        for timer in self._media_timers.values():
            timer.cancel()
        self._media_timers.clear()
        self.state = StreamState.ACTIVE if self._ready_once else self.state
        self._send_sig(protocol.build_signaling_handshake_response(0, "", server_urls=self.sim.media_urls(conn.listener if self.media_listener is None else self.media_listener, self), sequence=req.sequence or 0))
        self._send_sig(protocol.build_event(EventType.FIRST_PACKET_TIMESTAMP, self.started_ms))
        conn.ka_task = self.sim.loop.create_task(self._keepalive(conn))

    def _send_sig(self, msg: dict[str, Any]) -> None:
        if self.signaling is not None and self.signaling.alive:
            self.signaling.send(msg)
            self.sent.signaling.append(msg)

    # ------------------------------------------------------------------ media handshake

    def _media_handshake(self, conn: _Conn, req: protocol.DataHandshakeRequest) -> None:
        reject: tuple[Status | int, str] | None = None
        mask = req.media_type
        kinds: list[str] = []
        supported = [k for k in PRODUCT_KINDS[self.product] if k in self.cfg.scopes]
        if req.instance_id != self.instance_id:
            reject = (Status.INVALID_STREAM_ID, "meeting id does not match the stream")
        elif req.signature != protocol.handshake_signature(self.cfg.client_id, self.cfg.client_secret, req.instance_id, req.stream_id):
            reject = (Status.INVALID_SIGNATURE, "invalid signature")
        elif self.terminated or self.signaling is None or not self.signaling.alive:
            reject = (Status.INVALID_STREAM_ID, "no signaling connection for this stream")
        elif mask <= 0 or mask > 63 or (mask & MediaType.ALL and mask != MediaType.ALL):
            reject = (Status.MEDIA_TYPE_INVALID_VALUE, f"invalid media_type {mask}")
        elif mask == MediaType.ALL:
            kinds = supported
        else:
            for kind in protocol.media_kinds(mask):
                if kind not in supported:
                    reject = (_NOT_SUPPORTED[kind], f"{kind} is not supported or not in scope")
                    break
                kinds.append(kind)
        if reject is None:
            if self.all_conn is not None and self.all_conn.alive:
                reject = (Status.ALL_CONNECTION_EXIST, "an 'all' media connection exists")
            elif mask == MediaType.ALL and any(c.alive for c in self.media.values()):
                reject = (Status.DUPLICATE_MEDIA_CONNECTION, "media connections exist")
            elif any(k in self.media and self.media[k].alive for k in kinds):
                reject = (Status.DUPLICATE_MEDIA_CONNECTION, "duplicate media connection")
        negotiated: MediaParams | None = None
        if reject is None:
            try:
                negotiated = protocol.negotiate_media_params(req.media_params, kinds, deskshare_image_fps_max=self.cfg.deskshare_image_fps_max)
            except protocol.ParamsRejected as exc:
                reject = (exc.status, str(exc))
        if reject is None:
            for i, (kind, status) in enumerate(self.faults.reject_media):
                if kind is None or kind in kinds:
                    del self.faults.reject_media[i]
                    reject = (status, "injected rejection")
                    break
        label = "media:" + ("all" if mask == MediaType.ALL else "+".join(kinds) or str(mask))
        if reject is not None:
            code = self._code(reject[0])
            self.client.media_handshakes.append((label, code))
            conn.send(protocol.build_data_handshake_response(code, reject[1], sequence=req.sequence or 0, payload_encrypted=self.cfg.payload_encrypted))
            if self.cfg.close_after_reject:
                conn.close(WSCloseCode.OK, b"handshake rejected")
            return
        assert negotiated is not None
        self.client.media_handshakes.append((label, 0))
        conn.stream = self
        conn.kinds = tuple(kinds)
        conn.is_all = mask == MediaType.ALL
        conn.label = label
        conn.handshaken = True
        if conn.is_all:
            self.all_conn = conn
        el = self.elapsed_ms()
        for kind in kinds:
            self.media[kind] = conn
            setattr(self.params, kind, getattr(negotiated, kind))
            timer = self._media_timers.pop(kind, None)
            if timer is not None:
                timer.cancel()
            if kind == "audio":
                rate = negotiated.audio.send_rate  # type: ignore[union-attr]
                self._cursor["audio"] -= self._cursor["audio"] % rate
            elif kind in self._frame_idx:
                self._frame_idx[kind] = self._next_frame(kind, el)
        conn.send(
            protocol.build_data_handshake_response(0, "", media_params=negotiated, sequence=req.sequence or 0, payload_encrypted=self.cfg.payload_encrypted)
        )
        conn.ka_task = self.sim.loop.create_task(self._keepalive(conn))

    def _next_frame(self, kind: str, elapsed: int) -> int:
        fps = self._fps(kind)
        return -(-elapsed * fps // 1000)

    def _fps(self, kind: str) -> int:
        p = self.params.video if kind == "video" else self.params.deskshare
        return p.fps if p is not None else 1

    # ------------------------------------------------------------------ client messages after the handshake

    def _on_client_message(self, conn: _Conn, doc: dict[str, Any]) -> None:
        mt = doc["msg_type"]
        self.client.messages.append((conn.label, mt))
        if self.faults.ignore_client:
            return
        if mt == MsgType.KEEP_ALIVE_RESP:
            ts = doc.get("timestamp")
            if ts in conn.ka_pending:
                conn.ka_pending.clear()
                conn.ka_unanswered = 0
                self.client.keepalive_accepted[conn.label] = self.client.keepalive_accepted.get(conn.label, 0) + 1
            else:
                self.client.keepalive_rejected[conn.label] = self.client.keepalive_rejected.get(conn.label, 0) + 1
            return
        if conn.role == "media":
            if mt == MsgType.CLIENT_READY_ACK:
                self.client.ready_acks_media += 1
            return
        now = now_ms()
        if mt == MsgType.CLIENT_READY_ACK:
            self.client.ready_acks_signaling += 1
            self._on_ready()
        elif mt == MsgType.EVENT_SUBSCRIPTION:
            for ev in doc.get("events") or ():
                if not isinstance(ev, dict) or not isinstance(ev.get("event_type"), int):
                    continue
                et = ev["event_type"]
                if self.cfg.reject_automatic_subscriptions and et in protocol.AUTOMATIC_EVENTS:
                    self.client.rejected_subscriptions.append(et)
                elif ev.get("subscribe", True):
                    self.client.subscriptions.add(et)
                else:
                    self.client.subscriptions.discard(et)
        elif mt == MsgType.SESSION_STATE_REQ:
            sid = doc.get("rtms_session_id")
            if sid == self.session_id:
                self._send_sig(protocol.build_session_state_response(sid, self.session_state, now))
            elif isinstance(sid, str) and sid in self.extra_sessions:
                self._send_sig(protocol.build_session_state_response(sid, self.extra_sessions[sid], now))
            else:
                self._send_sig(protocol.build_session_state_response(str(sid), SessionState.INACTIVE, now, status=self._code(Status.INVALID_SESSION_ID)))
        elif mt == MsgType.STREAM_STATE_REQ:
            ts = now // 1000 if self.cfg.stream_state_ts_seconds else now  # the docs' example is in seconds
            self._send_sig(protocol.build_stream_state_response(self.stream_id, self.state, ts))
        elif mt == MsgType.STREAM_CLOSE_REQ:
            self._send_sig(protocol.build_stream_close_response(self.stream_id, now))
            self.terminate(StopReason.STOP_BC_RECEIVER_REQUEST_CLOSE, session_stop=False)
        elif mt == MsgType.VIDEO_SUBSCRIPTION_REQ:
            self._video_subscription(doc, now)

    def _video_subscription(self, doc: dict[str, Any], now: int) -> None:
        try:
            uid = protocol.parse_user_id(doc.get("user_id"))
        except ProtocolError:
            self._send_sig(protocol.build_video_subscription_response(0, now, self._code(Status.INVALID_VIDEO_PARAMS), "bad user_id"))
            return
        subscribe = doc.get("subscribe", True) is not False
        video = self.params.video
        if video is None or video.data_opt != protocol.DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM:
            self._send_sig(protocol.build_video_subscription_response(uid, now, self._code(Status.INVALID_VIDEO_DATA_OPT), "video data_opt is not 4"))
            return
        if not subscribe:
            if self.video_subscription == uid:
                self.video_subscription = None
            self._send_sig(protocol.build_video_subscription_response(uid, now, 0, "OK", subscribe=False))
            return
        if self.video_subscription == uid:
            self._send_sig(protocol.build_video_subscription_response(uid, now, self._code(Status.DUPLICATE_VIDEO_SUBSCRIPTION), "already subscribed"))
            return
        self.video_subscription = uid  # replaces any previous subscription
        self._send_sig(protocol.build_video_subscription_response(uid, now, 0, "OK", subscribe=True))

    def _on_ready(self) -> None:
        """msg 7: every handshaken media socket becomes ready; the session starts on the first."""
        for conn in {*self.media.values()}:
            if conn.alive and conn.handshaken and not conn.ready:
                conn.ready = True
                self._after_ready(conn)
        first = not self._ready_once
        self._ready_once = True
        if first:  # the timeline's events start once the client is ready and had time to subscribe (msg 5 follows msg 7)
            self.sim.loop.call_later(self.cfg.events_grace_s, self._start_events)
        self.state = StreamState.ACTIVE
        if first and not self._session_announced:
            self._session_announced = True
            now = now_ms()
            if self.cfg.send_stream_active:
                self._send_sig(protocol.build_stream_state_update(StreamState.ACTIVE, 0, now))
            self.session_state = SessionState.STARTED
            self._send_sig(protocol.build_session_state_update(SessionState.STARTED, self.session_id, now, reason_key=self.cfg.session_reason_key))

    def _start_events(self) -> None:
        self._events_started = True

    def _after_ready(self, conn: _Conn) -> None:
        el = self.elapsed_ms()
        for kind in conn.kinds:
            if kind in self._frame_idx:  # video/share: never buffered
                self._frame_idx[kind] = self._next_frame(kind, el)

    # ------------------------------------------------------------------ keep-alives

    async def _keepalive(self, conn: _Conn) -> None:
        interval = self.cfg.scaled(self.cfg.keepalive_interval_s)
        loop = self.sim.loop
        try:
            while conn.alive:
                await asyncio.sleep(interval)
                if not conn.alive:
                    return
                if conn.ka_unanswered >= self.cfg.keepalive_max_missed:
                    self._keepalive_timeout(conn)
                    return
                if not self.faults.send_keepalives:
                    continue
                if self.cfg.keepalive_only_when_idle and loop.time() - conn.last_send < interval:
                    continue
                ts = now_ms()
                conn.ka_pending.append(ts)
                conn.ka_unanswered += 1
                self.client.keepalive_sent[conn.label] = self.client.keepalive_sent.get(conn.label, 0) + 1
                conn.ka_sequence += 1
                msg = protocol.build_keep_alive_request(ts, conn.ka_sequence)
                if conn.role == "signaling":
                    self._send_sig(msg)
                else:
                    conn.send(msg)
        except asyncio.CancelledError:
            pass

    def _keepalive_timeout(self, conn: _Conn) -> None:
        log.info("stream %s: %s missed %d keep-alives", self.stream_id, conn.label, conn.ka_unanswered)
        if conn.role == "signaling":
            self.interrupt_signaling(abort=False, end_reason=self.cfg.keepalive_stop_reason)
        else:
            self._media_lost(conn, close=True, end_reason=self.cfg.keepalive_stop_reason)

    # ------------------------------------------------------------------ losses, interruptions, ends

    def _on_disconnect(self, conn: _Conn) -> None:
        if conn.server_closed or self.terminated or not conn.handshaken:
            return
        if conn is self.signaling:
            self.interrupt_signaling(abort=True)
        elif conn.role == "media":
            self._media_lost(conn, close=False)

    def _close_media(self, *, abort: bool) -> None:
        for conn in {*self.media.values()}:
            if abort:
                conn.abort()
            else:
                conn.close()
        self.media.clear()
        self.all_conn = None

    def interrupt_signaling(self, *, abort: bool = True, end_reason: int | None = None) -> None:
        """Signaling lost: drop signaling and media, send ``*.rtms_interrupted``, wait the window, end."""
        if self.terminated:
            return
        sig, self.signaling = self.signaling, None
        if sig is not None:
            if abort:
                sig.abort()
            else:
                sig.close(WSCloseCode.OK, b"keep-alive timeout")
        self._close_media(abort=abort)
        self.state = StreamState.INTERRUPTED
        self.send_webhook(WebhookKind.INTERRUPTED)
        reason = end_reason if end_reason is not None else self.cfg.window_stop_reason
        if self._signaling_timer is not None:
            self._signaling_timer.cancel()
        self._signaling_timer = self.sim.loop.call_later(self.cfg.scaled(self.cfg.signaling_window_s), self.terminate, reason)

    def _media_lost(self, conn: _Conn, *, close: bool, end_reason: int | None = None) -> None:
        if close:
            conn.abort()
        kinds = tuple(k for k in conn.kinds if self.media.get(k) is conn)
        if not kinds:  # a stale socket already replaced by a newer one
            return
        for kind in kinds:
            del self.media[kind]
        if self.all_conn is conn:
            self.all_conn = None
        if self.signaling is None or not self.signaling.alive:
            return
        now = now_ms()
        mask = int(MediaType.ALL) if conn.is_all else sum(int(protocol.MEDIA_KINDS[k][0]) for k in kinds)
        self._send_sig(protocol.build_event(EventType.MEDIA_CONNECTION_INTERRUPTED, now, media_type=mask))
        self._send_sig(protocol.build_stream_state_update(StreamState.INTERRUPTED, StopReason.STOP_BC_DATA_CONNECTION_INTERRUPTED, now))
        reason = end_reason if end_reason is not None else self.cfg.window_stop_reason
        window = self.cfg.scaled(self.cfg.media_window_s)
        for kind in kinds:
            self._media_timers[kind] = self.sim.loop.call_later(window, self.terminate, reason)

    def terminate(self, reason: int = StopReason.STOP_BC_MEETING_ENDED, *, session_stop: bool | None = None, webhook: bool = True) -> None:
        """End the stream: msg 9 STOPPED (optional), msg 8 TERMINATED, close everything, ``*.rtms_stopped``."""
        if self.terminated:
            return
        self.terminated = True
        self.stop_reason = int(reason)
        now = now_ms()
        if session_stop is None:
            session_stop = self.cfg.session_stop_on_terminate
        if session_stop and self._session_announced:
            self.session_state = SessionState.STOPPED
            self._send_sig(protocol.build_session_state_update(SessionState.STOPPED, self.session_id, now, int(reason), reason_key=self.cfg.session_reason_key))
        self.state = StreamState.TERMINATED
        self._send_sig(protocol.build_stream_state_update(StreamState.TERMINATED, int(reason), now))
        for timer in (*self._media_timers.values(), self._signaling_timer):
            if timer is not None:
                timer.cancel()
        self._media_timers.clear()
        # The official client closes every socket itself on TERMINATED; closing first would make
        # it report 960 ("server closed") instead of the stop reason. Close stragglers later.
        conns = [c for c in (self.signaling, *self.media.values()) if c is not None]
        for conn in conns:
            conn.server_closed = True
        self.media.clear()
        self.all_conn = None
        self.sim.loop.call_later(self.cfg.terminate_close_delay_s, _close_all, conns)
        if self._pump_task is not None:
            self._pump_task.cancel()
        if webhook:
            self.send_webhook(WebhookKind.STOPPED, stop_reason=int(reason))
        self.finished.set()

    # ------------------------------------------------------------------ session pause/resume

    def pause(self) -> None:
        """Host paused RTMS: msg 9 PAUSED (and optionally msg 8 PAUSED); no media until resume."""
        if self.paused or self.terminated:
            return
        self.paused = True
        now = now_ms()
        self.session_state = SessionState.PAUSED
        self._send_sig(protocol.build_session_state_update(SessionState.PAUSED, self.session_id, now, reason_key=self.cfg.session_reason_key))
        if self.cfg.stream_state_on_pause:
            self._send_sig(protocol.build_stream_state_update(StreamState.PAUSED, 0, now))

    def resume(self) -> None:
        if not self.paused or self.terminated:
            return
        self.paused = False
        now = now_ms()
        el = self.elapsed_ms()
        rate = self.params.audio.send_rate if self.params.audio is not None else 20
        self._cursor["audio"] = el - el % rate  # media captured while paused is not delivered
        self._cursor["transcript"] = self._cursor["chat"] = el
        for kind in self._frame_idx:
            self._frame_idx[kind] = self._next_frame(kind, el)
        self.session_state = SessionState.RESUMED
        self._send_sig(protocol.build_session_state_update(SessionState.RESUMED, self.session_id, now, reason_key=self.cfg.session_reason_key))
        if self.cfg.stream_state_on_pause:
            self._send_sig(protocol.build_stream_state_update(StreamState.RESUMED, 0, now))

    # ------------------------------------------------------------------ fault switches

    def abort_media(self, kind: str = "audio") -> None:
        """TCP-drop the media socket carrying ``kind``; the server reacts as to a lost media connection."""
        conn = self.media.get(kind)
        if conn is not None:
            self._media_lost(conn, close=True)

    def drop_signaling(self, *, abort: bool = True) -> None:
        """Drop signaling (TCP abort by default), then ``*.rtms_interrupted`` and the reconnection window."""
        self.interrupt_signaling(abort=abort)

    def add_session(self) -> str:
        """Another app user starts RTMS on this stream: msg 9 STARTED with a new ``rtms_session_id``."""
        sid = secrets.token_hex(16)
        self.extra_sessions[sid] = SessionState.STARTED
        self._send_sig(protocol.build_session_state_update(SessionState.STARTED, sid, now_ms(), reason_key=self.cfg.session_reason_key))
        return sid

    def stop_session(self, session_id: str, reason: int = StopReason.STOP_BC_USER_TRIGGERED) -> None:
        """One extra session stops (msg 9 STOPPED); the stream and its media go on."""
        self.extra_sessions[session_id] = SessionState.STOPPED
        self._send_sig(protocol.build_session_state_update(SessionState.STOPPED, session_id, now_ms(), int(reason), reason_key=self.cfg.session_reason_key))

    def send_state(self, state: int, reason: int = 0, *, session: bool = False) -> None:
        """Send any msg 8 (stream) or, with ``session``, msg 9 state update without changing anything."""
        now = now_ms()
        if session:
            self._send_sig(protocol.build_session_state_update(state, self.session_id, now, reason, reason_key=self.cfg.session_reason_key))
        else:
            self._send_sig(protocol.build_stream_state_update(state, reason, now))

    def send_signaling_raw(self, data: dict[str, Any] | bytes) -> None:
        """Anything on signaling: unknown msg_types (23-27, > 29), odd shapes, broken JSON."""
        if self.signaling is None or not self.signaling.alive:
            raise ValueError("no signaling connection")
        if isinstance(data, dict):
            self._send_sig(data)
        else:
            self.signaling.send_raw(data)

    def set_camera(self, user_id: int, on: bool) -> None:
        """Turn a participant's camera on or off now: PARTICIPANT_VIDEO_ON/OFF (event 8/9) to the
        client if it subscribed to it, with the data_opt 4 consequences (2.15: video stops)."""
        etype = EventType.PARTICIPANT_VIDEO_ON if on else EventType.PARTICIPANT_VIDEO_OFF
        fields_: dict[str, Any] = {"participants": [{"user_id": int(user_id)}]}
        self._track_event(etype, fields_)
        if self.signaling is None or not self.signaling.alive:
            return
        if self.cfg.filter_events_by_subscription and etype not in self.client.subscriptions:
            return
        msg = protocol.build_event(etype, now_ms(), **(_stringify_ids(fields_) if self.cfg.user_id_as_string else fields_))
        self._send_sig(msg)
        self.sent.events.append(msg["event"])

    def reject_next_signaling(self, status: Status | int) -> None:
        self.faults.reject_signaling.append(self._code(status))

    def reject_next_media(self, status: Status | int, kind: str | None = None) -> None:
        self.faults.reject_media.append((kind, self._code(status)))

    def inject(self, what: str, kind: str = "audio") -> None:
        """Send a malformed frame on the media socket carrying ``kind`` (see :data:`INJECTIONS`)."""
        conn = self.media.get(kind)
        if conn is None:
            raise ValueError(f"no media socket for {kind}")
        mt = protocol.MEDIA_KINDS[kind][1]
        good = protocol.encode(protocol.build_media(mt, data=b"\x00\x01" * 8, timestamp=now_ms(), user_id=0, user_name=""))
        if what == "malformed_json":
            conn.send_raw(b'{"msg_type": 14, "content": {"data": ')
        elif what == "truncated":
            conn.send_raw(good[: len(good) // 2])
        elif what == "bad_base64":
            conn.send_raw(protocol.encode({"msg_type": int(mt), "content": {"user_id": 0, "user_name": "", "data": "!!not*base64!!", "timestamp": now_ms()}}))
        elif what == "unknown_msg_type":
            conn.send_raw(protocol.encode({"msg_type": 99, "content": {"data": "x"}}))
        else:
            raise ValueError(f"unknown injection {what!r}; one of {INJECTIONS}")

    def send_duplicate_started(self, count: int = 1, *, delay_s: float = 0.0) -> None:
        """A retried/duplicated ``rtms_started`` for this (already announced) stream, optionally late."""
        self.send_webhook(WebhookKind.STARTED, duplicates=count, delay_s=delay_s)

    async def move_media(self) -> None:
        """Media URL failover without a webhook: the next msg 2 points media at the other listener."""
        current = self.listener if self.media_listener is None else self.media_listener
        target = 1 if current == 0 else 0
        await self.sim._ensure_listener(target)
        self.media_listener = target

    async def failover(self, *, refuse_old: bool = True) -> None:
        """RTMS server failover: drop every socket, move to a second listener, send a new ``rtms_started``."""
        target = 1 if self.listener == 0 else 0
        await self.sim._ensure_listener(target)
        for conn in (self.signaling, *self.media.values()):
            if conn is not None:
                conn.abort()
        self.signaling = None
        self.media.clear()
        self.all_conn = None
        for timer in self._media_timers.values():
            timer.cancel()
        self._media_timers.clear()
        self.listener = target
        self.media_listener = None
        self.faults.refuse_other_listeners = refuse_old
        self.state = StreamState.INTERRUPTED
        self.send_webhook(WebhookKind.STARTED)

    # ------------------------------------------------------------------ media pump

    async def _pump(self) -> None:
        loop = self.sim.loop
        deadline = loop.time()
        try:
            while not self.terminated:
                deadline += TICK_S
                try:
                    self._produce()
                except Exception:
                    log.exception("stream %s: media production failed", self.stream_id)
                delay = deadline - loop.time()
                if delay < -1.0:  # fell far behind (debugger, overload): do not try to catch up tick by tick
                    deadline = loop.time()
                await asyncio.sleep(max(0.0, delay))
        except asyncio.CancelledError:
            pass

    def _produce(self) -> None:
        el = self.elapsed_ms()
        sig_up = self.signaling is not None and self.signaling.alive
        if self._events_started:
            self._produce_events(el, sig_up)
        if self.paused or not sig_up:
            return
        conn = self.media.get("audio")
        if conn is not None and conn.ready and conn.alive and self.params.audio is not None:
            self._produce_audio(conn, self.params.audio, el)
        for kind in ("transcript", "chat"):
            conn = self.media.get(kind)
            if conn is not None and conn.ready and conn.alive:
                self._produce_text(conn, kind, el)
        for kind in ("video", "deskshare"):
            conn = self.media.get(kind)
            if conn is not None and conn.ready and conn.alive:
                self._produce_frames(conn, kind, el)

    def _count(self, kind: str, n: int = 1) -> None:
        self.sent.media_counts[kind] = self.sent.media_counts.get(kind, 0) + n

    def _produce_audio(self, conn: _Conn, params: AudioParams, el: int) -> None:
        rate = params.send_rate
        cursor = self._cursor["audio"]
        floor = el - int(self.cfg.audio_buffer_s * 1000)
        if cursor < floor:
            cursor = floor - floor % rate
        record = self.cfg.record_payloads
        zcc = self.product is Product.CONTACT_CENTER
        while cursor + rate <= el:
            ts = self.started_ms + cursor
            for uid, name, payload in self.content.audio_packets(params, cursor):
                extra = {"channel_id": self.content.channel_id(uid)} if zcc and uid else {}
                msg = protocol.build_media(MsgType.MEDIA_DATA_AUDIO, data=payload, timestamp=ts, user_id=uid, user_name=name, with_length=self.cfg.send_length, **extra)
                self._send_audio(conn, uid, ts, payload, msg, record)
            cursor += rate
        self._cursor["audio"] = cursor

    def _send_audio(self, conn: _Conn, uid: int, ts: int, payload: bytes, msg: dict[str, Any], record: bool) -> None:
        """Send one audio packet through the per-packet faults (drop, duplicate, delay).

        Every packet produced for ``uid`` (whatever its own fate) brings that user's held packets
        one step closer; a held packet goes out right after the one that makes it due.
        """
        action, n = self.faults.audio.decide((uid, ts))
        held = self._held_audio.setdefault(uid, [])
        mine: list[Any] | None = None
        if action == "drop":
            self.sent.audio_dropped.append((uid, ts))
        elif action == "delay":
            mine = [n, ts, payload, msg]
            self.sent.audio_reordered.append((uid, ts, n))
        else:
            if action == "duplicate":
                self.sent.audio_duplicated.append((uid, ts))
                self._put_audio(conn, uid, ts, payload, msg, record)
            self._put_audio(conn, uid, ts, payload, msg, record)
        for h in list(held):
            h[0] -= 1
            if h[0] <= 0:
                held.remove(h)
                self._put_audio(conn, uid, h[1], h[2], h[3], record)
        if mine is not None:
            held.append(mine)

    def _put_audio(self, conn: _Conn, uid: int, ts: int, payload: bytes, msg: dict[str, Any], record: bool) -> None:
        conn.send(msg)
        self._count("audio")
        if record:
            self.sent.audio.setdefault(uid, []).append((ts, payload))

    def _produce_text(self, conn: _Conn, kind: str, el: int) -> None:
        t0 = self._cursor[kind]
        floor = el - int(self.cfg.audio_buffer_s * 1000)
        t0 = max(t0, floor)
        if el <= t0:
            return
        if kind == "transcript":
            for tr in self.content.transcripts(t0, el):
                start = self.started_ms + int(tr["start_ms"])
                msg = protocol.build_media(
                    MsgType.MEDIA_DATA_TRANSCRIPT,
                    data=tr["text"],
                    timestamp=start,
                    user_id=tr["user_id"],
                    user_name=tr["user_name"],
                    start_time=start,
                    end_time=self.started_ms + int(tr["end_ms"]),
                    language=int(tr.get("language", protocol.TranscriptLanguage.ENGLISH)),
                )
                conn.send(msg)
                self._count(kind)
                self.sent.transcripts.append(dict(tr))
        else:
            for chat in self.content.chats(t0, el):
                structured = chat.get("structured")
                data = protocol.encode(structured).decode() if structured else str(chat.get("text", ""))
                ts = self.started_ms + int(chat.get("t_ms", el))
                conn.send(protocol.build_media(MsgType.MEDIA_DATA_CHAT, data=data, timestamp=ts, user_id=chat.get("user_id", 0), user_name=chat.get("user_name", "")))
                self._count(kind)
                self.sent.chats.append(dict(chat))
        self._cursor[kind] = el

    def _produce_frames(self, conn: _Conn, kind: str, el: int) -> None:
        params = self.params.video if kind == "video" else self.params.deskshare
        if params is None:
            return
        fps = params.fps
        idx = self._frame_idx[kind]
        individual = kind == "video" and params.data_opt == protocol.DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM
        store = self.sent.video if kind == "video" else self.sent.share
        mt = MsgType.MEDIA_DATA_VIDEO if kind == "video" else MsgType.MEDIA_DATA_SHARE
        while idx * 1000 // fps <= el:
            t = idx * 1000 // fps
            idx += 1
            if individual:  # data_opt 4: only the subscribed participant, only while the camera is on
                sub = self.video_subscription
                if sub is None or sub not in self.video_on:
                    continue
                frame = self.content.video_frame(params, idx - 1, t, user_id=sub)
            elif kind == "video":
                frame = self.content.video_frame(params, idx - 1, t)
            else:
                frame = self.content.share_frame(params, idx - 1, t)
            if frame is None:
                continue
            uid, name, payload = frame
            ts = self.started_ms + t
            conn.send(protocol.build_media(mt, data=payload, timestamp=ts, user_id=uid, user_name=name, with_length=self.cfg.send_length))
            self._count(kind)
            if self.cfg.record_payloads:
                store.setdefault(uid, []).append((ts, payload))
        self._frame_idx[kind] = idx

    def _user_name(self, uid: int) -> str:
        for p in getattr(self.content, "participants", ()):
            if p.user_id == uid:
                return str(p.user_name)
        return ""

    def _produce_events(self, el: int, sig_up: bool) -> None:
        t0 = self._events_cursor
        if el <= t0:
            return
        self._events_cursor = el
        subs = self.client.subscriptions
        share_scoped = "deskshare" in self.cfg.scopes
        for etype, fields_ in self.content.events(t0, el):
            etype = int(etype)
            self._track_event(etype, fields_)
            if not sig_up:
                continue
            if etype in (EventType.SHARING_START, EventType.SHARING_STOP) and not share_scoped:
                continue
            if self.cfg.filter_events_by_subscription and etype not in subs and etype not in protocol.AUTOMATIC_EVENTS:
                continue
            t_ms = fields_.get("t_ms")
            ts = self.started_ms + int(t_ms) if isinstance(t_ms, int) else now_ms()
            fields_ = {k: v for k, v in fields_.items() if k not in ("event_type", "timestamp", "t_ms")}
            if self.cfg.user_id_as_string:
                fields_ = _stringify_ids(fields_)
            msg = protocol.build_event(etype, ts, **fields_)
            if self.product is Product.CONTACT_CENTER:  # ZCC events carry event_ts, not timestamp
                msg["event"]["event_ts"] = msg["event"].pop("timestamp")
            self._send_sig(msg)
            self.sent.events.append(msg["event"])

    def _track_event(self, etype: int, fields_: dict[str, Any]) -> None:
        ids = [int(p["user_id"]) for p in fields_.get("participants", ()) if isinstance(p, dict) and "user_id" in p]
        if etype == EventType.PARTICIPANT_VIDEO_ON:
            self.video_on.update(ids)
        elif etype in (EventType.PARTICIPANT_VIDEO_OFF, EventType.PARTICIPANT_LEAVE):
            self.video_on.difference_update(ids)
            if self.video_subscription in ids:
                self.video_subscription = None  # camera off: video stops until a new subscription
        elif etype == EventType.SHARING_START:
            self.sharing = True
        elif etype == EventType.SHARING_STOP:
            self.sharing = False


def _close_all(conns: list[_Conn]) -> None:
    for conn in conns:
        conn.close(WSCloseCode.OK, b"stream terminated")


def _stringify_ids(fields_: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields_)
    if "user_id" in out:
        out["user_id"] = str(out["user_id"])
    if isinstance(out.get("participants"), list):
        out["participants"] = [{**p, "user_id": str(p["user_id"])} if isinstance(p, dict) and "user_id" in p else p for p in out["participants"]]
    return out


def _default_content_factory(participants: int, seed: int, product: Product) -> Any:
    from .content import MeetingContent  # the synthetic-meeting generator (owned separately)

    return MeetingContent(participants, seed=seed, product=product)


def _new_instance_id() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode()


class Simulator:
    """The RTMS server: listeners, streams, webhooks. Use as ``async with Simulator(cfg) as sim``."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.streams: dict[str, SimStream] = {}
        self.webhooks = WebhookEmitter(self.config.webhook_url, self.config.webhook_secret, duplicates=self.config.webhook_duplicates)
        self.rejections: list[tuple[str, int]] = []  # handshakes rejected before a stream was known
        self.idle_closed = 0  # sockets closed for never sending a handshake
        self._listeners: dict[int, _Listener] = {}
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.load_driver: LoadDriver | None = None
        self._load_content: Any = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "Simulator.start() first"
        return self._loop

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._ensure_listener(0, self.config.port, self.config.media_port)

    async def _ensure_listener(self, index: int, port: int = 0, media_port: int = 0) -> _Listener:
        if index in self._listeners:
            return self._listeners[index]
        host = self.config.host

        def factory(role: str) -> Callable[[WSUpgradeRequest], _Conn]:
            def make(request: WSUpgradeRequest) -> _Conn:
                return _Conn(self, index, role, request.path.decode("latin-1"))

            return make

        tls = {"ssl": self.config.ssl_context} if self.config.ssl_context is not None else {}
        sig = await ws_create_server(factory("signaling"), host, port, websocket_handshake_timeout=10, logger_name="sim.signaling", **tls)
        med = await ws_create_server(factory("media"), host, media_port, websocket_handshake_timeout=10, logger_name="sim.media", **tls)
        lst = _Listener(sig, med, sig.sockets[0].getsockname()[1], med.sockets[0].getsockname()[1])
        self._listeners[index] = lst
        return lst

    # addresses
    @property
    def port(self) -> int:
        return self._listeners[0].signaling_port

    @property
    def media_port(self) -> int:
        return self._listeners[0].media_port

    @property
    def _url_base(self) -> str:
        scheme = "wss" if self.config.ssl_context is not None else "ws"
        return f"{scheme}://{self.config.url_host or self.config.host}"

    def signaling_url(self, listener: int = 0) -> str:
        return f"{self._url_base}:{self._listeners[listener].signaling_port}/signaling"

    def media_urls(self, listener: int, stream: SimStream) -> dict[str, str]:
        """``media_server.server_urls`` for msg 2: scoped kinds only (share/chat under configurable keys)."""
        base = f"{self._url_base}:{self._listeners[listener].media_port}/media"
        keys = {"deskshare": self.config.deskshare_key, "chat": self.config.chat_key}
        urls = {keys.get(k, k): f"{base}/{k}" for k in PRODUCT_KINDS[stream.product] if k in self.config.scopes}
        if self.config.include_all_url:
            urls["all"] = f"{base}/all"
        return urls

    # streams
    def create_stream(
        self,
        *,
        stream_id: str | None = None,
        instance_id: str | None = None,
        product: Product | None = None,
        content: Any = None,
        backlog_ms: int = 0,
        webhook: bool = True,
        load: bool = False,
    ) -> SimStream:
        """Announce a new stream (``*.rtms_started``); ``backlog_ms`` pretends it started that long ago.

        ``load=True`` streams send audio only, from pre-built frames (:meth:`start_load` first).
        """
        product = product or self.config.product
        if load:
            if self.load_driver is None:
                raise RuntimeError("call start_load() before creating load streams")
            if self._load_content is None:
                self._load_content = self._make_content(product, self.config.seed)
            content = self._load_content
        elif content is None:
            content = self._make_content(product, self.config.seed + len(self.streams))
        stream = SimStream(
            self,
            stream_id=stream_id or secrets.token_hex(16),
            instance_id=instance_id or _new_instance_id(),
            product=product,
            content=content,
            started_ms=now_ms() - backlog_ms,
            backlog_ms=backlog_ms,
            load=load,
        )
        self.streams[stream.stream_id] = stream
        if load:
            self.load_driver.add(stream)  # type: ignore[union-attr]
        if webhook:
            stream.send_webhook(WebhookKind.STARTED)
        return stream

    def _make_content(self, product: Product, seed: int) -> Any:
        factory = self.config.content_factory or _default_content_factory
        return factory(self.config.participants, seed, product)

    def start_load(self, *, pace: str = "realtime", speakers: int = 1, slots: int = 4) -> LoadDriver:
        """Switch on load mode: streams created with ``load=True`` get pre-built audio at ``pace``."""
        if self.load_driver is None:
            self.load_driver = LoadDriver(self, pace=pace, speakers=speakers, slots=slots)
        return self.load_driver

    def join_payload(self, stream: SimStream) -> dict[str, Any]:
        """The flat webhook payload a client would join with (what ``rtms_started`` carries)."""
        return dict(stream.webhook_body(WebhookKind.STARTED)["payload"]) if not self.config.webhook_nested else dict(stream.webhook_body(WebhookKind.STARTED)["payload"]["object"])

    # dispatch
    def _reject(self, conn: _Conn, status: Status, reason: str, sequence: int = 0) -> None:
        code = protocol.status_code(status, self.config.status_profile)
        self.rejections.append((conn.role, code))
        if conn.role == "signaling":
            conn.send(protocol.build_signaling_handshake_response(code, reason, sequence=sequence))
        else:
            conn.send(protocol.build_data_handshake_response(code, reason, sequence=sequence, payload_encrypted=self.config.payload_encrypted))
        if self.config.close_after_reject:
            conn.close(WSCloseCode.OK, b"handshake rejected")

    def _on_message(self, conn: _Conn, payload: bytes) -> None:
        try:
            doc = protocol.decode_json(payload)
        except ProtocolError:
            if conn.handshaken and conn.stream is not None:
                conn.stream.client.unparseable += 1
            else:
                self._reject(conn, Status.INVALID_JSON, "invalid JSON")
            return
        mt = doc.get("msg_type")
        if conn.handshaken and conn.stream is not None:
            if isinstance(mt, int) and not isinstance(mt, bool):
                conn.stream._on_client_message(conn, doc)
            else:
                conn.stream.client.unparseable += 1
            return
        expected = MsgType.SIGNALING_HAND_SHAKE_REQ if conn.role == "signaling" else MsgType.DATA_HAND_SHAKE_REQ
        seq = doc.get("sequence") if isinstance(doc.get("sequence"), int) else 0
        if isinstance(mt, bool) or mt != expected:
            self._reject(conn, Status.INVALID_MESSAGE_TYPE, f"expected msg_type {int(expected)}", seq)
            return
        if doc.get("protocol_version", protocol.PROTOCOL_VERSION) != protocol.PROTOCOL_VERSION:
            self._reject(conn, Status.INVALID_JSON, "unsupported protocol_version", seq)
            return
        try:
            req = protocol.parse_signaling_handshake(doc) if conn.role == "signaling" else protocol.parse_data_handshake(doc)
        except ProtocolError as exc:
            f = exc.field or ""
            if f in protocol.HANDSHAKE_ID_KEYS:
                status = Status.MISSING_INSTANCE_ID
            elif f == "rtms_stream_id":
                status = Status.INVALID_STREAM_ID
            elif f == "signature":
                status = Status.INVALID_SIGNATURE
            elif f == "media_type":
                status = Status.MEDIA_TYPE_INVALID_VALUE
            else:
                status = Status.INVALID_JSON
            self._reject(conn, status, str(exc), seq)
            return
        stream = self.streams.get(req.stream_id)
        if stream is None:
            self._reject(conn, Status.INVALID_STREAM_ID, "unknown rtms_stream_id", seq)
            return
        if conn.role == "signaling":
            stream._signaling_handshake(conn, req, doc)  # type: ignore[arg-type]
        else:
            stream._media_handshake(conn, req)  # type: ignore[arg-type]

    async def close(self) -> None:
        if self.load_driver is not None:
            self.load_driver.stop()
        for stream in self.streams.values():
            if not stream.terminated and stream._pump_task is not None:
                stream._pump_task.cancel()
            for timer in (*stream._media_timers.values(), stream._signaling_timer):
                if timer is not None:
                    timer.cancel()
        for conn in list(self._conns):
            conn.abort()
        for lst in self._listeners.values():
            lst.signaling.close()
            lst.media.close()
        for lst in self._listeners.values():
            await lst.signaling.wait_closed()
            await lst.media.wait_closed()
        self._listeners.clear()
        await self.webhooks.close()
