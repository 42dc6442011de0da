"""Contender 4, the ceiling: a bare picows receive loop that does nothing with the frames.

Per stream: one signaling socket and one media socket per kind (audio, transcript), full
handshakes, keep-alives answered. Media frames are only counted; the one piece of work is the
latency read (12 base64 characters of the payload decoded to the 8-byte stamp), which every
contender pays.
"""

from __future__ import annotations

import asyncio
import binascii
from typing import Any

import orjson
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from gateway import protocol

from .common import Recorder, finish, pin_from_env, read_init, say, serve_commands

AUDIO_PREFIX = b'{"msg_type":14'
TRANSCRIPT_PREFIX = b'{"msg_type":17'
DATA_KEY = b'"data":"'
MEDIA_PARAMS = {"audio": {"data_opt": protocol.DataOption.AUDIO_MULTI_STREAMS}}


class BareListener(WSListener):
    """Counts media frames; control JSON (handshake answers, keep-alives) goes the slow way."""

    def __init__(self, rec: Recorder) -> None:
        super().__init__()
        self.rec = rec
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT and frame.msg_type is not WSMsgType.BINARY:
            return
        view = frame.get_payload_as_memoryview()
        head = bytes(view[:160])  # the data key sits within the first ~100 bytes; the payload is never copied
        if head.startswith(AUDIO_PREFIX):
            i = head.find(DATA_KEY) + 8
            self.rec.audio(int.from_bytes(binascii.a2b_base64(head[i : i + 12])[:8], "little", signed=True))
            return
        if head.startswith(TRANSCRIPT_PREFIX):
            self.rec.transcript()
            return
        doc = orjson.loads(view)
        if doc.get("msg_type") == protocol.MsgType.KEEP_ALIVE_REQ:
            transport.send(WSMsgType.BINARY, orjson.dumps(protocol.build_keep_alive_response(doc)))
        else:
            self.inbox.put_nowait(doc)


async def join(stream: dict[str, Any], cid: str, secret: str, rec: Recorder) -> list[WSTransport]:
    instance, stream_id = stream["meeting_uuid"], stream["rtms_stream_id"]
    signature = protocol.handshake_signature(cid, secret, instance, stream_id)
    sig_t, sig = await ws_connect(lambda: BareListener(rec), stream["server_urls"])
    sig_t.send(WSMsgType.BINARY, protocol.encode(protocol.build_signaling_handshake(instance_id=instance, stream_id=stream_id, signature=signature)))
    resp = await sig.inbox.get()
    if resp.get("status_code") != 0:
        raise RuntimeError(f"signaling refused: {resp}")
    urls = resp["media_server"]["server_urls"]
    out = [sig_t]
    for kind, mask in (("audio", protocol.MediaType.AUDIO), ("transcript", protocol.MediaType.TRANSCRIPT)):
        t, media = await ws_connect(lambda: BareListener(rec), urls[kind], max_frame_size=1 << 24)
        t.send(WSMsgType.BINARY, protocol.encode(protocol.build_data_handshake(instance_id=instance, stream_id=stream_id, signature=signature, media_type=mask, media_params=MEDIA_PARAMS)))
        r = await media.inbox.get()
        if r.get("status_code") != 0:
            raise RuntimeError(f"{kind} handshake refused: {r}")
        out.append(t)
    sig_t.send(WSMsgType.BINARY, protocol.encode(protocol.build_client_ready_ack(stream_id)))
    return out


async def main_async() -> dict[str, Any]:
    init = read_init()
    rec = Recorder()
    serve_commands(rec)  # from the start, so that an orchestrator gone during the joins ends us too
    sem = asyncio.Semaphore(64)

    async def one(s: dict[str, Any]) -> list[WSTransport]:
        async with sem:
            return await join(s, init["client_id"], init["client_secret"], rec)

    transports = await asyncio.gather(*(one(s["payload"]) for s in init["streams"]))
    say("joined")
    await asyncio.get_running_loop().run_in_executor(None, rec.stopped.wait)
    report = rec.report(contender="picows", sockets=sum(len(t) for t in transports))
    return report


def main() -> None:
    pin_from_env()
    finish(uvloop.run(main_async()))


if __name__ == "__main__":
    main()
