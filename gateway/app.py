"""The gateway application: owns every stream, serves the webhook, ``/metrics``, ``/healthz``, ``/streams``.

:class:`Gateway` turns accepted webhooks into session actions (PROTOCOL.md 1 and 6):

- ``rtms_started`` for an unknown stream starts a :class:`~gateway.session.StreamSession` in its own
  task, unless ``sessions.max_streams`` are running (503 ``at_capacity``, logged and counted);
- ``rtms_started`` for an active stream with the same ``server_urls`` is a duplicate delivery
  (counted, nothing else); with new ``server_urls`` it is a server failover (``session.failover``);
- ``rtms_started`` for a stream that already ended, with an ``event_ts`` no later than its end, is a
  late retry of the old start and is ignored (a newer one starts the stream again);
- ``rtms_stopped`` calls ``session.stopped(reason)``; ``rtms_interrupted`` calls ``session.interrupted()``;
- with ``server.state_file`` every live stream's target is kept on disk (gateway.state): a restarted
  gateway loads them as *detached* and, on Zoom's ``rtms_interrupted`` for one, reattaches to the stored
  ``server_urls`` (the interrupted payload has none); those not reported within ``server.state_window_s``
  are dropped.

Every session runs in its own task; whatever it raises is logged and counted against that stream
only. Dispatch is synchronous and cheap, so the webhook is answered before any session work runs.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .config import GatewayConfig
from .errors import ConfigError, GatewayError, WebhookError
from .metrics import CONTENT_TYPE, GatewayMetrics
from .protocol import WebhookEvent, WebhookKind
from .state import SavedStream, StreamStateStore
from .stats_sink import StatsSink
from .webhook import WebhookReceiver

log = logging.getLogger("gateway.app")

#: ``session_factory(event, sink, on_event) -> session`` (see gateway.session.StreamSession).
SessionFactory = Callable[[WebhookEvent, Any, Callable[[dict[str, Any]], None]], Any]
#: ``sink_factory(event) -> sink`` (a MediaSink; ``close()`` is called when the stream ends).
SinkFactory = Callable[[WebhookEvent], Any]

#: how many ended streams are remembered to recognise late duplicate rtms_started.
ENDED_MEMORY = 10_000
#: a stream's media delay is sampled at most this often (seconds), at metrics collection.
MEDIA_DELAY_SAMPLE_S = 0.1


def parser_implementation() -> str:
    """Which media parser is active (``gateway.listener.IMPLEMENTATION`` once that module exists)."""
    try:
        from . import listener  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return "python (gateway.media.PyMediaListener; native listener not available)"
    return str(getattr(listener, "IMPLEMENTATION", "unknown"))


def _state_name(session: Any) -> str:
    state = getattr(session, "state", None)
    name = getattr(state, "name", None)
    return str(name) if name is not None else str(state) if state is not None else "UNKNOWN"


def _safe_stats(obj: Any) -> dict[str, Any]:
    stats = getattr(obj, "stats", None)
    if not callable(stats):
        return {}
    try:
        out = stats()
    except Exception:
        log.debug("stats() failed", exc_info=True)
        return {}
    return dict(out) if isinstance(out, Mapping) else {}


@dataclass(eq=False)
class StreamEntry:
    """One stream the gateway owns."""

    stream_id: str
    event: WebhookEvent
    session: Any
    sink: Any
    server_urls: str
    created: float = field(default_factory=time.time)
    task: asyncio.Task[None] | None = None
    failovers: int = 0
    duplicates: int = 0
    interruptions: int = 0
    stop_reason: int | None = None
    error: str | None = None
    #: an rtms_started that arrived while this stream was ending: started afresh once it has ended.
    restart: WebhookEvent | None = None
    #: newest ``event_ts`` of the rtms_started webhooks seen for this stream (redeliveries repeat it).
    last_start_ts: int = 0
    #: ``time.monotonic()`` of this stream's last media delay sample (metrics collection, at most every 0.1 s).
    delay_sampled_at: float = 0.0
    #: participant rings in use at the last sample (``shm_participant_rings`` in the metrics' stats).
    shm_rings: dict[str, int] | None = None

    def stats(self) -> dict[str, Any]:
        """Session counters, with the sink's counters filling whatever the session lacks."""
        merged = _safe_stats(self.sink)
        merged.update({k: v for k, v in _safe_stats(self.session).items() if v is not None})
        follower = getattr(getattr(self.sink, "publisher", self.sink), "media_follower", None)  # gateway.video
        if follower is not None:
            merged["media_follower"] = _safe_stats(follower)
        return merged

    def describe(self) -> dict[str, Any]:
        stats = self.stats()
        return {
            "stream_id": self.stream_id,
            "product": self.event.product.value if self.event.product else None,
            "instance_key": self.event.instance_key,
            "state": _state_name(self.session),
            "server_urls": self.server_urls,
            "age_s": round(time.time() - self.created, 3),
            "failovers": self.failovers,
            "duplicates": self.duplicates,
            "interruptions": self.interruptions,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "stats": stats,
        }


class Gateway:
    """Webhook endpoint + many isolated stream sessions + metrics, on one aiohttp server."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        session_factory: SessionFactory | None = None,
        sink_factory: SinkFactory | None = None,
    ) -> None:
        self.config = config
        self.streams: dict[str, StreamEntry] = {}
        self.metrics = GatewayMetrics(self._stream_snapshots)
        self.metrics.max_streams.set(config.sessions.max_streams)
        self.receiver = WebhookReceiver(
            config.credentials.webhook_secret,
            self.on_webhook,
            metrics=self.metrics,
            tolerance_s=config.server.timestamp_tolerance_s,
            max_body_bytes=config.server.max_body_bytes,
            replay_cache_size=config.server.replay_cache_size,
        )
        self._session_factory = session_factory or self._default_session_factory()
        self._shm_directory: Any = None
        self._control_client: Any = None
        self._sink_factory = sink_factory or self._media_extras(self._default_sink_factory())
        self._ended: OrderedDict[str, int] = OrderedDict()  # stream id -> newest start event_ts it served
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        #: live streams' targets on disk (``server.state_file``), so a restart can reattach them.
        self.state_store = StreamStateStore(config.server.state_file, max_entries=config.sessions.max_streams) if config.server.state_file else None
        #: streams restored from the state file, waiting for Zoom's rtms_interrupted (no sockets yet).
        self.detached: dict[str, SavedStream] = {}
        self._detached_timers: dict[str, asyncio.TimerHandle] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port: int | None = None
        #: ``listener(stream_id, event)`` for every session event and every stream end (demo, tests).
        self.event_listeners: list[Callable[[str, dict[str, Any]], None]] = []
        #: called with the aiohttp application before it starts, to mount more routes (operator control).
        self.route_hooks: list[Callable[[web.Application], None]] = []

    def __repr__(self) -> str:
        return f"Gateway(streams={len(self.streams)}, port={self.port})"

    # ------------------------------------------------------------------ factories

    def _default_session_factory(self) -> SessionFactory:
        """Real sessions (imported lazily so the app works with fakes before gateway.session exists)."""
        cfg = self.config
        settings: Any = None

        def make(event: WebhookEvent, sink: Any, on_event: Callable[[dict[str, Any]], None]) -> Any:
            nonlocal settings
            from .session import SessionSettings, StreamSession, StreamTarget

            if settings is None:
                ca = cfg.sessions.ca_file
                settings = SessionSettings(
                    ssl_context=ssl.create_default_context(cafile=ca) if ca else None,
                    client_id=cfg.credentials.client_id,
                    client_secret=str(cfg.credentials.client_secret),
                    media_kinds=tuple(cfg.sessions.media_kinds),
                    unified=cfg.sessions.unified,
                    media_params=cfg.sessions.build_media_params(),
                    status_profile=cfg.sessions.status_profile,
                    buffer_data=cfg.sessions.buffer_data,
                    handshake_timeout_s=cfg.sessions.handshake_timeout_s,
                    max_frame_bytes=cfg.sessions.max_frame_bytes,
                    video_subscribe_user=cfg.sessions.video_subscribe_user or None,
                    video_follow=cfg.sessions.video_follow or None,
                )
            return StreamSession(StreamTarget.from_webhook(event), settings, sink=sink, on_event=on_event)

        return make

    def _default_sink_factory(self) -> SinkFactory:
        """The shared-memory publisher when ``publish.shm`` (behind the audio engine unless
        ``audio.engine = false``: gateway.pipeline), else a counting sink."""
        if not self.config.publish.shm:
            return lambda event: StatsSink()
        try:
            from . import shm
        except ImportError as exc:  # configured but not built: refuse to start rather than drop media
            raise ConfigError(f"publish.shm = true but the shared-memory publisher is unavailable: {exc}") from None
        params = self.config.sessions.build_media_params()
        if self.config.audio.engine and params.audio is not None:
            from .pipeline import engine_sink_factory

            return engine_sink_factory(self.config, params, self._shm)

        def make_publisher(event: WebhookEvent) -> Any:
            directory = self._shm()
            info = {"product": event.product.value if event.product else None, "instance_key": event.instance_key, "instance_id": event.instance_id}
            return shm.ShmPublisher(event.stream_id or "", directory, audio=params.audio, video=params.video, deskshare=params.deskshare, info=info)

        return make_publisher

    def _media_extras(self, factory: SinkFactory) -> SinkFactory:
        """Video demux/decode and RTP republishing beside each publisher (``[video]``, ``[udp]``; gateway.video)."""
        if not self.config.publish.shm:
            return factory
        from .video import with_media_extras

        return with_media_extras(factory, self.config, self._shm)

    def _shm(self) -> Any:
        """This gateway's directory of live streams (created on first use, removed at close)."""
        if self._shm_directory is None:
            from .shm import ShmConfig, ShmDirectory

            p = self.config.publish
            self._shm_directory = ShmDirectory(
                ShmConfig(
                    prefix=p.shm_prefix,
                    shm_dir=p.shm_dir or "/dev/shm",
                    group=p.shm_group or None,
                    audio_seconds=p.audio_ring_s,
                    video_bytes=p.video_ring_bytes,
                    share_bytes=p.share_ring_bytes,
                )
            )
            log.info("shared memory: directory %s", self._shm_directory.path)
        return self._shm_directory

    # ------------------------------------------------------------------ webhook dispatch

    def on_webhook(self, event: WebhookEvent) -> str:
        """Decide what an authenticated webhook means and schedule it; returns the action name."""
        if event.kind is WebhookKind.CONCURRENCY:
            for key in ("concurrency_limit", "concurrency_number", "percentage"):
                value = event.payload.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.metrics.concurrency.labels(field=key).set(value)
            log.warning("Zoom concurrency notice %s: %s", event.event, {k: v for k, v in event.payload.items() if k != "operator_id"})
            return "noted"
        stream_id = event.stream_id
        assert stream_id is not None
        if event.event_ts > 0:
            self.metrics.webhook_delay.observe(max(0.0, time.time() - event.event_ts / 1000.0))
        entry = self.streams.get(stream_id)
        if entry is None and stream_id in self.detached:
            return self._on_detached(event, stream_id)
        if event.kind is WebhookKind.STARTED:
            return self._on_started(event, stream_id, entry)
        if entry is None:
            log.info("%s for unknown stream %s ignored", event.event, stream_id)
            return "unknown_stream"
        if event.kind is WebhookKind.STOPPED:
            entry.stop_reason = event.stop_reason
            log.info("stream %s stopped by Zoom (stop_reason %s)", stream_id, event.stop_reason)
            self._spawn(entry, "stopped", entry.session.stopped, event.stop_reason)
            return "stopped"
        entry.interruptions += 1
        log.info("stream %s interrupted: reconnecting to the original server", stream_id)
        self._spawn(entry, "interrupted", entry.session.interrupted)
        return "interrupted"

    def _on_started(self, event: WebhookEvent, stream_id: str, entry: StreamEntry | None) -> str:
        urls = event.server_urls or ""
        if entry is not None:
            newer = event.event_ts > entry.last_start_ts
            entry.last_start_ts = max(entry.last_start_ts, event.event_ts)
        if entry is not None and (entry.stop_reason is not None or getattr(entry.session, "closed", False)):
            if newer:  # a new start of a stream that is ending
                entry.restart = event
                log.info("stream %s restarted by Zoom while ending; starting it again once closed", stream_id)
                return "restart_queued"
            entry.duplicates += 1
            return "duplicate"
        if entry is not None:
            if urls == entry.server_urls:
                entry.duplicates += 1
                log.info("duplicate rtms_started for stream %s ignored", stream_id)
                return "duplicate"
            entry.server_urls = urls
            self._save_target(entry.event, urls)
            entry.failovers += 1
            self.metrics.failovers.inc()
            log.warning("stream %s: server failover to %s", stream_id, urls)
            self._spawn(entry, "failover", entry.session.failover, urls)
            return "failover"
        ended_start_ts = self._ended.get(stream_id)
        if ended_start_ts is not None and event.event_ts <= ended_start_ts:  # Zoom's retry of a start we served
            log.info("late rtms_started for ended stream %s ignored", stream_id)
            return "duplicate_ended"
        self._admit(event, stream_id, urls)
        return "started"

    def _admit(self, event: WebhookEvent, stream_id: str, urls: str) -> None:
        """Start a stream unless shutting down or at capacity (WebhookError 503 then)."""
        if self._closing:
            self.metrics.sessions_refused.labels(reason="shutting_down").inc()
            raise WebhookError("gateway is shutting down", status=503, reason="shutting_down")
        limit = self.config.sessions.max_streams
        if len(self.streams) >= limit:
            self.metrics.sessions_refused.labels(reason="capacity").inc()
            log.error("REFUSED stream %s: at capacity (%d of sessions.max_streams=%d running)", stream_id, len(self.streams), limit)
            raise WebhookError(f"at capacity ({limit} streams)", status=503, reason="at_capacity")
        self._start(event, stream_id, urls)

    def _start(self, event: WebhookEvent, stream_id: str, urls: str) -> None:
        try:
            sink = self._sink_factory(event)
        except Exception as exc:  # e.g. shared memory full: this stream cannot be served
            self.metrics.sessions_refused.labels(reason="sink_error").inc()
            log.error("stream %s: could not create its sink: %s", stream_id, exc)
            self._notify(stream_id, {"type": "stream_ended", "outcome": "error", "error": f"{type(exc).__name__}: {exc}", "stats": {}})
            raise WebhookError(f"could not create the stream's sink: {exc}", status=500, reason="sink_error") from None

        def on_event(doc: dict[str, Any]) -> None:
            self._on_session_event(stream_id, doc)

        try:
            session = self._session_factory(event, sink, on_event)
        except Exception as exc:
            _close_quietly(sink)
            self.metrics.sessions_refused.labels(reason="session_error").inc()
            log.exception("stream %s: could not create a session", stream_id)
            self._notify(stream_id, {"type": "stream_ended", "outcome": "error", "error": f"{type(exc).__name__}: {exc}", "stats": {}})
            raise WebhookError(f"could not create a session: {exc}", status=500, reason="session_error") from None
        entry = StreamEntry(stream_id, event, session, sink, urls, last_start_ts=event.event_ts)
        self.streams[stream_id] = entry
        self._save_target(event, urls)
        self._ended.pop(stream_id, None)
        self.metrics.sessions_started.inc()
        entry.task = asyncio.get_running_loop().create_task(self._run(entry), name=f"stream-{stream_id}")
        log.info("stream %s (%s %s) starting against %s", stream_id, event.product.value if event.product else "?", event.instance_key, urls)

    async def _run(self, entry: StreamEntry) -> None:
        """One stream's whole life; nothing it raises escapes to other streams."""
        outcome = "closed"
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await entry.session.start()
            self.metrics.stream_start.observe(loop.time() - began)
            await entry.session.wait_closed()
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:
            outcome = "error"
            entry.error = f"{type(exc).__name__}: {exc}"
            log.error("stream %s failed: %s", entry.stream_id, entry.error, exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            self._retire(entry, outcome)

    def _retire(self, entry: StreamEntry, outcome: str) -> None:
        if self.streams.get(entry.stream_id) is entry:
            del self.streams[entry.stream_id]
        self.metrics.retired.add(entry.stats())
        self.metrics.sessions_ended.labels(outcome=outcome).inc()
        self._ended[entry.stream_id] = entry.last_start_ts
        self._ended.move_to_end(entry.stream_id)
        while len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)
        if self.state_store is not None and entry.stream_id not in self.streams:
            self.state_store.remove(entry.stream_id)
        _close_quietly(entry.sink)
        self._notify(entry.stream_id, {"type": "stream_ended", "outcome": outcome, "error": entry.error, "stats": entry.stats()})
        log.info("stream %s ended (%s)", entry.stream_id, outcome)
        restart = entry.restart
        if restart is not None and not self._closing and entry.stream_id not in self.streams:
            try:
                self._admit(restart, entry.stream_id, restart.server_urls or "")
            except WebhookError as exc:
                log.error("stream %s: restart refused: %s", entry.stream_id, exc)

    # ------------------------------------------------------------------ restart state (gateway.state)

    def _save_target(self, event: WebhookEvent, urls: str) -> None:
        if self.state_store is not None:
            self.state_store.put(SavedStream.from_webhook(event, urls))

    def _restore_detached(self) -> None:
        """Load the state file: its streams wait (detached) for Zoom's rtms_interrupted, within the window."""
        if self.state_store is None:
            return
        saved = self.state_store.load()
        if not saved:
            return
        loop = asyncio.get_running_loop()
        window = self.config.server.state_window_s
        for stream_id, target in saved.items():
            self.detached[stream_id] = target
            self._detached_timers[stream_id] = loop.call_later(window, self._expire_detached, stream_id)
        log.warning("restored %d live stream(s) from %s; waiting up to %.0f s for Zoom's rtms_interrupted to reattach", len(saved), self.state_store.path, window)

    def _take_detached(self, stream_id: str) -> SavedStream | None:
        timer = self._detached_timers.pop(stream_id, None)
        if timer is not None:
            timer.cancel()
        return self.detached.pop(stream_id, None)

    def _expire_detached(self, stream_id: str) -> None:
        if self._take_detached(stream_id) is not None:
            log.warning("restored stream %s: no rtms_interrupted within %.0f s; dropped", stream_id, self.config.server.state_window_s)
            if self.state_store is not None and stream_id not in self.streams:
                self.state_store.remove(stream_id)

    def _on_detached(self, event: WebhookEvent, stream_id: str) -> str:
        """A webhook for a stream restored from the state file (no session yet)."""
        saved = self._take_detached(stream_id)
        assert saved is not None
        if event.kind is WebhookKind.STARTED:  # a fresh start (or failover): served like any start
            return self._on_started(event, stream_id, None)
        if event.kind is WebhookKind.STOPPED:
            log.info("restored stream %s stopped by Zoom (stop_reason %s) before reattaching", stream_id, event.stop_reason)
            if self.state_store is not None:
                self.state_store.remove(stream_id)
            return "stopped"
        log.warning("stream %s interrupted: reattaching after a restart to %s", stream_id, saved.server_urls)
        try:
            self._admit(saved.to_event(), stream_id, saved.server_urls)
        except WebhookError:
            if self.state_store is not None:
                self.state_store.remove(stream_id)
            raise
        self.streams[stream_id].interruptions += 1
        return "reattached"

    def _spawn(self, entry: StreamEntry, what: str, func: Callable[..., Any], *args: Any) -> None:
        """Run a session action (sync or async) without letting its failure leave the stream."""
        try:
            result = func(*args)
        except Exception as exc:
            log.error("stream %s: %s failed: %s", entry.stream_id, what, exc)
            return
        if inspect.isawaitable(result):
            task = asyncio.get_running_loop().create_task(self._guard(entry, what, result))
            self._side_tasks.add(task)
            task.add_done_callback(self._side_tasks.discard)

    async def _guard(self, entry: StreamEntry, what: str, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("stream %s: %s failed: %s", entry.stream_id, what, exc)

    def _on_session_event(self, stream_id: str, doc: dict[str, Any]) -> None:
        kind = str(doc.get("type") or doc.get("event") or "unknown")
        self.metrics.session_events.labels(type=kind).inc()
        entry = self.streams.get(stream_id)
        publish = getattr(entry.sink, "publish_event", None) if entry is not None else None
        if publish is not None:  # participants, speakers, session states reach consumers in order
            try:
                publish(doc)
            except Exception:
                log.exception("stream %s: publishing an event failed", stream_id)
        self._notify(stream_id, doc)

    def _notify(self, stream_id: str, doc: dict[str, Any]) -> None:
        for listener in self.event_listeners:
            try:
                listener(stream_id, doc)
            except Exception:
                log.exception("event listener failed")

    def _stream_snapshots(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Each live stream's state and stats, with its shared-memory ring sample (metrics collection only)."""
        now = time.monotonic()
        for entry in list(self.streams.values()):
            stats = entry.stats()
            self._sample_rings(entry, stats, now)
            yield _state_name(entry.session), stats

    def _sample_rings(self, entry: StreamEntry, stats: dict[str, Any], now: float) -> None:
        """Media delay (wall clock minus Zoom's timestamp of the newest committed audio) and participant rings in use.

        Read from the stream's shared-memory publisher (``ShmPublisher.ring_sample``), never per
        frame: at most one delay observation per stream per ``MEDIA_DELAY_SAMPLE_S``.
        """
        publisher = entry.sink
        for _ in range(3):  # the publisher itself, or behind the audio engine's EngineSink
            if publisher is None or hasattr(publisher, "ring_sample"):
                break
            publisher = getattr(publisher, "publisher", None)
        if publisher is None or not hasattr(publisher, "ring_sample"):
            return
        if now - entry.delay_sampled_at >= MEDIA_DELAY_SAMPLE_S:
            entry.delay_sampled_at = now
            try:
                sample = publisher.ring_sample()
            except Exception:
                log.debug("stream %s: ring_sample() failed", entry.stream_id, exc_info=True)
                sample = None
            if sample is not None:
                if sample.newest_audio_ms is not None and sample.newest_audio_ms > 0:
                    self.metrics.media_delay.observe(max(0.0, time.time() - sample.newest_audio_ms / 1000.0))
                entry.shm_rings = {"in_use": sample.participants_in_use, "slots": sample.participant_slots}
        if entry.shm_rings is not None:
            stats["shm_participant_rings"] = entry.shm_rings

    # ------------------------------------------------------------------ HTTP

    def status(self) -> dict[str, Any]:
        """What ``/streams`` serves."""
        return {
            "streams": [entry.describe() for entry in list(self.streams.values())],
            "active": len(self.streams),
            "max_streams": self.config.sessions.max_streams,
            "closing": self._closing,
            "detached": sorted(self.detached),
        }

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.config.server.webhook_path, self.receiver.handle)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/streams", self._streams)
        if self.config.control.operator_token:  # never an open route: only behind the operator token
            app.router.add_post("/streams/{stream_id}/video", self._video_subscription)
        for hook in self.route_hooks:
            hook(app)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        ok = not self._closing
        doc = {"status": "ok" if ok else "closing", "streams": len(self.streams)}
        return web.Response(body=orjson.dumps(doc), status=200 if ok else 503, content_type="application/json")

    async def _streams(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.status(), default=str), content_type="application/json")

    async def _video_subscription(self, request: web.Request) -> web.Response:
        """``POST /streams/{id}/video`` ``{"user_id": N, "subscribe": bool}``: msg 28, answers msg 29's status.

        401 without the operator token, 404 unknown stream, 409 not opened with video data_opt 4
        (or no signaling now), 400 bad body, 504 no msg 29 in time.
        """
        expected = f"Bearer {self.config.control.operator_token.reveal()}".encode()
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            return _json({"error": "unauthorized", "message": "operator token required"}, 401, {"WWW-Authenticate": 'Bearer realm="gateway-control"'})
        entry = self.streams.get(request.match_info["stream_id"])
        if entry is None:
            return _json({"error": "unknown_stream"}, 404)
        try:
            doc = orjson.loads(await request.content.read(4096))
        except orjson.JSONDecodeError:
            doc = None
        uid = doc.get("user_id") if isinstance(doc, dict) else None
        subscribe = doc.get("subscribe", True) if isinstance(doc, dict) else None
        if not isinstance(uid, int) or isinstance(uid, bool) or not 0 <= uid < 1 << 32 or not isinstance(subscribe, bool):
            return _json({"error": "bad_body", "message": 'expected {"user_id": <uint32>, "subscribe": true|false}'}, 400)
        session = entry.session
        settings = getattr(session, "settings", None)
        if not getattr(settings, "individual_video", False):
            return _json({"error": "not_individual_video", "message": "stream not opened with video data_opt 4"}, 409)
        try:
            status = await session.subscribe_video(uid, subscribe)
        except TimeoutError:
            return _json({"error": "timeout", "message": "no VIDEO_SUBSCRIPTION_RESP in time"}, 504)
        except (ConnectionError, GatewayError) as exc:
            return _json({"error": "no_signaling", "message": str(exc)}, 409)
        log.info("stream %s: video subscription %s %s -> status %s", entry.stream_id, uid, subscribe, status)
        return _json({"user_id": uid, "subscribe": subscribe, "status_code": status, "video_user": getattr(session, "video_user", None)}, 200)

    def _mount_control(self) -> None:
        """Operator control routes (``[control]``), with a REST client closed at shutdown."""
        from .control import DEFAULT_API_BASE, DEFAULT_OAUTH_URL, ControlCredentials, RtmsControlClient
        from .control_http import add_control_routes

        c = self.config.control
        client = RtmsControlClient(
            ControlCredentials.from_env(),
            rtms_client_id=self.config.credentials.client_id,
            api_base=c.api_base or DEFAULT_API_BASE,
            oauth_url=c.oauth_url or DEFAULT_OAUTH_URL,
        )
        self._control_client = client
        self.route_hooks.append(lambda app: add_control_routes(app, client, c.operator_token, prefix=c.prefix.rstrip("/")))
        log.info("operator control routes on POST %s/{meeting_id}/{start|stop|pause|resume}", c.prefix.rstrip("/"))

    async def start(self) -> None:
        """Listen on ``server.host:server.port`` (port 0 picks a free one; see :attr:`port`).

        Raises :class:`ConfigError` when ``[control]`` is enabled without its REST credentials.
        """
        server = self.config.server
        if self.config.control.enabled and self._control_client is None:
            self._mount_control()
        if not self.detached:
            self._restore_detached()
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        tls = None
        if server.tls_cert:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.minimum_version = ssl.TLSVersion.TLSv1_2  # what Zoom requires of webhook endpoints
            tls.load_cert_chain(server.tls_cert, server.tls_key)
        self._site = web.TCPSite(self._runner, server.host, server.port, ssl_context=tls)
        await self._site.start()
        sockets = getattr(self._site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else server.port

    @property
    def base_url(self) -> str:
        scheme = "https" if self.config.server.tls_cert else "http"
        return f"{scheme}://{self.config.server.host}:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.base_url + self.config.server.webhook_path

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ shutdown

    async def close_stream(self, stream_id: str, *, request: bool = True) -> None:
        """Close one stream (STREAM_CLOSE_REQ when ``request``) and wait for it to end."""
        entry = self.streams.get(stream_id)
        if entry is None:
            return
        await self._close_entry(entry, request=request, limit_s=self.config.server.shutdown_timeout_s)

    async def _close_entry(self, entry: StreamEntry, *, request: bool, limit_s: float) -> None:
        try:
            async with asyncio.timeout(limit_s):
                await entry.session.close(request=request)
                if entry.task is not None:
                    await asyncio.shield(entry.task)
        except TimeoutError:
            log.warning("stream %s did not close within %.1f s; cancelling it", entry.stream_id, limit_s)
        except Exception as exc:
            log.error("stream %s: close failed: %s", entry.stream_id, exc)
        if entry.task is not None and not entry.task.done():
            entry.task.cancel()
            await asyncio.gather(entry.task, return_exceptions=True)

    async def close(self, *, request: bool = True) -> None:
        """Graceful shutdown: refuse new streams, close every stream, stop serving."""
        if self._closing and self._runner is None and not self.streams:
            return
        self._closing = True
        entries = list(self.streams.values())
        if entries:
            log.info("closing %d stream(s)", len(entries))
        timeout = self.config.server.shutdown_timeout_s
        await asyncio.gather(*(self._close_entry(e, request=request, limit_s=timeout) for e in entries), return_exceptions=True)
        for timer in self._detached_timers.values():
            timer.cancel()
        self._detached_timers.clear()
        if self.state_store is not None:
            await self.state_store.aclose()  # pending writes land; detached streams stay on disk for the next start
        for task in list(self._side_tasks):
            task.cancel()
        if self._side_tasks:
            await asyncio.gather(*self._side_tasks, return_exceptions=True)
        if self._shm_directory is not None:
            self._shm_directory.close()
            self._shm_directory = None
        if self._control_client is not None:
            await self._control_client.close()
            self._control_client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None


def _json(doc: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json", headers=headers)


def _close_quietly(sink: Any) -> None:
    close = getattr(sink, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            log.exception("closing a sink failed")


def run_coroutine(main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on uvloop (falls back to asyncio's loop only where uvloop cannot be imported)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a hard dependency
        log.warning("uvloop not available: running on the default asyncio loop")
        return asyncio.run(main)
    return uvloop.run(main)
