"""Every resource limit is configurable, enforced loudly (typed error or counted drop + log) and tested.

Limits (docs/RESILIENCE.md has the table): media frame size (``MediaConnection.max_frame_bytes``),
per-stream memory (shared-memory ring sizes, fixed at creation), number of streams
(``sessions.max_streams``) and webhook body size (``server.max_body_bytes``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
from picows import WSListener, WSMsgType, WSTransport, ws_create_server

from gateway import protocol
from gateway.app import Gateway
from gateway.config import SessionsConfig
from gateway.media import MAX_MEDIA_FRAME_BYTES, MediaConnection
from gateway.protocol import AudioParams, VideoParams
from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher
from tests.gateway.test_app_fakes import FakeSession, fake_factory, make_config, sign, started
from tests.native.helpers import RecordingSink, media

LIMIT = 4096


class _MediaServer(WSListener):
    """Answers msg 3 with msg 4, then sends the frames the test queued (as given: whole or fragments)."""

    frames: list[tuple[WSMsgType, bytes, bool]] = []

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            transport.send(WSMsgType.TEXT, protocol.encode(protocol.build_data_handshake_response(0)))
            for msg_type, payload, fin in self.frames:
                transport.send(msg_type, payload, fin)


async def _connection(frames: list[tuple[WSMsgType, bytes, bool]]) -> tuple[MediaConnection, RecordingSink, list[Any], Any]:
    _MediaServer.frames = frames
    server = await ws_create_server(lambda request: _MediaServer(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = RecordingSink()
    lost: list[Any] = []
    conn = MediaConnection("audio", f"ws://127.0.0.1:{port}/media", sink=sink, on_lost=lost.append, max_frame_bytes=LIMIT)
    await conn.open({"msg_type": 3}, timeout_s=5, status_profile="B")
    return conn, sink, lost, server


async def _settle(predicate: Any, limit_s: float = 5.0) -> None:
    async with asyncio.timeout(limit_s):
        while not predicate():  # noqa: ASYNC110 - polls state owned by other objects
            await asyncio.sleep(0.01)


def test_frame_limit_default_is_bounded() -> None:
    assert MAX_MEDIA_FRAME_BYTES == 16 << 20  # a 1080p key frame is well under 1 MiB


async def test_oversized_fragmented_message_is_a_counted_drop_and_the_socket_lives_on() -> None:
    big = media(14, bytes(LIMIT))  # > LIMIT once base64 + JSON
    small = media(14, bytes(320))
    half = len(big) // 2
    conn, sink, lost, server = await _connection(
        [(WSMsgType.TEXT, big[:half], False), (WSMsgType.CONTINUATION, big[half:], True), (WSMsgType.TEXT, small, True)])
    try:
        await _settle(lambda: any(c[0] == "audio" for c in sink.calls))
        assert sink.calls == [("drop", "unknown", "too_large"), ("audio", 16778240, "John Smith", 1738392033699, bytes(320))]
        stats = conn.stats()
        assert stats["drops_by_reason"]["too_large"] == 1
        assert stats["open"] and lost == []
    finally:
        conn.close()
        server.close()


async def test_oversized_single_frame_closes_the_socket_loudly(caplog: pytest.LogCaptureFixture) -> None:
    """A single frame over the limit is refused by the WebSocket layer (close 1009, logged at ERROR)
    and the connection is reported lost, so the session reconnects it: never half-read."""
    caplog.set_level(logging.ERROR)
    conn, sink, lost, server = await _connection([(WSMsgType.TEXT, media(14, bytes(LIMIT)), True)])
    try:
        await _settle(lambda: bool(lost))
        assert lost == [conn] and conn.closed
        assert not any(c[0] == "audio" for c in sink.calls)
        assert any("exceeding max allowed size" in r.getMessage() for r in caplog.records)
    finally:
        conn.close()
        server.close()


async def _post(url: str, body: bytes | Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read())


def _count(gw: Gateway, result: str) -> float:
    return gw.metrics.registry.get_sample_value("rtms_webhook_requests_total", {"result": result}) or 0.0


async def test_webhook_body_limit_is_configurable_and_holds_without_content_length(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    FakeSession.instances.clear()
    async with Gateway(make_config(max_body_bytes=2048), session_factory=fake_factory()) as gw:
        body = started(stream_id="x" * 1800)  # a valid, signed event just under the limit
        assert len(body) < 2048
        assert (await _post(gw.webhook_url, body, sign(body)))[0] == 200
        big = b'{"event": "meeting.rtms_started", "pad": "' + b"x" * 2100 + b'"}'
        code, answer = await _post(gw.webhook_url, big, sign(big))
        assert (code, answer["reason"]) == (413, "body_too_large")

        async def chunks() -> Any:  # chunked transfer: no Content-Length to trust
            for _ in range(10):
                yield b"x" * 512

        code, answer = await _post(gw.webhook_url, chunks(), sign(b"x" * 5120))
        assert (code, answer["reason"]) == (413, "body_too_large")
        assert _count(gw, "body_too_large") == 2
        assert any("body_too_large" in r.getMessage() for r in caplog.records)
        assert list(gw.streams) == ["x" * 1800]


async def test_streams_beyond_capacity_are_refused_not_half_served(caplog: pytest.LogCaptureFixture) -> None:
    FakeSession.instances.clear()
    async with Gateway(make_config(sessions=SessionsConfig(max_streams=3)), session_factory=fake_factory()) as gw:
        codes = []
        for i in range(5):
            body = started(stream_id=f"cap{i}")
            codes.append((await _post(gw.webhook_url, body, sign(body, ts=int(time.time()))))[0])
        assert codes == [200, 200, 200, 503, 503]
        assert sorted(gw.streams) == ["cap0", "cap1", "cap2"]
        assert len(FakeSession.instances) == 3  # no session (no socket, no sink) for a refused stream
        base = gw.webhook_url.rsplit("/", 1)[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/streams") as resp:
                status = await resp.json()
            async with http.get(base + "/metrics") as resp:
                metrics = await resp.text()
        assert "cap3" not in orjson.dumps(status).decode() and "cap4" not in orjson.dumps(status).decode()
        assert 'rtms_sessions_refused_total{reason="capacity"} 2.0' in metrics
        assert "rtms_sessions_max 3.0" in metrics
        assert sum("REFUSED stream" in r.getMessage() for r in caplog.records) == 2


def test_per_stream_shared_memory_is_fixed_by_configuration() -> None:
    """Ring sizes come from the configuration; writing never grows a segment, and a video frame
    larger than its ring is a counted drop (tests/shm/test_records.py checks the count)."""
    prefix = f"rtms-lim-{uuid.uuid4().hex[:8]}"
    sizes = {}
    directory = ShmDirectory(ShmConfig(prefix=prefix))
    try:
        for video_kib in (64, 256):
            cfg = ShmConfig(prefix=prefix, video_bytes=video_kib * 1024, audio_seconds=2.0)
            pub = ShmPublisher(f"lim-{video_kib}", directory, config=cfg, audio=AudioParams(), video=VideoParams())
            try:
                before = os.stat(pub.path).st_size
                for i in range(300):
                    pub.on_video(1, "u", 1_738_392_033_000 + 40 * i, memoryview(bytes(900)))
                    pub.on_audio(1, "u", 1_738_392_033_000 + 20 * i, memoryview(bytes(640)))
                assert os.stat(pub.path).st_size == before
                sizes[video_kib] = before
            finally:
                pub.close()
    finally:
        directory.close()
    assert sizes[256] - sizes[64] >= 192 * 1024
    assert [n for n in os.listdir("/dev/shm") if n.startswith(prefix + ".")] == []


def test_frame_limit_is_a_configuration_key_that_reaches_the_media_sockets() -> None:
    from gateway.config import ConfigError, load_config

    creds = {"ZM_RTMS_CLIENT": "cid", "ZM_RTMS_SECRET": "csecret-xyz", "ZM_RTMS_WEBHOOK_SECRET": "wsecret-xyz"}
    cfg = load_config(None, env={**creds, "GATEWAY_SESSIONS_MAX_FRAME_BYTES": "1048576"})
    assert cfg.sessions.max_frame_bytes == 1 << 20
    with pytest.raises(ConfigError, match=r"sessions\.max_frame_bytes"):
        load_config(None, env={**creds, "GATEWAY_SESSIONS_MAX_FRAME_BYTES": "100"})
    gw = Gateway(make_config(sessions=SessionsConfig(max_frame_bytes=1 << 20)))
    event = protocol.parse_webhook(started(stream_id="frame-limit"))
    session = gw._default_session_factory()(event, RecordingSink(), lambda doc: None)
    assert session.settings.max_frame_bytes == 1 << 20
