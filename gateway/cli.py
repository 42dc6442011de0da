"""The ``gateway`` command (also ``python -m gateway``): run, demo, sim, tap, control, bench.

Subcommands owned by other modules are loaded when present: each such module exposes
``add_arguments(parser)`` and ``run(args)`` (``gateway.sim.cli``, ``gateway.tap``,
``gateway.control_cli``). A missing one answers clearly instead of pretending.

Exit codes: 0 success, 1 failure, 2 bad usage or configuration, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import signal
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import __version__
from .errors import ConfigError

log = logging.getLogger("gateway")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: subcommand -> (module, one-line help) for commands implemented elsewhere.
DELEGATED: dict[str, tuple[str, str]] = {
    "sim": ("gateway.sim.cli", "standalone RTMS simulator that posts signed webhooks to a URL"),
    "tap": ("gateway.tap", "attach to a running gateway's shared memory: live table, or write WAV/JSONL"),
    "control": ("gateway.control_cli", "start/stop/pause/resume a meeting's RTMS stream via Zoom's REST API"),
}


def _load(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):  # the module itself is missing
            return None
        raise


# ---------------------------------------------------------------------- gateway run


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="PATH", help="TOML configuration file (see examples/gateway.toml); env overrides apply")
    parser.add_argument("--host", help="listen address (overrides server.host)")
    parser.add_argument("--port", type=int, help="listen port (overrides server.port)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (overrides log.level)")


def cmd_run(args: argparse.Namespace) -> int:
    """Production: webhook server + sessions until SIGINT/SIGTERM."""
    from .app import run_coroutine
    from .config import load_config, with_overrides
    from .log import setup_logging

    try:
        config = load_config(args.config)
        server: dict[str, Any] = {}
        if args.host:
            server["host"] = args.host
        if args.port is not None:
            server["port"] = args.port
        if server:
            config = with_overrides(config, server=server)
        if args.log_level:
            config = with_overrides(config, log={"level": args.log_level.upper()})
        config.validate()
    except ConfigError as exc:
        print(f"gateway run: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(config.log.level, json=config.log.json)
    try:
        return int(run_coroutine(serve(config)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def serve(config: Any, *, ready: Callable[[Any], None] | None = None, stop: asyncio.Event | None = None) -> int:
    """Run a :class:`~gateway.app.Gateway` until ``stop`` is set or SIGINT/SIGTERM arrives."""
    from .app import Gateway, parser_implementation

    implementation = parser_implementation()
    try:
        from .media import media_listener_factory

        media_listener_factory()  # fail at start, not at the first stream, when the parser is missing
    except ImportError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_USAGE
    try:
        gw = Gateway(config)
    except ConfigError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_USAGE
    try:
        await gw.start()
    except ConfigError as exc:
        log.error("cannot start: %s", exc)
        await gw.close()
        return EXIT_USAGE
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", config.server.host, config.server.port, exc)
        await gw.close()
        return EXIT_FAILED
    s, q = config.server, config.sessions
    log.info("rtms-gateway %s listening on %s", __version__, gw.base_url)
    log.info("  POST %s  Zoom webhooks (signature + %d s window + replay check, max body %d bytes)", s.webhook_path, s.timestamp_tolerance_s, s.max_body_bytes)
    log.info("  GET  /metrics (Prometheus)  /healthz  /streams (JSON)")
    log.info("  media parser: %s", implementation)
    log.info(
        "  streams: max %d, kinds %s, %s, status codes list %s; publish: %s",
        q.max_streams,
        ",".join(q.media_kinds),
        "one 'all' media socket" if q.unified else "one media socket per kind",
        q.status_profile,
        f"shared memory ({config.publish.shm_dir or '/dev/shm'}/{config.publish.shm_prefix}.*)" if config.publish.shm else "counters only",
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, _on_signal, stop, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            pass
    if ready is not None:
        ready(gw)
    try:
        await stop.wait()
        log.info("shutting down: closing %d stream(s) (up to %.0f s)", len(gw.streams), s.shutdown_timeout_s)
    finally:
        await gw.close()
        for signum in installed:
            loop.remove_signal_handler(signum)
    log.info("stopped cleanly")
    return EXIT_OK


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    log.info("received %s", signal.Signals(signum).name)
    stop.set()


# ---------------------------------------------------------------------- other commands


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo
    from .log import setup_logging

    setup_logging(args.log_level or "WARNING")
    return demo.main(args)


def _individual_benchmarks() -> dict[str, str]:
    """``benchmarks/bench_<name>.py`` modules of a source checkout: name -> module."""
    import pkgutil

    package = _load("benchmarks")
    if package is None:
        return {}
    return {
        info.name.removeprefix("bench_"): f"benchmarks.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.startswith("bench_")
    }


def cmd_bench(args: argparse.Namespace) -> int:
    """The end-to-end runner when it exists; else one named benchmark, or an honest list."""
    import os

    rest = list(args.bench_args)
    if not rest or rest[0].startswith("-"):  # no name: the end-to-end comparison (gateway/bench.py)
        from . import bench

        return int(bench.main(rest) or 0)
    if os.path.isfile(os.path.join("benchmarks", "__init__.py")) and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the console script does not see the source checkout otherwise
    module = _load("benchmarks.run")
    entry = getattr(module, "main", None) if module is not None else None
    if entry is not None:
        return int(entry(rest) or 0)
    available = _individual_benchmarks()
    if rest and rest[0] in available:
        bench = importlib.import_module(available[rest[0]])
        saved = sys.argv
        sys.argv = [f"gateway bench {rest[0]}", *rest[1:]]
        try:
            return int(bench.main() or 0)
        finally:
            sys.argv = saved
    names = ", ".join(sorted(available)) or "none found (run from a source checkout)"
    print(
        "gateway bench: the end-to-end benchmark is not yet implemented (benchmarks/run.py has not landed).\n"
        f"Individual benchmarks: {names}. Run one with `gateway bench NAME [ARGS]`; see benchmarks/README.md.",
        file=sys.stderr,
    )
    return EXIT_USAGE


def _delegate(module_name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        module = _load(module_name)
        if module is None:
            print(f"gateway {args.command}: not available in this build ({module_name} is missing)", file=sys.stderr)
            return EXIT_USAGE
        result = module.run(args)
        if inspect.iscoroutine(result):
            from .app import run_coroutine

            result = run_coroutine(result)
        return int(result or 0)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="High-performance gateway for Zoom Realtime Media Streams (RTMS).")
    parser.add_argument("--version", action="version", version=f"rtms-gateway {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="production: webhook server + stream sessions (until SIGINT/SIGTERM)",
        description="Serve Zoom's RTMS webhooks and run every announced stream. Credentials come from "
        "ZM_RTMS_CLIENT, ZM_RTMS_SECRET and ZM_RTMS_WEBHOOK_SECRET; other settings from the TOML file, "
        "overridable as GATEWAY_<SECTION>_<KEY>. SIGINT/SIGTERM close every stream, then exit.",
    )
    _add_run_arguments(p)
    p.set_defaults(func=cmd_run)

    from . import demo

    p = sub.add_parser(
        "demo",
        help="simulator + gateway on this machine: live table, then a summary",
        description="Runs the embedded RTMS simulator, the gateway and a shared-memory consumer on loopback, "
        "shows a live table, then checks that everything the simulator sent arrived intact (exit 0) or not (exit 1).",
    )
    demo.add_arguments(p)
    p.add_argument("--log-level", help="log level on stderr (default WARNING)")
    p.set_defaults(func=cmd_demo)

    for name, (module_name, help_text) in DELEGATED.items():
        module = _load(module_name)
        if module is None:
            p = sub.add_parser(name, help=f"{help_text} (not available in this build)")
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        else:
            p = sub.add_parser(name, help=help_text)
            module.add_arguments(p)
        p.set_defaults(func=_delegate(module_name))

    p = sub.add_parser("bench", help="benchmarks: `gateway bench [--quick]` (end-to-end comparison) or `gateway bench NAME [ARGS]`")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="benchmark name and its arguments")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "func", None) is cmd_bench:  # `gateway bench --quick`: argparse's REMAINDER misses leading options
        args.bench_args = [*extra, *args.bench_args]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `gateway demo | head`: the reader left; leave quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
