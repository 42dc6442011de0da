"""``gateway sim``: a standalone RTMS simulator that announces meetings with signed webhooks.

``gateway.cli`` calls :func:`add_arguments` and awaits :func:`run`. Prints where it listens, one
status line per second, and on SIGINT/SIGTERM or after ``--seconds`` ends every stream
(``rtms_stopped``, reason 6 meeting ended), delivers the pending webhooks and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time

from ..protocol import Product, StatusProfile, StopReason
from .server import SimConfig, Simulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--webhook-url", default=env("ZM_RTMS_WEBHOOK_URL"), help="where to POST signed webhooks (none: print join payloads)")
    parser.add_argument("--client-id", default=env("ZM_RTMS_CLIENT", "sim-client-id"), help="app client id (env ZM_RTMS_CLIENT)")
    parser.add_argument("--client-secret", default=env("ZM_RTMS_SECRET", "sim-client-secret"), help="app client secret (env ZM_RTMS_SECRET)")
    parser.add_argument(
        "--webhook-secret", default=env("ZM_RTMS_WEBHOOK_SECRET", "sim-webhook-secret"), help="webhook secret token (env ZM_RTMS_WEBHOOK_SECRET)"
    )
    parser.add_argument("--meetings", type=int, default=1, help="meetings (streams) to announce")
    parser.add_argument("--participants", type=int, default=3, help="participants per meeting")
    parser.add_argument("--seconds", type=float, default=0.0, help="run this long, then end every stream (0: until interrupted)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback by default)")
    parser.add_argument("--port", type=int, default=0, help="signaling port (0: any free port)")
    parser.add_argument("--media-port", type=int, default=0, help="media port (0: any free port; always separate from signaling)")
    parser.add_argument("--product", choices=[p.value for p in Product if p is not Product.PHONE], default="meeting")
    parser.add_argument("--status-profile", choices=["A", "B"], default="B", help="status-code numbering (A: 2025 docs, B: 2026 docs)")
    parser.add_argument("--keepalive-interval", type=float, default=10.0, help="seconds between keep-alive requests on every socket")
    parser.add_argument("--time-scale", type=float, default=1.0, help="scale keep-alive interval and reconnection windows")
    parser.add_argument("--duplicate-signaling", choices=["reject", "evict"], default="reject")
    parser.add_argument("--load", choices=["off", "realtime", "max"], default="off", help="load mode: audio from pre-built frames")
    parser.add_argument("--load-speakers", type=int, default=1, help="load mode: speakers per meeting for multi-stream audio")
    parser.add_argument("--seed", type=int, default=0, help="content seed (meeting i uses seed+i)")
    parser.add_argument("--tls-cert", help="serve wss:// with this certificate chain (PEM)")
    parser.add_argument("--tls-key", help="private key for --tls-cert (PEM)")
    parser.add_argument("--url-host", help="host name written into URLs (e.g. localhost to match a certificate)")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    ssl_context = None
    if args.tls_cert:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    return SimConfig(
        ssl_context=ssl_context,
        url_host=args.url_host,
        host=args.host,
        port=args.port,
        media_port=args.media_port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        webhook_secret=args.webhook_secret,
        webhook_url=args.webhook_url or None,
        product=Product(args.product),
        status_profile=StatusProfile(args.status_profile),
        participants=args.participants,
        seed=args.seed,
        keepalive_interval_s=args.keepalive_interval,
        time_scale=args.time_scale,
        duplicate_signaling=args.duplicate_signaling,
        record_payloads=False,  # a long-running simulator must not keep every payload it sent
    )


def _status_line(sim: Simulator, started: float, last: dict[str, int]) -> str:
    streams = list(sim.streams.values())
    connected = sum(1 for s in streams if s.signaling is not None and s.signaling.alive)
    ended = sum(1 for s in streams if s.terminated)
    frames = sum(sum(s.sent.media_counts.values()) for s in streams)
    rate = frames - last.get("frames", 0)
    last["frames"] = frames
    hooks = len(sim.webhooks.deliveries)
    failed = sum(1 for d in sim.webhooks.deliveries if d.status < 200 or d.status >= 300) if sim.config.webhook_url else 0
    return (
        f"[sim {time.monotonic() - started:7.1f}s] streams {len(streams)} connected {connected} ended {ended} | "
        f"media msgs {frames} (+{rate}/s) | webhooks {hooks} (failed {failed})"
    )


async def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    sim = Simulator(cfg)
    await sim.start()
    try:
        print(f"gateway sim: signaling ws://{cfg.host}:{sim.port}/signaling  media ws://{cfg.host}:{sim.media_port}/media/<kind>", flush=True)
        load = args.load != "off"
        if load:
            sim.start_load(pace=args.load, speakers=args.load_speakers)
        for _ in range(max(0, args.meetings)):
            stream = sim.create_stream(load=load)
            if not cfg.webhook_url:
                print(f"gateway sim: join payload {sim.join_payload(stream)}", flush=True)
        if cfg.webhook_url:
            print(f"gateway sim: {args.meetings} rtms_started webhook(s) -> {cfg.webhook_url}", flush=True)
        started = time.monotonic()
        last: dict[str, int] = {}
        deadline = started + args.seconds if args.seconds > 0 else None
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
            print(_status_line(sim, started, last), flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                break
            if sim.streams and all(s.terminated for s in sim.streams.values()):
                print("gateway sim: every stream has ended", flush=True)
                break
        for stream in sim.streams.values():
            stream.terminate(StopReason.STOP_BC_MEETING_ENDED)
        await asyncio.sleep(cfg.terminate_close_delay_s + 0.1)  # let clients close on TERMINATED
        await sim.webhooks.drain()
    finally:
        await sim.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    print("gateway sim: stopped", file=sys.stderr, flush=True)
    return 0
