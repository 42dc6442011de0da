"""A tiny RTMS test client (websockets library) plus a deterministic stand-in meeting.

Tests of the simulator must not depend on the gateway (built elsewhere) nor on the exact
synthetic meeting script, so most use :class:`StandInContent`, whose output is trivial to predict.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect

from gateway import protocol
from gateway.protocol import AudioParams, EventType, MediaType, MsgType
from gateway.sim import SimConfig, SimStream, Simulator

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
WEBHOOK_SECRET = "test-webhook-secret"


@dataclass
class Spec:
    user_id: int
    user_name: str


class StandInContent:
    """Two participants; audio payload bytes encode (user, media time); a transcript every 500 ms."""

    def __init__(self, participants: int = 2, seed: int = 0, product: Any = None) -> None:
        self.participants = [Spec(100, "Ann"), Spec(200, "Ben")]

    @staticmethod
    def payload(user_id: int, t_ms: int, size: int) -> bytes:
        head = f"{user_id}:{t_ms};".encode()
        return (head * (size // len(head) + 1))[:size]

    def audio_packets(self, params: AudioParams, t_ms: int) -> list[tuple[int, str, bytes]]:
        size = params.bytes_per_packet
        if params.data_opt == protocol.DataOption.AUDIO_MIXED_STREAM:
            return [(0, "", self.payload(0, t_ms, size))]
        return [(p.user_id, p.user_name, self.payload(p.user_id, t_ms, size)) for p in self.participants]

    def transcripts(self, t0: int, t1: int) -> list[dict[str, Any]]:
        out = []
        for end in range((t0 // 500 + 1) * 500 if t0 % 500 else t0, t1, 500):
            if end <= 0:
                continue
            p = self.participants[(end // 500) % 2]
            out.append({"user_id": p.user_id, "user_name": p.user_name, "start_ms": end - 400, "end_ms": end, "language": 9, "text": f"utterance {end}"})
        return out

    def chats(self, t0: int, t1: int) -> list[dict[str, Any]]:
        return [{"t_ms": t, "user_id": 100, "user_name": "Ann", "text": f"chat {t}", "structured": None} for t in range((t0 // 1000 + 1) * 1000 if t0 % 1000 else t0, t1, 1000) if t > 0]

    def events(self, t0: int, t1: int) -> list[tuple[int, dict[str, Any]]]:
        script = [
            (0, EventType.PARTICIPANT_JOIN, {"participants": [{"user_id": 100, "user_name": "Ann"}, {"user_id": 200, "user_name": "Ben"}]}),
            (0, EventType.PARTICIPANT_VIDEO_ON, {"participants": [{"user_id": 100}, {"user_id": 200}]}),
            (0, EventType.ACTIVE_SPEAKER_CHANGE, {"user_id": 100, "user_name": "Ann"}),
            (self.video_off_ms, EventType.PARTICIPANT_VIDEO_OFF, {"participants": [{"user_id": 200}]}),
        ]
        return [(int(e), {"t_ms": t, **f}) for t, e, f in script if t0 <= t < t1]

    video_off_ms = 10**9

    def video_frame(self, params: Any, idx: int, t_ms: int, *, user_id: int | None = None) -> tuple[int, str, bytes] | None:
        uid = user_id if user_id is not None else 100
        return uid, "Ann" if uid == 100 else "Ben", b"\xff\xd8frame-%d-%d" % (uid, idx)

    def share_frame(self, params: Any, idx: int, t_ms: int) -> tuple[int, str, bytes] | None:
        return 100, "Ann", b"share-%d" % idx

    def channel_id(self, user_id: int) -> str:
        return f"ch-{user_id}"


def config(**overrides: Any) -> SimConfig:
    base: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "webhook_secret": WEBHOOK_SECRET,
        "content_factory": lambda n, seed, product: StandInContent(n, seed, product),
        "keepalive_interval_s": 10.0,
        "time_scale": 1.0,
    }
    base.update(overrides)
    return SimConfig(**base)


def signature(stream: SimStream, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    return protocol.handshake_signature(client_id, secret, stream.instance_id, stream.stream_id)


class TestClient:
    """One WebSocket with JSON helpers; client messages go out as binary frames like the official SDK's.

    A background reader queues every message; with ``auto_keepalive`` it answers msg 12 at once.
    """

    __test__ = False

    def __init__(self, ws: ClientConnection, label: str, auto_keepalive: bool) -> None:
        self.ws = ws
        self.label = label
        self.auto_keepalive = auto_keepalive
        self.received: list[dict[str, Any]] = []
        self.keepalives = 0
        self.unparseable: list[bytes] = []
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, label: str = "", *, auto_keepalive: bool = False) -> TestClient:
        ws = await connect(url, compression=None, max_size=None, max_queue=None, open_timeout=5, ping_interval=None, close_timeout=2)
        return cls(ws, label or url, auto_keepalive)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    self.unparseable.append(raw if isinstance(raw, bytes) else raw.encode())
                    continue
                if doc.get("msg_type") == MsgType.KEEP_ALIVE_REQ:
                    self.keepalives += 1
                    if self.auto_keepalive:
                        await self.send(protocol.build_keep_alive_response(doc))
                self._queue.put_nowait(doc)
        except Exception:
            pass
        finally:
            self._queue.put_nowait(None)

    async def send(self, doc: dict[str, Any] | bytes | str, *, binary: bool = True) -> None:
        if isinstance(doc, dict):
            raw = json.dumps(doc, indent="\t", sort_keys=True) + "\n"  # jsoncpp-styled, like the SDK
            await self.ws.send(raw.encode() if binary else raw)
        else:
            await self.ws.send(doc)

    async def recv(self, within_s: float = 3.0) -> dict[str, Any]:
        doc = await asyncio.wait_for(self._queue.get(), within_s)
        if doc is None:
            self._queue.put_nowait(None)
            raise ConnectionError(f"{self.label} closed")
        self.received.append(doc)
        return doc

    async def recv_type(self, msg_type: int, within_s: float = 3.0) -> dict[str, Any]:
        """Next message of ``msg_type`` (others are kept in ``received``)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within_s
        while True:
            doc = await self.recv(max(0.01, end - loop.time()))
            if doc.get("msg_type") == msg_type:
                return doc

    async def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within ``seconds`` (stops early when the socket closes)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        out = []
        while loop.time() < end:
            try:
                out.append(await self.recv(max(0.005, end - loop.time())))
            except (TimeoutError, ConnectionError):
                break
        return out

    async def closed(self, within_s: float = 3.0) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), within_s)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


class Session:
    """A client joined to one stream: signaling plus media sockets by kind."""

    def __init__(self, sim: Simulator, stream: SimStream, *, auto_keepalive: bool = False) -> None:
        self.sim = sim
        self.stream = stream
        self.auto_keepalive = auto_keepalive
        self.signaling: TestClient | None = None
        self.media: dict[str, TestClient] = {}
        self.urls: dict[str, str] = {}

    def hello(self, **overrides: Any) -> dict[str, Any]:
        msg = protocol.build_signaling_handshake(instance_id=self.stream.instance_id, stream_id=self.stream.stream_id, signature=signature(self.stream), sequence=1)
        msg.update(overrides)
        return msg

    def data_hello(self, media_type: int, media_params: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
        msg = protocol.build_data_handshake(instance_id=self.stream.instance_id, stream_id=self.stream.stream_id, signature=signature(self.stream), media_type=media_type)
        if media_params is not None:
            msg["media_params"] = media_params  # raw, possibly malformed on purpose
        msg.update(overrides)
        return msg

    async def connect_signaling(self, **overrides: Any) -> dict[str, Any]:
        self.signaling = await TestClient.open(self.stream.signaling_url, "signaling", auto_keepalive=self.auto_keepalive)
        await self.signaling.send(self.hello(**overrides))
        resp = await self.signaling.recv_type(MsgType.SIGNALING_HAND_SHAKE_RESP)
        if resp["status_code"] == 0:
            self.urls = resp["media_server"]["server_urls"]
        return resp

    async def connect_media(self, kind: str, media_params: dict[str, Any] | None = None, media_type: int | None = None, **overrides: Any) -> dict[str, Any]:
        url = self.urls.get(kind) or self.urls["all"]
        client = await TestClient.open(url, kind, auto_keepalive=self.auto_keepalive)
        self.media[kind] = client
        mask = media_type if media_type is not None else (int(MediaType.ALL) if kind == "all" else int(protocol.MEDIA_KINDS[kind][0]))
        await client.send(self.data_hello(mask, media_params, **overrides))
        return await client.recv_type(MsgType.DATA_HAND_SHAKE_RESP)

    async def ready(self) -> None:
        """msg 7 on signaling; returns once the simulator has processed it."""
        assert self.signaling is not None
        before = self.stream.client.ready_acks_signaling
        await self.signaling.send(protocol.build_client_ready_ack(self.stream.stream_id))
        assert await wait_for(lambda: self.stream.client.ready_acks_signaling > before)

    async def join(self, kinds: dict[str, dict[str, Any] | None], *, subscribe: tuple[int, ...] = (), **hello: Any) -> None:
        resp = await self.connect_signaling(**hello)
        assert resp["status_code"] == 0, resp
        for kind, params in kinds.items():
            r = await self.connect_media(kind, params)
            assert r["status_code"] == 0, r
        await self.ready()
        if subscribe:
            assert self.signaling is not None
            await self.signaling.send(protocol.build_event_subscription(subscribe))

    async def close(self) -> None:
        for c in (self.signaling, *self.media.values()):
            if c is not None:
                try:
                    await c.close()
                except Exception:
                    pass


async def wait_for(predicate: Any, within_s: float = 3.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())


class WebhookSink:
    """An aiohttp endpoint on loopback that records webhook POSTs and answers url_validation."""

    def __init__(self, secret: str = WEBHOOK_SECRET, *, wrong_crc: bool = False) -> None:
        self.secret = secret
        self.wrong_crc = wrong_crc
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(({k.lower(): v for k, v in request.headers.items()}, body))
        doc = orjson.loads(body)
        if doc.get("event") == protocol.URL_VALIDATION_EVENT:
            answer = protocol.url_validation_response(self.secret + ("x" if self.wrong_crc else ""), doc["payload"]["plainToken"])
            return web.json_response(answer)
        return web.Response(status=200)

    async def __aenter__(self) -> WebhookSink:
        app = web.Application()
        app.router.add_post("/webhook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/webhook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def events(self) -> list[str]:
        return [orjson.loads(b)["event"] for _, b in self.requests]

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(b) for _, b in self.requests]
