"""End to end: the real simulator POSTs real signed webhooks to the real gateway, media arrives intact."""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import SessionsConfig
from gateway.protocol import WebhookKind
from gateway.sim.server import Simulator
from gateway.stats_sink import StatsSink
from tests.gateway.conftest import other_tasks, wait_for
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config

KINDS = ("audio", "video", "transcript", "chat")
#: the simulator's test-only self-signed certificate for 127.0.0.1
TEST_CERT_DIR = Path(__file__).resolve().parents[1] / "sim" / "data"


@pytest.fixture
def listener_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the native listener when built, else say so explicitly with the pure-Python twin."""
    try:
        from gateway._native import MediaListener  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        import gateway.listener

        monkeypatch.setattr(gateway.listener, "IMPLEMENTATION", "pure")


async def _gateway_and_sim(sim_factory: Any, sim_overrides: dict[str, Any] | None = None, **sessions: Any) -> tuple[Gateway, Simulator, dict[str, StatsSink]]:
    sinks: dict[str, StatsSink] = {}

    def sink_for(event: Any) -> StatsSink:
        return sinks.setdefault(event.stream_id, StatsSink(checksum=True, keep_texts=True))

    config = make_config(sessions=SessionsConfig(media_kinds=KINDS, media_params={"audio": {"data_opt": 2}}, **sessions))
    gw = Gateway(config, sink_factory=sink_for)
    await gw.start()
    sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url, **(sim_overrides or {}))
    return gw, sim, sinks


def open_sockets() -> int:
    """Sockets this process holds (the leak that matters for a gateway)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # closed while listing
            pass
    return count


def _crc(payloads: list[tuple[int, bytes]]) -> int:
    crc = 0
    for _, payload in payloads:
        crc = zlib.crc32(payload, crc)
    return crc


async def test_signed_webhooks_start_sessions_and_every_byte_arrives(sim_factory: Any, listener_available: None) -> None:
    gw, sim, sinks = await _gateway_and_sim(sim_factory)
    try:
        streams = [sim.create_stream() for _ in range(3)]
        await wait_for(lambda: len(sinks) == 3 and all(len(s.users["audio"]) >= 2 and s.frames["video"] >= 3 and s.transcripts >= 1 for s in sinks.values()), timeout_s=30)
        assert all(d.status == 200 for d in sim.webhooks.deliveries)
        assert all(s.client.buffer_data is True for s in streams)  # sessions.buffer_data reached msg 1
        assert {e.session.state.name for e in gw.streams.values()} <= {"STARTED", "RESUMED"}
        # pause (the simulator stops producing), let the gateway drain, compare exactly
        for stream in streams:
            stream.pause()

        def drained() -> bool:
            return all(sinks[s.stream_id].frames[k] >= n for s in streams for k, n in s.sent.media_counts.items())

        await wait_for(drained, timeout_s=15)
        for stream in streams:
            sink = sinks[stream.stream_id]
            assert {k: sink.frames[k] for k in stream.sent.media_counts} == stream.sent.media_counts
            assert len(stream.sent.audio) >= 2  # several speakers, one audio stream each
            for uid, payloads in stream.sent.audio.items():
                assert sink.crc[("audio", uid)] == _crc(payloads)
            for uid, payloads in stream.sent.video.items():
                assert sink.crc[("video", uid)] == _crc(payloads)
            assert sink.texts == stream.sent.transcript_texts()
            assert sink.drops == {}
        # stop through Zoom's path: TERMINATED on signaling + rtms_stopped webhook
        for stream in streams:
            stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=15)
        await sim.webhooks.drain()
        assert gw.metrics.registry.get_sample_value("rtms_sessions_ended_total", {"outcome": "closed"}) == 3
        assert gw.metrics.registry.get_sample_value("rtms_stream_start_seconds_count") == 3
        assert gw.metrics.registry.get_sample_value("rtms_webhook_delay_seconds_count") == 6  # 3 started + 3 stopped
        total_audio = sum(s.sent.media_counts["audio"] for s in streams)
        assert gw.metrics.registry.get_sample_value("rtms_media_frames_total", {"kind": "audio"}) == total_audio
    finally:
        await gw.close()
    assert other_tasks() == set()


async def test_forged_stale_and_duplicate_webhooks_never_start_a_second_session(sim_factory: Any, listener_available: None) -> None:
    gw, sim, sinks = await _gateway_and_sim(sim_factory)
    try:
        stream = sim.create_stream(webhook=False)
        body = stream.webhook_body(WebhookKind.STARTED)
        (forged,) = await sim.webhooks.post(body, forge=True)
        (stale,) = await sim.webhooks.post(body, stale_s=400)
        assert (forged.status, stale.status) == (401, 401)
        assert gw.streams == {} and sinks == {}
        first, second = await sim.webhooks.post(body, duplicates=2)
        assert first.status == 200
        # the redelivery is either an exact replay (same second: 409) or a duplicate (200, deduped)
        assert second.status in (200, 409)
        await wait_for(lambda: sinks and next(iter(sinks.values())).frames["audio"] > 10, timeout_s=20)
        assert list(gw.streams) == [stream.stream_id]
        assert stream.client.signaling_handshakes == 1
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=15)
    finally:
        await gw.close()


async def test_failover_webhook_moves_the_stream_to_the_new_server(sim_factory: Any, listener_available: None) -> None:
    gw, sim, sinks = await _gateway_and_sim(sim_factory)
    try:
        stream = sim.create_stream()
        await wait_for(lambda: sinks and next(iter(sinks.values())).frames["audio"] > 10, timeout_s=20)
        old_urls = gw.streams[stream.stream_id].server_urls
        await stream.failover()  # drops every socket, new rtms_started with the second listener's URL
        await wait_for(lambda: gw.streams[stream.stream_id].failovers == 1, timeout_s=10)
        assert gw.streams[stream.stream_id].server_urls != old_urls
        sink = sinks[stream.stream_id]
        before = sink.frames["audio"]
        await wait_for(lambda: sink.frames["audio"] > before + 20, timeout_s=20)
        assert stream.client.signaling_handshakes == 2
        assert gw.metrics.registry.get_sample_value("rtms_failovers_total") == 1
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=15)
    finally:
        await gw.close()


async def test_fifty_meetings_through_webhooks_in_one_process(sim_factory: Any, listener_available: None) -> None:
    sinks: dict[str, StatsSink] = {}
    config = make_config(sessions=SessionsConfig(media_kinds=("audio", "transcript"), max_streams=50))
    gw = Gateway(config, sink_factory=lambda ev: sinks.setdefault(ev.stream_id, StatsSink()))
    await gw.start()
    sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url, scopes=("audio", "transcript"))
    try:
        streams = [sim.create_stream() for _ in range(50)]
        await wait_for(lambda: len(sinks) == 50 and all(s.frames["audio"] >= 10 for s in sinks.values()), timeout_s=60)
        assert len(gw.streams) == 50
        # one more is refused loudly, the fifty keep running
        extra = sim.create_stream()
        await sim.webhooks.drain()
        assert sim.webhooks.deliveries[-1].status == 503
        assert extra.stream_id not in gw.streams
        for stream in streams:
            stream.pause()
        await wait_for(lambda: all(sinks[s.stream_id].frames["audio"] >= s.sent.media_counts.get("audio", 0) for s in streams), timeout_s=30)
        assert all(sinks[s.stream_id].frames["audio"] == s.sent.media_counts["audio"] for s in streams)
        for stream in (*streams, extra):
            stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=30)
    finally:
        await gw.close()
    assert other_tasks() == set()


async def test_graceful_shutdown_asks_zoom_to_close_every_stream_and_leaks_nothing(sim_factory: Any, listener_available: None) -> None:
    sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET)
    sockets_before = open_sockets()
    sinks: dict[str, StatsSink] = {}
    gw = Gateway(make_config(sessions=SessionsConfig(media_kinds=KINDS)), sink_factory=lambda ev: sinks.setdefault(ev.stream_id, StatsSink()))
    await gw.start()
    sim.webhooks.url = gw.webhook_url
    streams = [sim.create_stream() for _ in range(4)]
    await wait_for(lambda: len(sinks) == 4 and all(s.frames["audio"] > 5 for s in sinks.values()), timeout_s=30)
    await gw.close()
    assert gw.streams == {}
    for stream in streams:
        assert 21 in stream.client.types()  # STREAM_CLOSE_REQ on signaling
    assert gw.metrics.registry.get_sample_value("rtms_sessions_ended_total", {"outcome": "closed"}) == 4
    assert other_tasks() == set()
    await sim.webhooks.close()
    await wait_for(lambda: open_sockets() <= sockets_before, timeout_s=10)


async def test_shared_memory_publishing_reaches_a_consumer_and_leaves_nothing_behind(sim_factory: Any, listener_available: None, tmp_path: Any) -> None:
    from dataclasses import replace

    from gateway import client
    from gateway.config import PublishConfig

    config = make_config(sessions=SessionsConfig(media_kinds=("audio", "transcript"), media_params={"audio": {"data_opt": 2}}))
    config = replace(config, publish=PublishConfig(shm=True, shm_dir=str(tmp_path), shm_prefix="gw-e2e"))
    gw = Gateway(config)
    await gw.start()
    sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url)
    try:
        stream = sim.create_stream()
        await wait_for(lambda: len(client.list_streams("gw-e2e", str(tmp_path))) == 1, timeout_s=20)
        (info,) = client.list_streams("gw-e2e", str(tmp_path))
        assert info.stream_id == stream.stream_id
        reader = client.attach(info, "gw-e2e", str(tmp_path))
        await wait_for(lambda: len([r for r in reader.participants() if r.user_id]) >= 2, timeout_s=20)
        stream.pause()
        await wait_for(lambda: gw.streams[stream.stream_id].stats()["frames"].get("audio", 0) >= stream.sent.media_counts["audio"], timeout_s=15)

        def delivered(uid: int) -> tuple[int, int]:
            """(frames received, frames lost) of one participant ring, gap runs excluded."""
            frames, _, lost, gaps = reader.audio(uid).read_since(0)
            return len(frames) - sum(g.length for g in gaps), lost

        expected = {uid: sum(len(p) for _, p in payloads) // 2 for uid, payloads in stream.sent.audio.items()}
        # the audio engine ([audio] engine, the default) publishes its last reorder window once audio stops
        await wait_for(lambda: all(delivered(uid)[0] >= n for uid, n in expected.items()), timeout_s=5)
        for uid, n in expected.items():
            assert delivered(uid) == (n, 0)
        events, _, _ = reader.events().read_since()
        types = {e.get("type") for e in events}
        assert "session_state" in types  # session events published by the app
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=15)
        assert reader.ended
        reader.close()
    finally:
        await gw.close()
    assert [p.name for p in tmp_path.iterdir()] == []  # segments and directory removed


async def test_interrupted_webhook_reconnects_the_stream(sim_factory: Any, listener_available: None) -> None:
    # Zoom's real 60 s reconnection window: the session's first retry follows Zoom's 3 s backoff
    gw, sim, sinks = await _gateway_and_sim(sim_factory, {"time_scale": 1.0})
    try:
        stream = sim.create_stream()
        await wait_for(lambda: sinks and next(iter(sinks.values())).frames["audio"] > 10, timeout_s=20)
        stream.drop_signaling()  # signaling lost: the simulator posts *.rtms_interrupted
        await wait_for(lambda: gw.streams[stream.stream_id].interruptions == 1, timeout_s=10)
        await wait_for(lambda: stream.client.signaling_handshakes == 2, timeout_s=30)
        sink = sinks[stream.stream_id]
        before = sink.frames["audio"]
        await wait_for(lambda: sink.frames["audio"] > before + 20, timeout_s=20)
        assert gw.metrics.registry.get_sample_value("rtms_webhook_events_total", {"kind": "interrupted", "action": "interrupted"}) == 1
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=15)
    finally:
        await gw.close()


async def test_https_webhooks_and_wss_to_the_rtms_server(sim_factory: Any, listener_available: None) -> None:
    """TLS on both sides: Zoom -> gateway over HTTPS, gateway -> RTMS over wss:// with a custom CA."""
    import dataclasses
    import ssl

    import aiohttp
    import orjson

    from gateway.config import ServerConfig
    from tests.gateway.test_app_fakes import sign

    cert, key = str(TEST_CERT_DIR / "test_cert.pem"), str(TEST_CERT_DIR / "test_key.pem")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sinks: dict[str, StatsSink] = {}
    config = make_config(sessions=SessionsConfig(media_kinds=("audio", "transcript"), ca_file=cert))
    config = dataclasses.replace(config, server=ServerConfig(host="127.0.0.1", port=0, tls_cert=cert, tls_key=key)).validate()
    gw = Gateway(config, sink_factory=lambda ev: sinks.setdefault(ev.stream_id, StatsSink()))
    await gw.start()
    try:
        assert gw.webhook_url.startswith("https://")
        sim = await sim_factory(client_id="client-id-1", client_secret=CLIENT_SECRET, webhook_secret=WEBHOOK_SECRET, ssl_context=server_ctx)
        stream = sim.create_stream(webhook=False)
        body = orjson.dumps(stream.webhook_body(WebhookKind.STARTED))
        assert stream.webhook_body(WebhookKind.STARTED)["payload"]["server_urls"].startswith("wss://")
        client_ctx = ssl.create_default_context(cafile=cert)
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.webhook_url, data=body, headers=sign(body), ssl=client_ctx) as resp:
                assert resp.status == 200
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # the default CAs do not know this cert
                await http.post(gw.webhook_url, data=body, headers=sign(body))
        await wait_for(lambda: sinks and next(iter(sinks.values())).frames["audio"] > 10, timeout_s=20)
        stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=15)
    finally:
        await gw.close()


async def test_a_rejected_handshake_ends_only_that_stream_with_a_clear_error(sim_factory: Any, listener_available: None) -> None:
    from gateway.protocol import Status

    gw, sim, sinks = await _gateway_and_sim(sim_factory)
    ended: dict[str, dict[str, Any]] = {}
    gw.event_listeners.append(lambda sid, doc: ended.__setitem__(sid, doc) if doc.get("type") == "stream_ended" else None)
    try:
        good = [sim.create_stream() for _ in range(2)]
        bad = sim.create_stream(webhook=False)
        bad.reject_next_signaling(Status.INVALID_SIGNATURE)
        await sim.webhooks.post(bad.webhook_body(WebhookKind.STARTED))
        await wait_for(lambda: bad.stream_id in ended, timeout_s=20)
        assert ended[bad.stream_id]["outcome"] == "error"
        assert "INVALID_SIGNATURE" in ended[bad.stream_id]["error"]
        await wait_for(lambda: all(sinks.get(s.stream_id) and sinks[s.stream_id].frames["audio"] > 10 for s in good), timeout_s=20)
        assert sorted(gw.streams) == sorted(s.stream_id for s in good)
        assert gw.metrics.registry.get_sample_value("rtms_sessions_ended_total", {"outcome": "error"}) == 1
        for stream in good:
            stream.terminate()
        await wait_for(lambda: not gw.streams, timeout_s=15)
    finally:
        await gw.close()
