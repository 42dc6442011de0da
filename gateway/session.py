"""One RTMS stream's controller: signaling, media sockets, states, keep-alive, reconnects, stop.

A :class:`StreamSession` is created per ``*.rtms_started`` stream. :meth:`StreamSession.start`
connects signaling, sends the signed msg 1, checks msg 2, opens the media sockets (one per kind,
or one ``all`` socket) with msg 3/4, sends CLIENT_READY_ACK (msg 7) on signaling after every media
handshake succeeded, then the event subscription (msg 5; never the automatic events 1 and 7).
Everything after that runs in one supervisor task per session, so reconnects never race each
other; stopping cancels that task and its ``finally`` closes every socket.

Keep-alives (msg 12) are answered inline in the socket callbacks (signaling here, media in the
listener), never behind media or the supervisor.

Reconnection policy (PROTOCOL.md 6: reconnect on Zoom's signals, not merely because a socket
closed):

* **Failover** (duplicate ``rtms_started`` with new URLs, :meth:`~StreamSession.failover`): close
  the old sockets and do a full handshake against the new URLs at once (retries, if any, use the
  backoff below).
* **Signaling lost** (close or drop without TERMINATED): do nothing on the socket event itself;
  wait for ``*.rtms_interrupted`` (:meth:`~StreamSession.interrupted`), which reconnects signaling
  and media to the stream's current ``server_urls`` with Zoom's backoff (3, 6, 12, 24, 30 s)
  inside the reconnection window. Fallback: the client watchdog: no traffic at all on signaling
  for ``keepalive_watchdog_s`` re-sends the signaling handshake the same way (the docs'
  client-initiated failover).
* **Media socket lost** (signaling still up): reconnect only that socket to the same media URL
  (msg 3 again, then msg 7) as soon as Zoom signals it (msg 6 event 7 or msg 8 state 2 reason 14);
  without a signal, after the first backoff step. Retries back off inside the media window.
* **Stream terminated** (msg 8 state 4, ``*.rtms_stopped``, or our STREAM_CLOSE_REQ answered):
  close everything, never reconnect. Session STOPPED (msg 9 state 5) or stream TERMINATING
  (msg 8 state 3) also switch reconnection off.

Usage (the app does this per ``*.rtms_started``; ``on_event`` gets typed dicts with a ``type``)::

    session = StreamSession(StreamTarget.from_webhook(event), SessionSettings(client_id, secret), sink=sink)
    await session.start()          # HandshakeError / OSError / TimeoutError: this stream only
    ...                            # session.failover(urls) / session.interrupted() / session.stopped(reason)
    await session.close(request=True)   # or: await session.wait_closed(); errors land in session.error

Handshake answers: on the first connection every non-zero status ends this stream with a
:class:`~gateway.errors.HandshakeError` naming the code (no retries; other streams are
untouched). During reconnects, duplicate-connection and internal-exception codes are retried
(the server may not have noticed the old socket yet), and so is a media handshake refused with
INVALID_RTMS_STREAM_ID (the server has not yet tied the new signaling socket to the stream); any
other code ends the stream. Backoff sleeps go through the ``sleep`` constructor argument
(default ``asyncio.sleep``) and windows through ``loop_time``, so tests can drive both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from picows import WSError

from . import protocol
from .errors import GatewayError, HandshakeError, KeepAliveTimeout, ProtocolError, SessionClosed
from .media import MAX_MEDIA_FRAME_BYTES, MediaConnection, media_listener_factory
from .protocol import (
    EventType,
    MediaParams,
    MsgType,
    Product,
    SessionState,
    Status,
    StopReason,
    StreamState,
    WebhookEvent,
    WebhookKind,
)
from .signaling import SignalingConnection

log = logging.getLogger("gateway.session")

__all__ = ["SessionSettings", "StreamSession", "StreamTarget"]

#: Errors that mean "the connection attempt failed", worth a retry while reconnecting.
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError, WSError, ProtocolError)

_EVENT_NAMES: dict[int, str] = {
    EventType.FIRST_PACKET_TIMESTAMP: "first_packet_timestamp",
    EventType.ACTIVE_SPEAKER_CHANGE: "active_speaker",
    EventType.PARTICIPANT_JOIN: "participant_join",
    EventType.PARTICIPANT_LEAVE: "participant_leave",
    EventType.SHARING_START: "sharing_start",
    EventType.SHARING_STOP: "sharing_stop",
    EventType.MEDIA_CONNECTION_INTERRUPTED: "media_interrupted",
    EventType.PARTICIPANT_VIDEO_ON: "video_on",
    EventType.PARTICIPANT_VIDEO_OFF: "video_off",
    EventType.CHAT_GROUP_CREATE: "chat_group_create",
    EventType.CHAT_GROUP_DELETE: "chat_group_delete",
    EventType.CHAT_GROUP_MEMBERS_ADD: "chat_group_members_add",
    EventType.CHAT_GROUP_MEMBERS_DELETE: "chat_group_members_delete",
    EventType.CHAT_GROUP_MEMBER_STATUS_UPDATE: "chat_group_member_status_update",
}
#: default event subscriptions: speaker, join/leave, sharing, video on/off for meetings,
#: webinars and Video SDK; every call event for Contact Center (its numbers overlap 8-14).
MEETING_EVENTS: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 9)
DEFAULT_EVENTS: dict[Product, tuple[int, ...]] = {
    Product.CONTACT_CENTER: tuple(int(e) for e in protocol.ZccEventType if e != protocol.ZccEventType.UNDEFINED),
}
#: kinds whose server_urls key is UNCONFIRMED: fall back to the ``all`` URL (PROTOCOL.md 2.5).
_ALL_FALLBACK_KINDS = frozenset({"deskshare", "chat"})
#: how long a stale-interruption probe (msg 19) waits for msg 20 before reconnecting anyway.
_PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """What a ``*.rtms_started`` webhook says about a stream: who it is and where to connect."""

    product: Product
    instance_id: str
    instance_key: str
    stream_id: str
    server_urls: str

    @classmethod
    def from_webhook(cls, ev: WebhookEvent) -> StreamTarget:
        if ev.kind is not WebhookKind.STARTED:
            raise ProtocolError(f"{ev.event} is not an rtms_started webhook", field="event")
        missing = [name for name in ("product", "instance_id", "stream_id", "server_urls") if not getattr(ev, name)]
        if missing:
            raise ProtocolError(f"rtms_started webhook lacks {', '.join(missing)}", field=f"payload.{missing[0]}")
        assert ev.product is not None and ev.instance_id and ev.stream_id and ev.server_urls
        return cls(ev.product, ev.instance_id, ev.instance_key or ev.product.id_key, ev.stream_id, ev.server_urls)


def _default_params(kinds: tuple[str, ...]) -> MediaParams:
    params = MediaParams()
    for kind in kinds:
        setattr(params, kind, protocol.PARAMS_BY_KIND[kind]())
    return params


#: values of :attr:`SessionSettings.video_follow`.
VIDEO_FOLLOW_MODES: tuple[str | None, ...] = (None, "user", "first")
#: events the individual-video policy needs (msg 5 always asks for them with data_opt 4).
VIDEO_POLICY_EVENTS: tuple[int, ...] = (EventType.PARTICIPANT_LEAVE, EventType.PARTICIPANT_VIDEO_ON, EventType.PARTICIPANT_VIDEO_OFF)


@dataclass(frozen=True)
class SessionSettings:
    """Per-stream client settings. ``client_secret`` never appears in ``repr`` or logs."""

    client_id: str
    client_secret: str = field(repr=False)
    media_kinds: tuple[str, ...] = ("audio", "video", "transcript")
    unified: bool = False
    media_params: MediaParams | Mapping[str, Any] | None = None  # None: the raw protocol's defaults for media_kinds
    #: events to subscribe (msg 5); None = the product's default (:data:`DEFAULT_EVENTS`).
    subscribe_events: tuple[int, ...] | None = None
    buffer_data: bool = True
    status_profile: str = "B"
    handshake_timeout_s: float = 10.0
    #: largest media message (bytes) each media listener accepts (see MediaConnection).
    max_frame_bytes: int = MAX_MEDIA_FRAME_BYTES
    keepalive_watchdog_s: float = 65.0
    reconnect_backoff_s: tuple[float, ...] = protocol.RECONNECT_BACKOFF_S
    reconnect_window_s: float = protocol.SIGNALING_RECONNECT_WINDOW_S
    media_reconnect_window_s: float = protocol.MEDIA_RECONNECT_WINDOW_S["2026"]
    #: individual video (data_opt 4, PROTOCOL.md 2.15): the participant to subscribe to (msg 28).
    video_subscribe_user: int | None = None
    #: follow PARTICIPANT_VIDEO_ON/OFF with data_opt 4: None (only the start subscription),
    #: "user" (re-subscribe ``video_subscribe_user`` whenever its camera comes on) or "first"
    #: (the first participant with video on; moves to another when that camera goes off).
    video_follow: str | None = None
    #: handshake key for the instance id; None = the official client's choice (meeting_uuid,
    #: engagement_id for Contact Center); "product" = the product's own key (webinar_uuid, ...).
    instance_key: str | None = None
    close_timeout_s: float = 5.0
    #: TLS for wss:// URLs; None = the system's default verification (what production needs).
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = [k for k in self.media_kinds if k not in protocol.MEDIA_KINDS]
        if unknown:
            raise ValueError(f"unknown media kinds {unknown}; expected some of {list(protocol.MEDIA_KINDS)}")
        if not self.reconnect_backoff_s:
            raise ValueError("reconnect_backoff_s needs at least one delay")
        protocol.StatusProfile(self.status_profile)  # validates
        if self.video_follow not in VIDEO_FOLLOW_MODES:
            raise ValueError(f"video_follow must be one of {list(VIDEO_FOLLOW_MODES)}, got {self.video_follow!r}")
        if self.video_follow == "user" and self.video_subscribe_user is None:
            raise ValueError('video_follow = "user" needs video_subscribe_user')
        if self.media_params is None:
            object.__setattr__(self, "media_params", _default_params(self.media_kinds))
        elif isinstance(self.media_params, Mapping):  # wire-shaped dicts (from TOML): defaults fill the gaps
            parsed = protocol.media_params_from_wire(self.media_params)
            for kind in self.media_kinds:
                if getattr(parsed, kind) is None:
                    setattr(parsed, kind, protocol.PARAMS_BY_KIND[kind]())
            object.__setattr__(self, "media_params", parsed)

    def params_for(self, kinds: tuple[str, ...]) -> MediaParams:
        """``media_params`` restricted to ``kinds`` (a requested kind without params gets defaults)."""
        assert isinstance(self.media_params, MediaParams)
        out = MediaParams()
        for kind in kinds:
            p = getattr(self.media_params, kind)
            setattr(out, kind, p if p is not None else protocol.PARAMS_BY_KIND[kind]())
        return out

    @property
    def individual_video(self) -> bool:
        """Video requested with data_opt 4: nothing arrives until a msg 28 subscription succeeds."""
        video = getattr(self.media_params, "video", None)
        return "video" in self.media_kinds and video is not None and video.data_opt == protocol.DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM


class _Stop(Exception):
    """Raised inside the supervisor to end the stream from within."""


class StreamSession:
    """The controller of one stream (see the module docstring for the policy)."""

    def __init__(
        self,
        target: StreamTarget,
        settings: SessionSettings,
        *,
        sink: Any,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        loop_time: Callable[[], float] | None = None,
        listener_class: Callable[..., Any] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        self.target = target
        self.settings = settings
        self.sink = sink
        self._on_event = on_event
        self._clock = loop_time or (lambda: asyncio.get_running_loop().time())
        #: the reconnect backoff's sleep; tests inject one that advances their ``loop_time`` clock.
        self._sleep = sleep or asyncio.sleep
        self.state = SessionState.INACTIVE
        self.stream_state = StreamState.INACTIVE
        self.stop_reason: int | None = None
        self.error: BaseException | None = None
        self.rtms_session_id: str | None = None
        self.first_packet_timestamp: int | None = None
        self.participants: dict[int, str | None] = {}
        self.reconnects = 0
        self.media_reconnects = 0
        #: ``*.rtms_interrupted`` webhooks ignored because the current signaling socket still answered.
        self.stale_interruptions = 0
        self.rtt_ms: float | None = None
        #: participants whose camera is on (events 8/9/4), in the order they turned it on.
        self.video_on: dict[int, None] = {}
        #: the participant the individual video (data_opt 4) is subscribed to, as far as we know.
        self.video_user: int | None = None
        self._server_urls = target.server_urls
        self._instance_key = self._handshake_key()
        self._signature = protocol.handshake_signature(settings.client_id, settings.client_secret, target.instance_id, target.stream_id)
        self._sequence = 0
        self._signaling: SignalingConnection | None = None
        self._media: dict[str, MediaConnection] = {}
        self._media_urls: dict[str, str] = {}
        self._retired: list[tuple[str, dict[str, Any]]] = []
        self._sig_keepalives_retired = 0
        self._sig_unparseable = 0
        self._listener_class = listener_class or media_listener_factory()
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None
        self._active = asyncio.Event()
        self._closed = asyncio.Event()
        self._commands: asyncio.Queue[tuple[str, Any, asyncio.Future[None] | None]] = asyncio.Queue()
        self._pending_media: set[str] = set()
        self._media_signal = asyncio.Event()
        self._stopping = False
        self._cancel_sent = False
        self._no_reconnect = False
        self._last_sig_rx = 0.0

    def __repr__(self) -> str:
        return f"<StreamSession {self.target.stream_id} {self.state.name} {self.stream_state.name}>"

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        """Connect and handshake everything; returns once the stream is up (or raises).

        Raises :class:`HandshakeError` for a non-zero status, ``OSError``/``TimeoutError`` when a
        server cannot be reached; the session is then fully closed (state STOPPED).
        """
        if self._task is not None:
            raise RuntimeError("StreamSession.start() called twice")
        if self._stopping:  # rtms_stopped (or close) came first
            self._set_state(SessionState.STOPPED)
            self._closed.set()
            raise SessionClosed(f"stream {self.target.stream_id} was stopped before it started", reason=self.stop_reason)
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._last_sig_rx = self._clock()
        self._set_state(SessionState.INITIALIZE)
        self._task = loop.create_task(self._run(), name=f"rtms-session-{self.target.stream_id}")
        self._task.add_done_callback(self._on_task_done)
        try:
            await asyncio.shield(self._started)
        except asyncio.CancelledError:
            self._request_stop(None)
            await asyncio.shield(self._closed.wait())
            raise
        except BaseException:
            await self.wait_closed()
            raise
        # "media is flowing" is announced by the first msg 9 / msg 8 (STARTED, ACTIVE, or PAUSED
        # when joining a paused stream); servers that never send one only cost this bounded wait.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.handshake_timeout_s):
                await self._active.wait()

    async def wait_closed(self) -> None:
        """Wait until every socket is closed and the supervisor task has finished."""
        if self._task is None:
            return
        await self._closed.wait()
        await asyncio.wait([self._task])  # never raises: errors are in self.error

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def close(self, *, request: bool = False) -> None:
        """Stop the stream. ``request=True`` first asks Zoom to end it (msg 21, waits for 22/TERMINATED)."""
        if self._task is None:
            self._stopping = True
            self._set_state(SessionState.STOPPED)
            self._closed.set()
            return
        if self._closed.is_set():
            await self.wait_closed()
            return
        sig = self._signaling
        if request and sig is not None and not sig.closed and not self._stopping:
            reply = sig.expect(MsgType.STREAM_CLOSE_RESP)
            if sig.send(protocol.build_stream_close_request(self.target.stream_id)):
                self._no_reconnect = True  # from now on a lost signaling socket means "ended"
                try:
                    async with asyncio.timeout(self.settings.close_timeout_s):
                        doc = await reply
                        status = doc.get("status_code", 0)
                        if status == 0:
                            if self.stop_reason is None:
                                self.stop_reason = StopReason.STOP_BC_RECEIVER_REQUEST_CLOSE
                            # msg 8 TERMINATED (or the server closing signaling) follows; it stops us.
                            await self._closed.wait()
                        else:
                            log.warning("stream %s: STREAM_CLOSE_REQ refused (%s %s); closing locally", self.target.stream_id, status, doc.get("reason"))
                except (TimeoutError, ConnectionError):
                    log.info("stream %s: no complete answer to STREAM_CLOSE_REQ; closing locally", self.target.stream_id)
            else:
                reply.cancel()
        self._request_stop(None)
        await self.wait_closed()

    def stopped(self, reason: int | None) -> None:
        """``*.rtms_stopped`` webhook: clean stop, no reconnect."""
        self._request_stop(reason)

    async def failover(self, server_urls: str) -> None:
        """Duplicate ``rtms_started`` with new URLs: full handshake against ``server_urls`` now."""
        await self._command("failover", server_urls)

    async def interrupted(self) -> None:
        """``*.rtms_interrupted`` webhook: reconnect signaling and media to the current URLs."""
        await self._command("interrupted", None)

    async def subscribe_video(self, user_id: int, subscribe: bool = True) -> int:
        """VIDEO_SUBSCRIPTION_REQ (msg 28) for one participant; returns msg 29's status code."""
        sig = self._signaling
        if sig is None or sig.closed:
            raise SessionClosed("no signaling connection", reason=self.stop_reason)
        reply = sig.expect(MsgType.VIDEO_SUBSCRIPTION_RESP)
        sig.send(protocol.build_video_subscription(user_id, subscribe, int(time.time() * 1000)))
        async with asyncio.timeout(self.settings.handshake_timeout_s):
            doc = await reply
        status = doc.get("status_code", 0)
        code = int(status) if isinstance(status, int) else -1
        if self._video_status_ok(code):
            self.video_user = user_id if subscribe else (None if self.video_user == user_id else self.video_user)
        return code

    async def measure_rtt(self, rounds: int = 3) -> float:
        """Signaling round-trip time in ms (WebSocket ping/pong); also kept for :meth:`stats`."""
        sig = self._signaling
        if sig is None or sig.closed:
            raise SessionClosed("no signaling connection", reason=self.stop_reason)
        self.rtt_ms = await sig.measure_rtt(rounds, self.settings.handshake_timeout_s)
        return self.rtt_ms

    def stats(self) -> dict[str, Any]:
        """Counters for metrics and the demo table (cheap; call as often as needed).

        ``frames`` counts media messages per socket (kind, or ``all``) as the listeners saw them;
        ``wire_bytes`` are WebSocket payload bytes (JSON + base64), not decoded media: decoded
        bytes and per-kind drops are the sink's to report. Totals survive reconnects.
        """
        frames: dict[str, int] = {}
        nbytes: dict[str, int] = {}
        drops = 0
        keepalives: dict[str, int] = {"signaling": self._sig_keepalives_retired, "media": 0}
        sockets: dict[str, bool] = {}
        sig = self._signaling
        sockets["signaling"] = sig is not None and sig.connected and not sig.closed
        if sig is not None:
            keepalives["signaling"] += sig.keepalives_answered
        current = [(key, c.stats()) for key, c in self._media.items()]
        for key, conn in self._media.items():
            sockets[key] = conn.ready and not conn.closed
        for key, st in (*self._retired, *current):
            n_frames = st.get("media_frames", st.get("frames", 0))
            n_bytes = st.get("bytes", 0)
            # per-socket counters (the socket key is the kind, or "all"); dicts if a listener splits them
            for target, value in ((frames, n_frames), (nbytes, n_bytes)):
                if isinstance(value, dict):
                    for kind, n in value.items():
                        target[kind] = target.get(kind, 0) + int(n)
                else:
                    target[key] = target.get(key, 0) + int(value or 0)
            d = st.get("drops", 0)
            drops += sum(d.values()) if isinstance(d, dict) else int(d or 0)
            keepalives["media"] += int(st.get("keepalives_answered", 0))
        return {
            "stream_id": self.target.stream_id,
            "state": self.state.name,
            "stream_state": self.stream_state.name,
            "sockets": sockets,
            "frames": frames,
            "wire_bytes": nbytes,
            "listener_drops": drops,
            "parse_errors": {"signaling": self._sig_unparseable + (sig.unparseable if sig is not None else 0)},
            "keepalives_answered": keepalives,
            "keepalive_lag_ms": sig.keepalive_lag_ms if sig is not None else None,
            "rtt_ms": self.rtt_ms,
            "reconnects": self.reconnects,
            "media_reconnects": self.media_reconnects,
            "stale_interruptions": self.stale_interruptions,
            "participants": len(self.participants),
            "video_user": self.video_user,
            "video_on": list(self.video_on),
            "stop_reason": self.stop_reason,
        }

    # ------------------------------------------------------------------ supervisor

    async def _run(self) -> None:
        assert self._started is not None
        try:
            try:
                await self._connect_all(self._server_urls)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                self.error = exc
                log.warning("stream %s: start failed: %s", self.target.stream_id, exc)
                self._started.set_exception(exc)
                return  # teardown in finally
            self._started.set_result(None)
            log.info("stream %s started: media sockets %s", self.target.stream_id, ", ".join(self._media))
            await self._supervise()
        except (asyncio.CancelledError, _Stop):
            pass
        except Exception as exc:  # the stream is lost; others are not affected
            if self.error is None:
                self.error = exc
            log.error("stream %s ended: %s", self.target.stream_id, exc)
        finally:
            await self._teardown()

    async def _supervise(self) -> None:
        """Serve reconnect commands and run the client watchdog until stopped."""
        while True:
            remaining = self._watchdog_remaining()
            if remaining <= 0:
                kind, arg, fut = "watchdog", None, None
            else:
                # wake at least 4 times per watchdog period, so an injected clock is followed too
                nap = min(remaining, max(self.settings.keepalive_watchdog_s / 4, 0.01))
                try:
                    async with asyncio.timeout(nap):
                        kind, arg, fut = await self._commands.get()
                except TimeoutError:
                    continue  # traffic may have arrived meanwhile: re-check
            try:
                await self._handle(kind, arg)
            except BaseException as exc:
                if fut is not None and not fut.done():
                    ok = isinstance(exc, Exception) and not isinstance(exc, _Stop)
                    fut.set_exception(exc if ok else SessionClosed("stream stopped", reason=self.stop_reason))
                    fut.exception()  # the caller may be gone
                raise
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def _handle(self, kind: str, arg: Any) -> None:
        if kind == "failover":
            log.info("stream %s: failover to %s", self.target.stream_id, arg)
            self._server_urls = arg
            await self._reconnect_all("failover")
        elif kind == "interrupted":
            if self._no_reconnect:
                raise _Stop
            if await self._signaling_answers():
                self.stale_interruptions += 1
                log.info("stream %s: rtms_interrupted, but the current signaling socket answers: it was for one already replaced", self.target.stream_id)
                return
            log.info("stream %s: interrupted; reconnecting", self.target.stream_id)
            await self._reconnect_all("interrupted")
        elif kind == "watchdog":
            if self._no_reconnect:
                raise _Stop
            log.warning("stream %s: no signaling traffic for %.1f s; re-handshaking", self.target.stream_id, self.settings.keepalive_watchdog_s)
            self._emit({"type": "watchdog", "idle_s": self.settings.keepalive_watchdog_s})
            await self._reconnect_all("watchdog")
        elif kind == "media":
            self._pending_media.discard(arg)
            await self._recover_media(arg)

    async def _signaling_answers(self) -> bool:
        """Whether the server still holds the current signaling socket (msg 19 answered on it, stream not interrupted).

        Zoom sends ``*.rtms_interrupted`` for every signaling socket it loses, also one this session
        closed itself (watchdog re-handshake, failover): acting on that late webhook would cut the new,
        healthy connection, the server would report that one too, and so on (a reconnect storm that
        starves the stream of audio). A socket the server lost is closed or stays silent: reconnect.
        """
        sig = self._signaling
        if sig is None or sig.closed or not sig.connected:
            return False
        reply = sig.expect(MsgType.STREAM_STATE_RESP)
        if not sig.send(protocol.build_stream_state_request(self.target.stream_id)):
            reply.cancel()
            return False
        try:
            async with asyncio.timeout(min(self.settings.handshake_timeout_s, _PROBE_TIMEOUT_S)):
                doc = await reply
        except (TimeoutError, ConnectionError, SessionClosed):
            return False
        state = doc.get("state")
        return isinstance(state, int) and state in (StreamState.ACTIVE, StreamState.PAUSED, StreamState.RESUMED)

    def _watchdog_remaining(self) -> float:
        sig = self._signaling
        if sig is not None:
            self._last_sig_rx = max(self._last_sig_rx, sig.last_rx)
        return self._last_sig_rx + self.settings.keepalive_watchdog_s - self._clock()

    async def _command(self, kind: str, arg: Any) -> None:
        if self._task is None or self._closed.is_set() or self._stopping:
            raise SessionClosed(f"stream {self.target.stream_id} is closed", reason=self.stop_reason)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commands.put_nowait((kind, arg, fut))
        self._media_signal.set()  # a waiting media recovery yields to the stream-level command
        await fut

    def _request_stop(self, reason: int | None) -> None:
        if reason is not None and self.stop_reason is None:
            self.stop_reason = int(reason)
        self._stopping = True
        self._no_reconnect = True
        task = self._task
        if task is None or task.done() or self._cancel_sent:
            return
        if asyncio.current_task() is task:
            raise _Stop
        self._cancel_sent = True
        task.cancel()

    # ------------------------------------------------------------------ connecting

    def _handshake_key(self) -> str:
        key = self.settings.instance_key
        if key is None:
            return "engagement_id" if self.target.product is Product.CONTACT_CENTER else "meeting_uuid"
        if key == "product":
            return self.target.product.id_key
        return key

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _connect_all(self, server_urls: str) -> None:
        """Signaling + msg 1/2, media sockets + msg 3/4, msg 7, msg 5. Raises on any failure."""
        s = self.settings
        url = protocol.pick_signaling_url(server_urls)
        sig = SignalingConnection(
            url, on_message=self._on_signaling_message, on_closed=self._on_signaling_lost, clock=self._clock, ssl_context=s.ssl_context
        )
        self._signaling = sig
        reply: asyncio.Future[dict[str, Any]] | None = None
        try:
            async with asyncio.timeout(s.handshake_timeout_s):
                await sig.connect(s.handshake_timeout_s)
                reply = sig.expect(MsgType.SIGNALING_HAND_SHAKE_RESP)
                sig.send(
                    protocol.build_signaling_handshake(
                        instance_id=self.target.instance_id,
                        stream_id=self.target.stream_id,
                        signature=self._signature,
                        instance_key=self._instance_key,
                        sequence=self._next_sequence(),
                        buffer_data=s.buffer_data,
                    )
                )
                doc = await reply
        finally:
            if reply is not None and not reply.done():
                reply.cancel()
        resp = protocol.parse_signaling_handshake_response(doc)
        if resp.status_code != 0:
            raise HandshakeError(
                resp.reason or "signaling handshake rejected",
                status_code=resp.status_code,
                status_name=protocol.status_name(resp.status_code, s.status_profile),
                socket="signaling",
            )
        self._last_sig_rx = sig.last_rx
        plan = self._media_plan(resp)
        self._media_urls = plan
        try:
            async with asyncio.TaskGroup() as tg:
                for key, media_url in plan.items():
                    tg.create_task(self._open_media(key, media_url))
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        if sig.closed:
            raise ConnectionError("signaling closed during the media handshakes")
        sig.send(protocol.build_client_ready_ack(self.target.stream_id))
        wanted = s.subscribe_events if s.subscribe_events is not None else DEFAULT_EVENTS.get(self.target.product, MEETING_EVENTS)
        individual = s.individual_video and ("video" in plan or "all" in plan)
        if individual:  # the follow policy and 2.15 need the camera events
            wanted = (*wanted, *(e for e in VIDEO_POLICY_EVENTS if e not in wanted))
        events = protocol.build_event_subscription(wanted)
        if events["events"]:
            sig.send(events)
        # first start: the configured user; after a reconnect: whoever was subscribed (Zoom may not
        # repeat VIDEO_ON for cameras that stayed on, so waiting for events could leave us blind).
        uid = self.video_user if self.video_user is not None else s.video_subscribe_user
        if uid is not None and ("video" in plan or "all" in plan):
            self._send_video_subscription(uid)

    def _media_plan(self, resp: protocol.SignalingHandshakeResponse) -> dict[str, str]:
        """Socket key (kind or ``all``) -> URL, read fresh from every msg 2 (never cached)."""
        urls = resp.server_urls
        if self.settings.unified:
            if "all" not in urls:
                raise ProtocolError("unified media requested but msg 2 has no 'all' URL", field="media_server.server_urls.all")
            return {"all": urls["all"]}
        plan: dict[str, str] = {}
        for kind in self.settings.media_kinds:
            keys = protocol.SERVER_URL_KEYS.get(kind, (kind,))
            if kind in _ALL_FALLBACK_KINDS:
                keys = (*keys, "all")
            url = next((urls[k] for k in keys if k in urls), None)
            if url is None:
                log.info("stream %s: server offers no %s URL (not in scope); skipping it", self.target.stream_id, kind)
                continue
            plan[kind] = url
        if not plan:
            raise ProtocolError(f"server offers none of {list(self.settings.media_kinds)}", field="media_server.server_urls")
        return plan

    async def _open_media(self, key: str, url: str) -> None:
        kinds = tuple(self.settings.media_kinds) if key == "all" else (key,)
        conn = MediaConnection(
            key,
            url,
            sink=self.sink,
            on_lost=self._on_media_lost,
            on_message=self._on_media_message,
            listener_class=self._listener_class,
            max_frame_bytes=self.settings.max_frame_bytes,
            ssl_context=self.settings.ssl_context,
        )
        old = self._media.get(key)
        if old is not None:
            self._retire(old)
        self._media[key] = conn
        handshake = protocol.build_data_handshake(
            instance_id=self.target.instance_id,
            stream_id=self.target.stream_id,
            signature=self._signature,
            media_type=conn.media_type,
            media_params=self.settings.params_for(kinds),
            instance_key=self._instance_key,
            sequence=self._next_sequence(),
        )
        await conn.open(handshake, timeout_s=self.settings.handshake_timeout_s, status_profile=self.settings.status_profile)

    def _retire(self, conn: MediaConnection, *, abort: bool = False) -> None:
        conn.close(abort=abort)
        self._retired.append((conn.kind, conn.stats()))

    def _close_sockets(self, *, abort: bool = False) -> list[Any]:
        """Close every socket now (``abort``: no close handshake, before a reconnect); returns what to wait on."""
        waits: list[Any] = []
        sig, self._signaling = self._signaling, None
        if sig is not None:
            self._sig_keepalives_retired += sig.keepalives_answered
            self._sig_unparseable += sig.unparseable
            if abort:
                sig.abort()
            else:
                sig.close()
            waits.append(sig)
        for conn in self._media.values():
            self._retire(conn, abort=abort)
            waits.append(conn)
        self._media.clear()
        return waits

    async def _wait_sockets(self, waits: list[Any]) -> None:
        if waits:
            await asyncio.gather(*(w.wait_closed(self.settings.close_timeout_s) for w in waits), return_exceptions=True)

    def _is_transient(self, exc: HandshakeError) -> bool:
        """A rejection worth a retry; only asked during reconnects (the first join never retries).

        A *media* handshake refused with INVALID_RTMS_STREAM_ID ("no signaling connection") right
        after a signaling reconnect means the server has not tied the new signaling socket to the
        stream yet (a race seen in the soak), so it is retried inside the window too.
        """
        profile = self.settings.status_profile
        transient = (Status.DUPLICATE_SIGNAL_REQUEST, Status.DUPLICATE_MEDIA_CONNECTION, Status.ALL_CONNECTION_EXIST, Status.INTERNAL_EXCEPTION)
        if exc.status_code in {protocol.status_code(st, profile) for st in transient}:
            return True
        media = exc.socket is not None and exc.socket != "signaling"
        return media and exc.status_code == protocol.status_code(Status.INVALID_STREAM_ID, profile)

    def _backoff(self, attempt: int) -> float:
        delays = self.settings.reconnect_backoff_s
        return delays[min(attempt, len(delays) - 1)]

    async def _reconnect_all(self, why: str) -> None:
        """Full reconnect (signaling + media) to ``self._server_urls`` with backoff inside the window."""
        deadline = self._clock() + self.settings.reconnect_window_s
        self._pending_media.clear()
        attempt = 0
        while True:
            await self._wait_sockets(self._close_sockets(abort=True))  # the old peer is presumed gone
            try:
                await self._connect_all(self._server_urls)
            except HandshakeError as exc:
                if not self._is_transient(exc):
                    raise
                log.info("stream %s: %s reconnect attempt %d: %s", self.target.stream_id, why, attempt + 1, exc)
            except _CONNECT_ERRORS as exc:
                log.info("stream %s: %s reconnect attempt %d failed: %r", self.target.stream_id, why, attempt + 1, exc)
            else:
                self.reconnects += 1
                self._last_sig_rx = self._clock()
                log.warning("stream %s: reconnected after %s (%d attempt(s))", self.target.stream_id, why, attempt + 1)
                self._emit({"type": "reconnected", "scope": "stream", "why": why, "attempts": attempt + 1})
                return
            delay = self._backoff(attempt)
            attempt += 1
            if self._clock() + delay > deadline:
                await self._wait_sockets(self._close_sockets())
                raise KeepAliveTimeout(f"stream {self.target.stream_id}: could not reconnect within {self.settings.reconnect_window_s:.0f} s ({why})")
            await self._sleep(delay)

    async def _recover_media(self, key: str) -> None:
        """Reconnect one media socket to the same URL (msg 3 again, then msg 7)."""
        if not self._media_signal.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._backoff(0)):
                    await self._media_signal.wait()
        self._media_signal.clear()
        deadline = self._clock() + self.settings.media_reconnect_window_s
        attempt = 0
        while True:
            sig = self._signaling
            if sig is None or sig.closed:
                return  # signaling is gone too: the stream-level path redoes every socket
            conn = self._media.get(key)
            if conn is not None and conn.ready and not conn.closed:
                return  # already back (a full reconnect happened meanwhile)
            url = self._media_urls.get(key)
            if url is None:
                return
            try:
                await self._open_media(key, url)
            except HandshakeError as exc:
                if not self._is_transient(exc):
                    raise
                log.info("stream %s: media %s reconnect attempt %d: %s", self.target.stream_id, key, attempt + 1, exc)
            except _CONNECT_ERRORS as exc:
                log.info("stream %s: media %s reconnect attempt %d failed: %r", self.target.stream_id, key, attempt + 1, exc)
            else:
                if sig.closed:
                    return
                sig.send(protocol.build_client_ready_ack(self.target.stream_id))
                self.media_reconnects += 1
                log.warning("stream %s: media %s reconnected (%d attempt(s))", self.target.stream_id, key, attempt + 1)
                self._emit({"type": "reconnected", "scope": "media", "kind": key, "attempts": attempt + 1})
                return
            delay = self._backoff(attempt)
            attempt += 1
            if self._clock() + delay > deadline:
                raise KeepAliveTimeout(f"stream {self.target.stream_id}: media {key} did not come back within {self.settings.media_reconnect_window_s:.0f} s")
            await self._sleep(delay)

    def _queue_media(self, key: str) -> None:
        if key in self._pending_media or self._stopping or self._no_reconnect:
            return
        self._pending_media.add(key)
        self._commands.put_nowait(("media", key, None))

    async def _teardown(self) -> None:
        """Close every socket, fail waiting callers, publish STOPPED. Runs once, at the end."""
        self._stopping = True
        try:
            await self._wait_sockets(self._close_sockets())
        finally:
            self._finish()

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        """Safety net: a supervisor cancelled before its first step never ran its ``finally``."""
        if not self._closed.is_set():
            self._stopping = True
            self._close_sockets()
            self._finish()

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        while not self._commands.empty():
            _, _, fut = self._commands.get_nowait()
            if fut is not None and not fut.done():
                fut.set_exception(SessionClosed(f"stream {self.target.stream_id} stopped", reason=self.stop_reason))
                fut.exception()
        if self._started is not None and not self._started.done():
            self._started.set_exception(SessionClosed(f"stream {self.target.stream_id} stopped before it started", reason=self.stop_reason))
            self._started.exception()
        self._set_state(SessionState.STOPPED)
        self._active.set()
        self._closed.set()
        log.info("stream %s closed (stop_reason %s)", self.target.stream_id, self.stop_reason)

    # ------------------------------------------------------------------ socket callbacks (event-loop thread; never raise)

    def _on_signaling_lost(self) -> None:
        self._emit({"type": "signaling_lost"})
        if self._stopping:
            return
        if self._no_reconnect:  # TERMINATING/STOPPED seen: the server is ending the stream
            self._request_stop(None)
            return
        log.info("stream %s: signaling lost; waiting for rtms_interrupted or the watchdog", self.target.stream_id)

    def _on_media_lost(self, conn: MediaConnection) -> None:
        if self._stopping or self._media.get(conn.kind) is not conn:
            return
        self._emit({"type": "media_lost", "kind": conn.kind})
        self._queue_media(conn.kind)

    def _on_media_message(self, conn: MediaConnection, doc: dict[str, Any]) -> None:
        # Media sockets carry nothing but 4, 12 and 14-18 today; anything else is handled as if
        # it had come on signaling (state updates included).
        self._on_signaling_message(doc)

    def _on_signaling_message(self, doc: dict[str, Any]) -> None:
        mt = doc["msg_type"]
        try:
            if mt == MsgType.EVENT_UPDATE:
                self._on_event_update(doc)
            elif mt == MsgType.STREAM_STATE_UPDATE:
                self._on_stream_state(protocol.parse_state_update(doc))
            elif mt == MsgType.SESSION_STATE_UPDATE:
                self._on_session_state(protocol.parse_state_update(doc))
            elif mt == MsgType.SESSION_STATE_RESP:
                self._emit({"type": "session_state_response", **doc})
            elif mt == MsgType.STREAM_STATE_RESP:
                self._emit({"type": "stream_state_response", **doc})
            elif mt == MsgType.STREAM_CLOSE_RESP:
                self._emit({"type": "stream_close_response", **doc})
            elif mt == MsgType.VIDEO_SUBSCRIPTION_RESP:
                self._on_video_subscription_resp(doc)
                self._emit({"type": "video_subscription", **doc})
            else:
                log.debug("stream %s: ignoring msg_type %s", self.target.stream_id, mt)
        except ProtocolError as exc:
            log.warning("stream %s: bad msg_type %s dropped: %s", self.target.stream_id, mt, exc)
        except _Stop:
            pass

    def _on_event_update(self, doc: dict[str, Any]) -> None:
        ev = protocol.parse_event(doc)
        et = ev.event_type
        zcc = self.target.product is Product.CONTACT_CENTER and et >= protocol.ZccEventType.CONSUMER_ANSWERED
        name = "zcc_event" if zcc else _EVENT_NAMES.get(et, "event")
        record: dict[str, Any] = {**ev.raw, "type": name, "event_type": et, "timestamp": ev.timestamp}
        if ev.user_id is not None:
            record["user_id"] = ev.user_id
        if ev.participants:
            record["participants"] = [{"user_id": p.user_id, "user_name": p.user_name} for p in ev.participants]
        if not zcc:
            if et == EventType.FIRST_PACKET_TIMESTAMP:
                self.first_packet_timestamp = ev.timestamp
            elif et == EventType.PARTICIPANT_JOIN:
                for p in ev.participants:
                    self.participants[p.user_id] = p.user_name
            elif et == EventType.PARTICIPANT_LEAVE:
                for p in ev.participants:
                    self.participants.pop(p.user_id, None)
            elif et == EventType.MEDIA_CONNECTION_INTERRUPTED:
                self._on_media_interrupted(ev.raw.get("media_type"))
            if et in VIDEO_POLICY_EVENTS:
                self._follow_video(et, [p.user_id for p in ev.participants])
        self._emit(record)

    # ------------------------------------------------------------------ individual video (2.15)

    def _follow_video(self, event_type: int, user_ids: list[int]) -> None:
        """Track cameras from events 8/9/4 and apply ``video_follow`` (data_opt 4 only)."""
        if event_type == EventType.PARTICIPANT_VIDEO_ON:
            for uid in user_ids:
                self.video_on[uid] = None
        else:  # camera off or participant left: Zoom stops the subscribed user's video (2.15)
            for uid in user_ids:
                self.video_on.pop(uid, None)
            if self.video_user in user_ids:
                self.video_user = None
        s = self.settings
        if not s.individual_video or s.video_follow is None:
            return
        if s.video_follow == "user":
            want = s.video_subscribe_user
            if want is not None and event_type == EventType.PARTICIPANT_VIDEO_ON and want in user_ids and self.video_user != want:
                self._send_video_subscription(want)
        elif self.video_user is None and self.video_on:  # "first": keep one camera subscribed while any is on
            self._send_video_subscription(next(iter(self.video_on)))

    def _send_video_subscription(self, user_id: int) -> None:
        """Fire-and-forget msg 28 from the policy; msg 29 is checked in :meth:`_on_video_subscription_resp`."""
        sig = self._signaling
        if sig is None or sig.closed:
            return
        self.video_user = user_id
        sig.send(protocol.build_video_subscription(user_id, True, int(time.time() * 1000)))

    def _video_status_ok(self, status: Any) -> bool:
        """0, or 44 DUPLICATE_VIDEO_SUBSCRIPTION (profile B only: that user is already ours)."""
        if status == 0:
            return True
        dup = protocol.Status.DUPLICATE_VIDEO_SUBSCRIPTION
        return self.settings.status_profile == "B" and status == protocol.status_code(dup, "B")

    def _on_video_subscription_resp(self, doc: dict[str, Any]) -> None:
        status = doc.get("status_code", 0)
        uid = doc.get("user_id")
        if self._video_status_ok(status):
            return
        log.warning("stream %s: video subscription for %s refused: status %s %s", self.target.stream_id, uid, status, doc.get("reason"))
        if uid == self.video_user:
            self.video_user = None

    def _on_media_interrupted(self, mask: Any) -> None:
        """Event 7 / msg 8 reason 14: Zoom says a media socket died; reconnect it now.

        Sockets already seen closed are queued at once; one still open from our side is left to
        its own close event (the server has dropped it), which then finds the signal and
        reconnects without waiting. Closing it here could hit a socket we already replaced.
        """
        self._media_signal.set()
        if isinstance(mask, int) and not isinstance(mask, bool) and mask > 0:
            keys = ["all"] if "all" in self._media else [k for k in protocol.media_kinds(mask) if k in self._media]
        else:
            keys = list(self._media)
        for key in keys:
            conn = self._media.get(key)
            if conn is not None and conn.closed:
                self._queue_media(key)

    def _on_stream_state(self, upd: protocol.StateUpdate) -> None:
        try:
            state = StreamState(upd.state)
        except ValueError:
            log.warning("stream %s: unknown stream state %s", self.target.stream_id, upd.state)
            return
        self.stream_state = state
        self._emit({"type": "stream_state", "state": state.name, "reason": upd.reason, "timestamp": upd.timestamp})
        self._active.set()  # the server has spoken about the stream: start() need not wait longer
        if state is StreamState.PAUSED:
            self._set_state(SessionState.PAUSED)
        elif state is StreamState.RESUMED:
            self._set_state(SessionState.RESUMED)
        elif state is StreamState.TERMINATED:
            self._request_stop(upd.reason)
        elif state is StreamState.TERMINATING:
            self._no_reconnect = True
        elif state is StreamState.INTERRUPTED:
            if upd.reason == StopReason.STOP_BC_DATA_CONNECTION_INTERRUPTED:
                self._on_media_interrupted(None)
            elif upd.reason == StopReason.STOP_BC_SIGNAL_CONNECTION_INTERRUPTED:
                log.info("stream %s: signaling interrupted; expecting rtms_interrupted", self.target.stream_id)

    def _on_session_state(self, upd: protocol.StateUpdate) -> None:
        if upd.session_id:
            self.rtms_session_id = upd.session_id
        try:
            state = SessionState(upd.state)
        except ValueError:
            log.warning("stream %s: unknown session state %s", self.target.stream_id, upd.state)
            return
        if state is SessionState.STOPPED:
            self._no_reconnect = True
            if self.stop_reason is None and upd.reason:
                self.stop_reason = upd.reason
        self._active.set()
        self._set_state(state, reason=upd.reason if state is SessionState.STOPPED else None, timestamp=upd.timestamp)

    # ------------------------------------------------------------------ events out

    def _set_state(self, state: SessionState, *, reason: int | None = None, timestamp: int | None = None) -> None:
        if state is self.state:
            return
        self.state = state
        self._emit(
            {
                "type": "session_state",
                "state": state.name,
                "rtms_session_id": self.rtms_session_id,
                "stop_reason": reason if reason is not None else (self.stop_reason if state is SessionState.STOPPED else None),
                "timestamp": timestamp if timestamp else int(time.time() * 1000),
            }
        )

    def _emit(self, record: dict[str, Any]) -> None:
        cb = self._on_event
        if cb is None:
            return
        record.setdefault("stream_id", self.target.stream_id)
        try:
            cb(record)
        except Exception:  # a consumer bug must not break the stream
            log.exception("stream %s: on_event callback failed", self.target.stream_id)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The most telling error of a failed media TaskGroup: a handshake rejection first."""
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup[BaseException]) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                walk(e)
            else:
                leaves.append(e)

    walk(group)
    for e in leaves:
        if isinstance(e, HandshakeError):
            return e
    for e in leaves:
        if isinstance(e, GatewayError | OSError | TimeoutError):
            return e
    return leaves[0]
