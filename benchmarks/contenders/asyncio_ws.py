"""Contender 3: the plain asyncio client a user would write (websockets + json + base64 into numpy).

Per stream: signaling, then one media socket per kind (audio, transcript), keep-alives answered.
Each audio message is parsed with ``json``, its PCM base64-decoded into a numpy int16 array
(what an ML pipeline wants); the latency stamp is read from that array. Runs on uvloop (faster
than the default loop: the comparison flatters this contender, not the gateway).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import numpy as np
import uvloop
import websockets

from .common import Recorder, finish, pin_from_env, read_init, say, serve_commands


def signature(cid: str, secret: str, meeting: str, stream: str) -> str:
    return hmac.new(secret.encode(), f"{cid},{meeting},{stream}".encode(), hashlib.sha256).hexdigest()


async def media_loop(url: str, hello: dict[str, Any], rec: Recorder, ready: asyncio.Future[None]) -> None:
    async with websockets.connect(url, max_size=1 << 24, compression=None) as ws:
        await ws.send(json.dumps(hello))
        answer = json.loads(await ws.recv())
        if answer.get("status_code") != 0:
            raise RuntimeError(f"media handshake refused: {answer}")
        ready.set_result(None)
        async for raw in ws:
            msg = json.loads(raw)
            kind = msg["msg_type"]
            if kind == 14:
                pcm = np.frombuffer(base64.b64decode(msg["content"]["data"]), dtype=np.int16)
                rec.audio(int(pcm[:4].view(np.int64)[0]))
            elif kind == 17:
                rec.transcript()
            elif kind == 12:
                await ws.send(json.dumps({"msg_type": 13, "timestamp": msg["timestamp"]}))


async def signaling_loop(payload: dict[str, Any], cid: str, secret: str, rec: Recorder, joined: asyncio.Future[None]) -> None:
    meeting, stream = payload["meeting_uuid"], payload["rtms_stream_id"]
    sig = signature(cid, secret, meeting, stream)
    async with websockets.connect(payload["server_urls"], compression=None) as ws:
        await ws.send(json.dumps({"msg_type": 1, "protocol_version": 1, "meeting_uuid": meeting, "rtms_stream_id": stream, "signature": sig}))
        answer = json.loads(await ws.recv())
        if answer.get("status_code") != 0:
            raise RuntimeError(f"signaling refused: {answer}")
        urls = answer["media_server"]["server_urls"]
        loop = asyncio.get_running_loop()
        tasks, ready = [], []
        for kind, mask, params in (("audio", 1, {"audio": {"content_type": 2, "sample_rate": 1, "channel": 1, "codec": 1, "data_opt": 2, "send_rate": 20}}), ("transcript", 8, {})):
            hello = {"msg_type": 3, "protocol_version": 1, "meeting_uuid": meeting, "rtms_stream_id": stream, "signature": sig, "media_type": mask, "payload_encryption": False}
            if params:
                hello["media_params"] = params
            fut: asyncio.Future[None] = loop.create_future()
            ready.append(fut)
            tasks.append(asyncio.create_task(media_loop(urls[kind], hello, rec, fut)))
        await asyncio.gather(*ready)
        await ws.send(json.dumps({"msg_type": 7, "rtms_stream_id": stream}))
        joined.set_result(None)
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("msg_type") == 12:
                await ws.send(json.dumps({"msg_type": 13, "timestamp": msg["timestamp"]}))


async def main_async() -> dict[str, Any]:
    init = read_init()
    rec = Recorder()
    serve_commands(rec)  # from the start, so that an orchestrator gone during the joins ends us too
    loop = asyncio.get_running_loop()
    joined = [loop.create_future() for _ in init["streams"]]
    tasks = [asyncio.create_task(signaling_loop(s["payload"], init["client_id"], init["client_secret"], rec, f)) for s, f in zip(init["streams"], joined, strict=True)]
    await asyncio.gather(*joined)
    say("joined")
    await asyncio.get_running_loop().run_in_executor(None, rec.stopped.wait)
    failed = sum(1 for t in tasks if t.done() and t.exception() is not None)
    return rec.report(contender="asyncio", failed_streams=failed)


def main() -> None:
    pin_from_env()
    finish(uvloop.run(main_async()))


if __name__ == "__main__":
    main()
