"""The session over wss:// (TLS), against a tiny TLS signaling server with a self-signed certificate.

The simulator speaks plain ws:// on loopback; production is TLS only, so this checks the TLS path
itself: a custom CA is honoured through ``SessionSettings.ssl_context``, and the default context
refuses a certificate it cannot verify.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from gateway import protocol
from gateway.errors import HandshakeError
from gateway.protocol import Product
from gateway.session import SessionSettings, StreamSession, StreamTarget
from tests.gateway.conftest import RecordingSink, open_fds, wait_for

pytestmark = [
    pytest.mark.timeout(60, method="thread"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate"),
]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made once per module)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


class RejectingSignaling(WSListener):
    """Answers msg 1 with INVALID_SIGNATURE: enough to prove the JSON went through TLS both ways."""

    received: list[dict[str, Any]] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
            doc = protocol.decode(frame.get_payload_as_bytes())
            self.received.append(doc)
            transport.send(WSMsgType.TEXT, protocol.encode(protocol.build_signaling_handshake_response(3, "invalid signature")))
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[int]:
    cert, key = certificate
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = await ws_create_server(lambda _req: RejectingSignaling(), "127.0.0.1", 0, ssl=ctx)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def make_session(port: int, ssl_context: ssl.SSLContext | None) -> StreamSession:
    target = StreamTarget(Product.MEETING, "M==", "meeting_uuid", "stream-1", f"wss://127.0.0.1:{port}/signaling")
    settings = SessionSettings("id", "secret", handshake_timeout_s=5.0, ssl_context=ssl_context)
    return StreamSession(target, settings, sink=RecordingSink(), listener_class=WSListener)


async def test_custom_ca_over_tls(tls_server: int, certificate: tuple[Path, Path]) -> None:
    fds = open_fds()
    ca = ssl.create_default_context(cafile=str(certificate[0]))
    session = make_session(tls_server, ca)
    RejectingSignaling.received.clear()
    with pytest.raises(HandshakeError) as info:
        await session.start()
    assert info.value.status_code == 3 and info.value.socket == "signaling"
    assert RejectingSignaling.received[0]["msg_type"] == 1 and RejectingSignaling.received[0]["rtms_stream_id"] == "stream-1"
    await wait_for(lambda: open_fds() <= fds)  # client and server ends of the TLS socket are gone


async def test_default_context_refuses_unknown_certificate(tls_server: int) -> None:
    session = make_session(tls_server, None)
    with pytest.raises(ssl.SSLCertVerificationError):
        await session.start()
    assert session.closed and isinstance(session.error, ssl.SSLError)
