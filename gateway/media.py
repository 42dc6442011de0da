"""Media WebSockets of one stream: open, DATA_HAND_SHAKE (msg 3/4), then frames go to the sink.

A :class:`MediaConnection` is the ``control`` object of a media listener
(:func:`gateway.listener.media_listener_class`): the listener parses media (msg 14-18) straight
into the stream's sink, answers keep-alives inline, and hands every other message to
:meth:`MediaConnection.on_control` as a dict. This class only does the handshake, confirms the
negotiated params to the sink (``sink.on_media_params(kind, params)``), counts, and tells the
session when the socket is lost. Reconnect decisions stay in :mod:`gateway.session`.

The listener class comes from :func:`gateway.listener.media_listener_class` unless the session
passes one explicitly (tests run the pure twin when the extension is not built).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from picows import WSCloseCode, WSListener, WSMsgType, WSTransport, ws_connect

from . import protocol
from .errors import HandshakeError
from .protocol import MsgType, StatusProfile
from .signaling import WS_SUBPROTOCOL_HEADERS

log = logging.getLogger("gateway.media")

#: Largest media frame accepted (a QHD JPEG in base64 fits easily).
MAX_MEDIA_FRAME_BYTES = 16 << 20


def media_listener_factory() -> Callable[..., WSListener]:
    """The media listener class chosen by :mod:`gateway.listener` (native, or pure with GATEWAY_PURE=1)."""
    from .listener import media_listener_class

    return media_listener_class()


def listener_stats(listener: Any) -> dict[str, Any]:
    """Counters of a media listener, whatever its implementation exposes."""
    if listener is None:
        return {}
    stats = getattr(listener, "stats", None)
    if callable(stats):
        try:
            out = stats()
            return dict(out) if isinstance(out, dict) else {}
        except Exception:
            return {}
    return {k: getattr(listener, k) for k in ("frames", "bytes", "drops") if hasattr(listener, k)}


class MediaConnection:
    """One media socket (one kind, or ``all``): the listener's ``control`` object.

    ``on_lost(conn)`` runs once when the socket goes away without :meth:`close` having been called;
    ``on_message(conn, doc)`` receives control messages other than msg 4 and keep-alives.
    """

    def __init__(
        self,
        kind: str,
        url: str,
        *,
        sink: Any,
        on_lost: Callable[[MediaConnection], None],
        on_message: Callable[[MediaConnection, dict[str, Any]], None] | None = None,
        listener_class: Callable[..., WSListener] | None = None,
        max_frame_bytes: int = MAX_MEDIA_FRAME_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.kind = kind
        self._ssl_context = ssl_context
        self.url = url
        self.sink = sink
        self._on_lost = on_lost
        self._on_message = on_message
        self._listener_class = listener_class or media_listener_factory()
        self._max_frame_bytes = max_frame_bytes
        self.listener: WSListener | None = None
        self._transport: WSTransport | None = None
        self._handshake: asyncio.Future[dict[str, Any]] | None = None
        self._closing = False
        self._disconnected = asyncio.Event()
        self.connected = False
        self.closed = False
        self.ready = False
        self.keepalives_answered = 0
        self.media_params: protocol.MediaParams | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(protocol.MEDIA_KINDS) if self.kind == "all" else (self.kind,)

    @property
    def media_type(self) -> int:
        return int(protocol.MediaType.ALL) if self.kind == "all" else int(protocol.MEDIA_KINDS[self.kind][0])

    # ------------------------------------------------------------------ open + handshake

    async def open(self, handshake: dict[str, Any], *, timeout_s: float, status_profile: StatusProfile | str) -> protocol.DataHandshakeResponse:
        """Connect, send msg 3, wait for msg 4; raises :class:`HandshakeError` on a non-zero status."""
        loop = asyncio.get_running_loop()
        self._handshake = loop.create_future()
        async with asyncio.timeout(timeout_s):
            _, self.listener = await ws_connect(
                lambda: self._listener_class(self.sink, self, max_frame_bytes=self._max_frame_bytes),
                self.url,
                ssl_context=self._ssl_context,
                websocket_handshake_timeout=timeout_s,
                extra_headers=WS_SUBPROTOCOL_HEADERS,
                max_frame_size=self._max_frame_bytes,
                logger_name="gateway.media",
            )
            self._send(handshake)
            doc = await self._handshake
        resp = protocol.parse_data_handshake_response(doc)
        if resp.status_code != 0:
            raise HandshakeError(
                resp.reason or "media handshake rejected",
                status_code=resp.status_code,
                status_name=protocol.status_name(resp.status_code, status_profile),
                socket=f"media:{self.kind}",
            )
        self.media_params = resp.media_params
        self._confirm_params(resp.media_params)
        self.ready = True
        return resp

    def _confirm_params(self, params: protocol.MediaParams) -> None:
        """Tell the sink the confirmed rate/channels/codec before the first frame arrives."""
        hook = getattr(self.sink, "on_media_params", None)
        if hook is None:
            return
        for kind in self.kinds:
            p = getattr(params, kind, None)
            if p is not None:
                hook(kind, p)

    def _send(self, msg: dict[str, Any]) -> None:
        if self._transport is None or self.closed:
            raise ConnectionError(f"media:{self.kind} socket is not open")
        self._transport.send(WSMsgType.TEXT, protocol.encode(msg))

    # ------------------------------------------------------------------ close

    def close(self, *, abort: bool = False) -> None:
        """Clean close, or ``abort`` (no close frame: the peer is presumed gone). Idempotent; no ``on_lost`` follows."""
        self._closing = True
        t = self._transport
        if t is not None and not self.closed:
            try:
                if abort:
                    t.disconnect(graceful=False)
                else:
                    t.send_close(WSCloseCode.OK)
                    t.disconnect()
            except Exception:
                log.debug("media close on a dead transport", exc_info=True)
        self._fail_handshake()

    async def wait_closed(self, grace_s: float = 5.0) -> None:
        t = self._transport
        if t is None or self.closed:
            return
        try:
            async with asyncio.timeout(grace_s):
                await self._disconnected.wait()
        except TimeoutError:
            t.disconnect(graceful=False)
            await self._disconnected.wait()

    # ------------------------------------------------------------------ listener control contract

    def on_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        self.connected = True

    def on_control(self, doc: dict[str, Any]) -> None:
        mt = doc.get("msg_type")
        if mt == MsgType.KEEP_ALIVE_REQ:  # already answered inline by the listener
            self.keepalives_answered += 1
            return
        if mt == MsgType.DATA_HAND_SHAKE_RESP and self._handshake is not None and not self._handshake.done():
            self._handshake.set_result(doc)
            return
        if self._on_message is not None:
            try:
                self._on_message(self, doc)
            except Exception:
                log.exception("media:%s: handling msg_type %s failed", self.kind, mt)

    def on_disconnected(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.ready = False
        self._disconnected.set()
        self._fail_handshake()
        if self._closing:
            return
        try:
            self._on_lost(self)
        except Exception:
            log.exception("media:%s: loss handler failed", self.kind)

    def _fail_handshake(self) -> None:
        fut = self._handshake
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionError(f"media:{self.kind} socket closed during the handshake"))
            fut.exception()

    def stats(self) -> dict[str, Any]:
        out = listener_stats(self.listener)
        out["keepalives_answered"] = self.keepalives_answered  # counted here for any listener
        out["open"] = self.connected and not self.closed
        return out
