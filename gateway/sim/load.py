"""Load mode: many meetings of audio from pre-built frames, so the simulator is never the bottleneck.

Frames are built once per negotiated audio params (``protocol.build_media`` + ``protocol.encode``)
with a fixed-width timestamp placeholder; sending one patches 13 ASCII digits in place and hands
the buffer to picows, so the hot path allocates almost nothing and never touches JSON or base64.

Two paces: ``realtime`` (every stream's audio at its send_rate, the 20 ms tick split into slots so
meetings are staggered across it instead of bursting together) and ``max`` (as fast as the
sockets drain, bounded by each transport's write buffer).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from picows import WSMsgType

from .. import protocol
from ..protocol import AudioParams, DataOption, MsgType

if TYPE_CHECKING:
    from .server import SimStream, Simulator, _Conn

log = logging.getLogger("gateway.sim.load")

_TS_PLACEHOLDER = 9_999_999_999_999  # 13 digits, the width of an epoch-ms timestamp until 2286
_TS_DIGITS = b"%d" % _TS_PLACEHOLDER
USER_ID_BASE = 16778240
USER_ID_STEP = 1024


@dataclass
class _Template:
    buf: bytearray
    ts_offset: int


class FrameBank:
    """Pre-encoded audio frames for one set of negotiated params: ``frames[user][j]`` templates."""

    def __init__(self, params: AudioParams, speakers: int, payloads: list[bytes] | None = None, variants: int = 50) -> None:
        self.params = params
        if params.data_opt == DataOption.AUDIO_MIXED_STREAM:
            users = [(0, "")]
        else:
            users = [(USER_ID_BASE + k * USER_ID_STEP, f"Load Speaker {k + 1}") for k in range(max(1, min(speakers, protocol.MAX_MULTI_STREAM_SPEAKERS)))]
        if not payloads:
            payloads = [bytes(params.bytes_per_packet)]
        self.users = users
        self.frames: list[list[_Template]] = []
        for k, (uid, name) in enumerate(users):
            row = []
            for j in range(variants):
                payload = payloads[(j + k) % len(payloads)]
                raw = protocol.encode(protocol.build_media(MsgType.MEDIA_DATA_AUDIO, data=payload, timestamp=_TS_PLACEHOLDER, user_id=uid, user_name=name))
                row.append(_Template(bytearray(raw), raw.index(_TS_DIGITS)))
            self.frames.append(row)
        self.frame_bytes = sum(len(t.buf) for row in self.frames for t in row[:1])


def _payloads_from_content(content: Any, params: AudioParams, intervals: int = 50) -> list[bytes]:
    """Real encoded payloads (any speaker) from the synthetic meeting, when one is available."""
    out: list[bytes] = []
    if content is None:
        return out
    try:
        for i in range(intervals * 4):
            for _, _, payload in content.audio_packets(params, i * params.send_rate):
                out.append(payload)
            if len(out) >= intervals:
                break
    except Exception:  # the bank works without content (silence of the right size)
        log.exception("content could not produce load payloads; using silence")
        return []
    return out


class LoadDriver:
    """Sends pre-built audio for every ready load stream; one driver per simulator."""

    def __init__(self, sim: Simulator, *, pace: str = "realtime", speakers: int = 1, slots: int = 4, max_batch: int = 16, write_buffer_limit: int = 1 << 20) -> None:
        if pace not in ("realtime", "max"):
            raise ValueError("pace must be 'realtime' or 'max'")
        self.sim = sim
        self.pace = pace
        self.speakers = speakers
        self.slots = max(1, slots)
        self.max_batch = max_batch
        self.write_buffer_limit = write_buffer_limit
        self.streams: list[SimStream] = []
        self.frames_sent = 0
        self.bytes_sent = 0
        self._banks: dict[tuple[int, ...], FrameBank] = {}
        self._content: Any = None
        self._task: asyncio.Task[None] | None = None

    def add(self, stream: SimStream) -> None:
        self.streams.append(stream)
        if self._content is None:
            self._content = stream.content
        if self._task is None:
            self._task = self.sim.loop.create_task(self._run())

    def bank(self, params: AudioParams) -> FrameBank:
        key = (params.content_type, params.sample_rate, params.channel, params.codec, params.data_opt, params.send_rate)
        bank = self._banks.get(key)
        if bank is None:
            bank = self._banks[key] = FrameBank(params, self.speakers, _payloads_from_content(self._content, params))
        return bank

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _ready_conn(self, stream: SimStream) -> _Conn | None:
        if stream.terminated or stream.paused:
            return None
        conn = stream.media.get("audio")
        if conn is None or not conn.ready or not conn.alive or stream.params.audio is None:
            return None
        if conn.transport is None or conn.transport.underlying_transport.is_closing():  # peer gone, callback pending
            return None
        return conn

    def _send_intervals(self, stream: SimStream, conn: _Conn, n: int) -> None:
        """Send ``n`` intervals of audio from the stream's cursor (every load user, one frame each)."""
        params = stream.params.audio
        assert params is not None
        bank = self.bank(params)
        rate = params.send_rate
        cursor = stream._cursor["audio"]
        send = conn.transport.send  # type: ignore[union-attr]
        text = WSMsgType.TEXT
        base = stream.started_ms
        frames = bank.frames
        variants = len(frames[0])
        sent = 0
        nbytes = 0
        for _ in range(n):
            ts = b"%d" % (base + cursor)
            j = (cursor // rate) % variants
            for row in frames:
                tpl = row[j]
                tpl.buf[tpl.ts_offset : tpl.ts_offset + 13] = ts
                send(text, tpl.buf)
                sent += 1
                nbytes += len(tpl.buf)
            cursor += rate
        stream._cursor["audio"] = cursor
        stream._count("audio", sent)
        self.frames_sent += sent
        self.bytes_sent += nbytes

    async def _run(self) -> None:
        try:
            if self.pace == "realtime":
                await self._realtime()
            else:
                await self._max()
        except asyncio.CancelledError:
            pass

    async def _realtime(self) -> None:
        loop = self.sim.loop
        slot_s = 0.020 / self.slots
        deadline = loop.time()
        slot = 0
        buffer_ms = int(self.sim.config.audio_buffer_s * 1000)
        while True:
            for i in range(slot, len(self.streams), self.slots):
                stream = self.streams[i]
                conn = self._ready_conn(stream)
                if conn is None:
                    continue
                rate = stream.params.audio.send_rate  # type: ignore[union-attr]
                el = stream.elapsed_ms()
                cursor = stream._cursor["audio"]
                if cursor < el - buffer_ms:
                    floor = el - buffer_ms
                    stream._cursor["audio"] = cursor = floor - floor % rate
                due = (el - cursor) // rate
                if due > 0:
                    self._send_intervals(stream, conn, due)
            slot = (slot + 1) % self.slots
            deadline += slot_s
            delay = deadline - loop.time()
            if delay < -1.0:
                deadline = loop.time()
            await asyncio.sleep(max(0.0, delay))

    async def _max(self) -> None:
        limit = self.write_buffer_limit
        while True:
            progressed = False
            for stream in self.streams:
                conn = self._ready_conn(stream)
                if conn is None:
                    continue
                if conn.transport.underlying_transport.get_write_buffer_size() > limit:  # type: ignore[union-attr]
                    continue
                self._send_intervals(stream, conn, self.max_batch)
                progressed = True
            await asyncio.sleep(0 if progressed else 0.001)
