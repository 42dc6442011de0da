"""Secrets never leak into logs, metrics or /streams; safe defaults (0600 segments, loopback binds).

A real gateway + simulator session runs with every logger at DEBUG (gateway, picows, aiohttp,
simulator); every log line, the /metrics text, the /streams JSON and /healthz are then searched
for the client secret, the webhook secret, every handshake signature (msg 1/msg 3 HMAC) and every
webhook signature the simulator sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import uuid
from typing import Any

import aiohttp
import pytest

from gateway import protocol
from gateway.app import Gateway
from gateway.config import GatewayConfig, PublishConfig, ServerConfig, SessionsConfig
from gateway.protocol import AudioParams
from gateway.shm import ShmConfig, ShmDirectory, ShmPublisher
from gateway.sim.server import SimConfig, Simulator
from gateway.stats_sink import StatsSink
from gateway.udp import UdpConfig
from tests.gateway.test_app_fakes import CLIENT_SECRET, WEBHOOK_SECRET, make_config


class _Collect(logging.Handler):
    """Keeps every formatted record, arguments and exception text included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def _wait(predicate: Any, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls state owned by other objects
            await asyncio.sleep(0.02)


async def test_no_secret_in_debug_logs_metrics_or_streams() -> None:
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    sinks: dict[str, StatsSink] = {}
    config = make_config(sessions=SessionsConfig(media_kinds=("audio", "transcript")))
    gw = Gateway(config, sink_factory=lambda event: sinks.setdefault(event.stream_id, StatsSink()))
    sim: Simulator | None = None
    try:
        await gw.start()
        sim = Simulator(SimConfig(time_scale=0.05, participants=2, client_id="client-id-1", client_secret=CLIENT_SECRET,
                                  webhook_secret=WEBHOOK_SECRET, webhook_url=gw.webhook_url))
        await sim.start()
        streams = [sim.create_stream() for _ in range(2)]
        await _wait(lambda: len(sinks) == 2 and all(s.frames["audio"] > 5 for s in sinks.values()))
        streams[0].abort_media("audio")  # a reconnection: msg 3 signed again
        await _wait(lambda: sum(d.status == 200 for d in sim.webhooks.deliveries) >= 2)
        await asyncio.sleep(0.5)
        base = gw.webhook_url.rsplit("/", 1)[0]
        async with aiohttp.ClientSession() as http:
            pages = {}
            for path in ("/metrics", "/streams", "/healthz"):
                async with http.get(base + path) as resp:
                    pages[path] = await resp.text()
        texts = {"logs": "\n".join(handler.lines), **pages, "repr": repr(gw) + repr(gw.config)}
        for stream in streams:
            stream.terminate()
        await _wait(lambda: not gw.streams)
    finally:
        await gw.close()
        if sim is not None:
            await sim.close()
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert sim is not None
    secrets_ = {"client secret": CLIENT_SECRET, "webhook secret": WEBHOOK_SECRET}
    for stream in streams:
        sig = protocol.handshake_signature("client-id-1", CLIENT_SECRET, stream.instance_id, stream.stream_id)
        secrets_[f"handshake signature {stream.stream_id}"] = sig
    for delivery in sim.webhooks.deliveries:
        secrets_[f"webhook signature {delivery.event}"] = delivery.headers["x-zm-signature"].removeprefix("v0=")
    assert len(handler.lines) > 20  # DEBUG logging really ran
    assert "rtms_" in texts["/metrics"] and streams[1].stream_id in texts["/streams"]
    for where, text in texts.items():
        for what, value in secrets_.items():
            assert value not in text, f"{what} appears in {where}"


def test_shared_memory_segments_are_owner_only_by_default() -> None:
    prefix = f"rtms-sec-{uuid.uuid4().hex[:8]}"
    config = ShmConfig(prefix=prefix)
    assert config.group is None and PublishConfig().shm_group == ""
    directory = ShmDirectory(config)
    publisher = ShmPublisher("stream-secret-test", directory, config=config, audio=AudioParams())
    try:
        names = [n for n in os.listdir(config.shm_dir) if n.startswith(prefix + ".")]
        assert len(names) >= 2  # the directory and the stream's segments
        for name in names:
            mode = stat.S_IMODE(os.stat(os.path.join(config.shm_dir, name)).st_mode)
            assert mode == 0o600, (name, oct(mode))
    finally:
        publisher.close()
        directory.close()
    assert [n for n in os.listdir(config.shm_dir) if n.startswith(prefix + ".")] == []


def test_network_listeners_bind_to_loopback_by_default() -> None:
    assert ServerConfig().host == "127.0.0.1"  # webhook, /metrics, /streams, /healthz share this server
    assert GatewayConfig().server.host == "127.0.0.1"
    assert UdpConfig().bind == "127.0.0.1"


def test_rtp_sender_socket_is_bound_to_loopback_by_default() -> None:
    from gateway.udp import RtpSender

    sender = RtpSender(96, 16000, ("127.0.0.1", 9))
    try:
        assert sender.sock.getsockname()[0] == "127.0.0.1"
    finally:
        sender.close()


async def test_metrics_server_really_listens_on_loopback_only() -> None:
    gw = Gateway(make_config())
    await gw.start()
    try:
        assert gw.webhook_url.startswith("http://127.0.0.1:")
        port = int(gw.webhook_url.split(":")[2].split("/")[0])
        with pytest.raises(OSError):  # nothing answers on a non-loopback address of this host
            _, writer = await asyncio.wait_for(asyncio.open_connection(_non_loopback_address(), port), 2)
            writer.close()
    finally:
        await gw.close()


def _non_loopback_address() -> str:
    """An address of this host that is not loopback (the UDP-connect trick: no packet is sent)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:
            address = "0.0.0.0"
    if address.startswith("127.") or address == "0.0.0.0":
        pytest.skip("this host has no non-loopback IPv4 address to probe")
    return address
