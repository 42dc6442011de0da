"""``gateway sim``: a standalone RTMS simulator that announces meetings with signed webhooks.

``gateway.cli`` calls :func:`add_arguments` and awaits :func:`run`. Prints where it listens, one
status line per second, and on SIGINT/SIGTERM or after ``--seconds`` ends every stream
(``rtms_stopped``, reason 6 meeting ended), delivers the pending webhooks and exits 0.

With ``--rest`` it also plays Zoom's REST side (:class:`gateway.sim.rest.ZoomRestSim`) on loopback:
``--meetings`` then registers live meetings instead of starting streams, and prints the OAuth URL,
the API base and the simulator's fixed *test* credentials, so that ::

    gateway sim --webhook-url http://127.0.0.1:8080/zoom/webhook --rest
    gateway control start --meeting <printed id> --api-base <printed> --oauth-url <printed>

starts a stream the way Zoom's ``PATCH /v2/live_meetings/{id}/rtms_app/status`` does.
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
from .rest import SimulatorRtmsApp, ZoomRestSim
from .server import SimConfig, Simulator

#: The REST side's credentials: fixed test values, never read from the environment, so the
#: simulator can print them without ever echoing an operator's real secrets.
REST_ACCOUNT_ID = "sim-account-id"
REST_CLIENT_ID = "sim-api-client-id"
REST_CLIENT_SECRET = "sim-api-client-secret"
#: First meeting number registered by ``--rest`` (meeting i is this + i).
REST_FIRST_MEETING_ID = 81000000001


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
    parser.add_argument(
        "--rest",
        action="store_true",
        help="also serve Zoom's REST side (OAuth token + rtms_app/status) on loopback; --meetings then "
        "registers live meetings for `gateway control start` instead of starting streams",
    )
    parser.add_argument("--rest-port", type=int, default=None, metavar="PORT", help="port of the REST side (implies --rest; default any free port)")


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


def _status_line(sim: Simulator, started: float, last: dict[str, int], rest: ZoomRestSim | None = None) -> str:
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
        + (f" | rest accepted {len(rest.requests)} refused {len(rest.rejected)}" if rest is not None else "")
    )


def _rest_wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "rest", False) or getattr(args, "rest_port", None) is not None)


async def _serve_rest(args: argparse.Namespace, sim: Simulator) -> ZoomRestSim:
    """Zoom's REST side over ``sim`` on loopback, with ``--meetings`` live meetings; prints how to use it."""
    rest = ZoomRestSim.for_simulator(sim, account_id=REST_ACCOUNT_ID, client_id=REST_CLIENT_ID, client_secret=REST_CLIENT_SECRET)
    app = rest.controller
    assert isinstance(app, SimulatorRtmsApp)
    # loopback whatever --host says: fixed test credentials must not be reachable from elsewhere
    await rest.serve("127.0.0.1", args.rest_port or 0)
    meetings = [app.add_meeting(REST_FIRST_MEETING_ID + i) for i in range(max(0, args.meetings))]
    print(f"gateway sim: Zoom REST  oauth {rest.oauth_url}  api {rest.api_base}", flush=True)
    print(
        "gateway sim: REST test credentials (simulator only): "
        f"ZM_ACCOUNT_ID={REST_ACCOUNT_ID} ZM_API_CLIENT_ID={REST_CLIENT_ID} ZM_API_CLIENT_SECRET={REST_CLIENT_SECRET} "
        f"ZM_RTMS_CLIENT={rest.rtms_client_id}",
        flush=True,
    )
    for m in meetings:
        print(f"gateway sim: live meeting {m.meeting_id} uuid {m.uuid}", flush=True)
    if meetings:
        print(
            f"gateway sim: try  gateway control start --meeting {meetings[0].meeting_id} --api-base {rest.api_base} --oauth-url {rest.oauth_url}",
            flush=True,
        )
    return rest


async def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    rest_mode = _rest_wanted(args)
    if rest_mode and args.load != "off":
        print("gateway sim: --rest starts streams on request; it does not combine with --load", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    sim = Simulator(cfg)
    await sim.start()
    rest: ZoomRestSim | None = None
    try:
        print(f"gateway sim: signaling ws://{cfg.host}:{sim.port}/signaling  media ws://{cfg.host}:{sim.media_port}/media/<kind>", flush=True)
        load = args.load != "off"
        if load:
            sim.start_load(pace=args.load, speakers=args.load_speakers)
        if rest_mode:
            rest = await _serve_rest(args, sim)
            if not cfg.webhook_url:
                print("gateway sim: no --webhook-url: started streams are announced to nobody", flush=True)
        else:
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
            print(_status_line(sim, started, last, rest), flush=True)
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not rest_mode and sim.streams and all(s.terminated for s in sim.streams.values()):
                print("gateway sim: every stream has ended", flush=True)
                break  # with --rest a stopped meeting can be started again: run until told to stop
        for stream in sim.streams.values():
            stream.terminate(StopReason.STOP_BC_MEETING_ENDED)
        await asyncio.sleep(cfg.terminate_close_delay_s + 0.1)  # let clients close on TERMINATED
        await sim.webhooks.drain()
    finally:
        if rest is not None:
            await rest.close()
        await sim.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    print("gateway sim: stopped", file=sys.stderr, flush=True)
    return 0
