"""The signaling WebSocket of one stream: bytes in and out, keep-alive answers, nothing else.

Decisions (what a message means for the stream) stay in :mod:`gateway.session`; this module only
frames JSON, answers ``KEEP_ALIVE_REQ`` (msg 12) inline in the picows callback so control never
waits behind anything, records when traffic last arrived (the client watchdog reads it), and lets
the session wait for one reply type (msg 2, 22, 29, ...) with :meth:`SignalingConnection.expect`.

Signaling is low rate, so a plain Python :class:`picows.WSListener` is enough here.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from . import protocol
from .errors import ProtocolError
from .protocol import MsgType

log = logging.getLogger("gateway.signaling")

#: The official client sends this subprotocol on every upgrade (OFFICIAL_CLIENT.md 3.1); servers
#: need not echo it.
WS_SUBPROTOCOL_HEADERS = {"Sec-WebSocket-Protocol": "websocket"}
MAX_SIGNALING_FRAME_BYTES = 1 << 20


class SignalingListener(WSListener):
    """picows callbacks for the signaling socket; forwards parsed dicts to the owner."""

    def __init__(self, conn: SignalingConnection) -> None:
        super().__init__()
        self._conn = conn
        self._fragments: list[bytes] = []

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._conn._on_connected(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mt = frame.msg_type
        if mt == WSMsgType.TEXT or mt == WSMsgType.BINARY or mt == WSMsgType.CONTINUATION:
            if not frame.fin:  # fragmented message (rare): gather until the final frame
                self._fragments.append(frame.get_payload_as_bytes())
                return
            if self._fragments:
                self._fragments.append(frame.get_payload_as_bytes())
                payload = b"".join(self._fragments)
                self._fragments.clear()
            else:
                payload = frame.get_payload_as_bytes()
            self._conn._on_payload(payload)
        elif mt == WSMsgType.CLOSE:
            self._conn.close_code = frame.get_close_code()
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._conn._on_disconnected()


class SignalingConnection:
    """One signaling socket. Create, :meth:`connect`, :meth:`send`, :meth:`close`.

    ``on_message(doc)`` receives every message except keep-alive requests (answered here and
    counted) and replies someone is waiting for via :meth:`expect`. ``on_closed()`` runs once when
    the socket goes away, whoever closed it. Both run on the event-loop thread and must not raise.
    """

    def __init__(
        self,
        url: str,
        *,
        on_message: Callable[[dict[str, Any]], None],
        on_closed: Callable[[], None],
        clock: Callable[[], float],
        label: str = "signaling",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self._ssl_context = ssl_context
        self.label = label
        self._on_message = on_message
        self._on_closed_cb = on_closed
        self._clock = clock
        self._transport: WSTransport | None = None
        self._waiters: dict[int, list[asyncio.Future[dict[str, Any]]]] = {}
        self._closing = False
        self.connected = False
        self.closed = False
        self.close_code: WSCloseCode | None = None
        self.last_rx = clock()
        self.keepalives_answered = 0
        self.keepalive_lag_ms: int | None = None  # our clock minus the server's request timestamp
        self.messages_in = 0
        self.messages_out = 0
        self.unparseable = 0
        self.unknown_types = 0

    # ------------------------------------------------------------------ lifecycle

    async def connect(self, timeout_s: float) -> None:
        """Open the WebSocket (raises ``OSError``/``TimeoutError``/picows handshake errors).

        If cancelled during the HTTP upgrade, picows's own handshake timer (same ``timeout_s``)
        closes the half-open socket: no descriptor outlives that timer.
        """
        async with asyncio.timeout(timeout_s):
            await ws_connect(
                lambda: SignalingListener(self),
                self.url,
                ssl_context=self._ssl_context,
                websocket_handshake_timeout=timeout_s,
                extra_headers=WS_SUBPROTOCOL_HEADERS,
                max_frame_size=MAX_SIGNALING_FRAME_BYTES,
                logger_name="gateway.signaling",
            )

    def close(self) -> None:
        """Start a clean close (idempotent); :meth:`wait_closed` waits for it."""
        self._closing = True
        t = self._transport
        if t is not None and not self.closed:
            try:
                t.send_close(WSCloseCode.OK)
                t.disconnect()
            except Exception:  # transport already gone
                log.debug("signaling close on a dead transport", exc_info=True)
        self._fail_waiters()

    def abort(self) -> None:
        """Drop the socket without a close frame."""
        self._closing = True
        t = self._transport
        if t is not None and not self.closed:
            t.disconnect(graceful=False)
        self._fail_waiters()

    async def wait_closed(self, grace_s: float = 5.0) -> None:
        """Wait until the transport is gone; aborts it if the peer does not finish the close in time."""
        t = self._transport
        if t is None or self.closed:
            return
        try:
            async with asyncio.timeout(grace_s):
                await t.wait_disconnected()
        except TimeoutError:
            t.disconnect(graceful=False)
            try:
                await t.wait_disconnected()
            except Exception:
                log.debug("signaling ended with an error", exc_info=True)
        except Exception:  # wait_disconnected re-raises a listener error: already logged
            log.debug("signaling ended with an error", exc_info=True)

    async def measure_rtt(self, rounds: int = 1, timeout_s: float = 5.0) -> float:
        """Round-trip time in ms by WebSocket ping/pong (median of ``rounds``)."""
        t = self._transport
        if t is None or self.closed:
            raise ConnectionError("signaling socket is closed")
        async with asyncio.timeout(timeout_s):
            samples = sorted(await t.measure_roundtrip_time(rounds))
        return samples[len(samples) // 2] * 1000.0

    # ------------------------------------------------------------------ sending and waiting

    def send(self, msg: dict[str, Any]) -> bool:
        """Send one JSON message (text frame); False when the socket is not open."""
        t = self._transport
        if t is None or self.closed or self._closing:
            return False
        t.send(WSMsgType.TEXT, protocol.encode(msg))
        self.messages_out += 1
        return True

    def expect(self, msg_type: int) -> asyncio.Future[dict[str, Any]]:
        """A future for the next message of ``msg_type`` (it then skips ``on_message``)."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self.closed:
            fut.set_exception(ConnectionError("signaling socket is closed"))
        else:
            self._waiters.setdefault(int(msg_type), []).append(fut)
        return fut

    # ------------------------------------------------------------------ listener callbacks

    def _on_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        self.connected = True
        self.last_rx = self._clock()

    def _on_payload(self, payload: bytes) -> None:
        self.last_rx = self._clock()
        self.messages_in += 1
        try:
            doc = protocol.decode(payload)
        except ProtocolError as exc:
            if exc.msg_type is not None:
                self.unknown_types += 1  # future msg types are ignored, never fatal
            else:
                self.unparseable += 1
                log.warning("%s: unparseable message dropped: %s", self.label, exc)
            return
        mt = doc["msg_type"]
        if mt == MsgType.KEEP_ALIVE_REQ:  # answer first: control never waits
            self.send(protocol.build_keep_alive_response(doc))
            self.keepalives_answered += 1
            ts = doc.get("timestamp")
            if isinstance(ts, int) and not isinstance(ts, bool):
                self.keepalive_lag_ms = int(time.time() * 1000) - ts
            return
        waiters = self._waiters.get(mt)
        while waiters:
            fut = waiters.pop(0)
            if not fut.done():
                fut.set_result(doc)
                return
        try:
            self._on_message(doc)
        except Exception:  # one bad message must never kill the socket or the stream
            log.exception("%s: handling msg_type %s failed", self.label, mt)

    def _on_disconnected(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._fail_waiters()
        if self._closing:
            return
        try:
            self._on_closed_cb()
        except Exception:
            log.exception("%s: close handler failed", self.label)

    def _fail_waiters(self) -> None:
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(ConnectionError("signaling socket closed"))
                    fut.exception()  # mark retrieved: nobody may be awaiting any more
        self._waiters.clear()

    @property
    def closing(self) -> bool:
        return self._closing

