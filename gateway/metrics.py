"""Prometheus metrics for one gateway, in its own registry (no process-global state).

Per-frame numbers are never incremented on the hot path: sessions and sinks keep plain integer
counters, and :class:`_StreamCollector` reads them at scrape time. Counters of streams that ended
are folded into retired totals so the exported counters never go backwards. Labels are bounded
(kind, state, reason): never a stream id, never a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .protocol import SessionState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Stream counters exported at scrape time: (stats key, metric name, label name, label value used
#: when the stats value is a plain number). A stats value is a number or a mapping label -> number.
STREAM_COUNTERS: tuple[tuple[str, str, str | None, str], ...] = (
    ("frames", "rtms_media_frames", "kind", "all"),
    ("bytes", "rtms_media_bytes", "kind", "all"),
    ("wire_bytes", "rtms_media_wire_bytes", "kind", "all"),
    ("drops", "rtms_media_drops", "kind", "all"),
    ("listener_drops", "rtms_media_drops", "kind", "all"),
    ("gaps", "rtms_media_gaps", "kind", "all"),
    ("parse_errors", "rtms_parse_errors", "socket", "all"),
    ("reconnects", "rtms_reconnects", "socket", "stream"),
    ("media_reconnects", "rtms_reconnects", "socket", "media"),
    ("keepalives_answered", "rtms_keepalives_answered", "socket", "all"),
    ("transcripts", "rtms_transcripts", None, ""),
    ("audio_engine", "rtms_audio_engine", "counter", "all"),
)
METRIC_HELP: dict[str, tuple[str, str | None]] = {
    "rtms_media_frames": ("Media messages received, by kind", "kind"),
    "rtms_media_bytes": ("Decoded media payload bytes received, by kind (counting sink only)", "kind"),
    "rtms_media_wire_bytes": ("WebSocket payload bytes received on media sockets (JSON + base64), by socket kind", "kind"),
    "rtms_media_drops": ("Media messages dropped (bad base64, malformed, oversized...), by kind ('all' when not split)", "kind"),
    "rtms_media_gaps": ("Gaps detected in media timelines, by kind", "kind"),
    "rtms_parse_errors": ("Messages that could not be parsed, by socket", "socket"),
    "rtms_reconnects": ("Reconnections: whole stream (signaling + media) or one media socket", "socket"),
    "rtms_keepalives_answered": ("Keep-alive requests answered, by socket", "socket"),
    "rtms_transcripts": ("Transcript utterances received", None),
    "rtms_audio_engine": ("Audio engine counters ([audio] engine): packets, frames, duplicates, reorders, late_packets, gap_frames, decode_errors, ...", "counter"),
}

#: media delay buckets: 1 ms (loopback) .. 10 s (a replayed startup buffer, a stalled stream).
MEDIA_DELAY_BUCKETS = (1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def _items(value: Any, default_label: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, Mapping):
        for label, number in value.items():
            if isinstance(number, (int, float)) and not isinstance(number, bool):
                yield str(label), float(number)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield default_label, float(value)


class RetiredTotals:
    """Counters of streams that have ended, so totals survive their streams."""

    __slots__ = ("totals",)

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, float]] = {name: {} for name in METRIC_HELP}

    def add(self, stats: Mapping[str, Any]) -> None:
        _accumulate(self.totals, stats)


def _accumulate(totals: dict[str, dict[str, float]], stats: Mapping[str, Any]) -> None:
    for key, metric, _, default_label in STREAM_COUNTERS:
        bucket = totals[metric]
        for name, number in _items(stats.get(key), default_label):
            bucket[name] = bucket.get(name, 0.0) + number


class _StreamCollector(Collector):
    """Reads live stream stats at scrape time (``source`` yields ``(state name, stats dict)``)."""

    def __init__(self, source: Callable[[], Iterable[tuple[str, Mapping[str, Any]]]], retired: RetiredTotals) -> None:
        self._source = source
        self._retired = retired

    def describe(self) -> list[Metric]:
        return []  # dynamic label values: skip registration-time collection

    def collect(self) -> Iterator[Metric]:
        by_state = {state.name: 0 for state in SessionState}
        totals = {key: dict(values) for key, values in self._retired.totals.items()}
        lag_max = 0.0
        lag_sum = 0.0
        lag_n = 0
        rings_max = 0.0
        rings_sum = 0.0
        rings_n = 0
        for state, stats in self._source():
            by_state[state] = by_state.get(state, 0) + 1
            _accumulate(totals, stats)
            lag = stats.get("keepalive_lag_ms")
            if isinstance(lag, (int, float)) and not isinstance(lag, bool):
                lag_s = max(0.0, float(lag)) / 1000.0
                lag_max = max(lag_max, lag_s)
                lag_sum += lag_s
                lag_n += 1
            rings = stats.get("shm_participant_rings")
            if isinstance(rings, Mapping) and rings.get("slots"):
                ratio = min(1.0, float(rings.get("in_use", 0)) / float(rings["slots"]))
                rings_max = max(rings_max, ratio)
                rings_sum += ratio
                rings_n += 1
        active = GaugeMetricFamily("rtms_sessions_active", "Streams the gateway currently owns, by session state", labels=["state"])
        for state, count in by_state.items():
            active.add_metric([state], count)
        yield active
        for name, (help_text, label) in METRIC_HELP.items():
            family = CounterMetricFamily(name, help_text, labels=[label] if label else [])
            for label_value, number in sorted(totals[name].items()):
                family.add_metric([label_value] if label else [], number)
            if not label and not totals[name]:
                family.add_metric([], 0.0)
            yield family
        lag = GaugeMetricFamily(
            "rtms_keepalive_lag_seconds",
            "Keep-alive delay across live streams: receipt time minus the server's request timestamp "
            "(the server starts keep-alives, so this one-way figure, clock offset included, is what a client can see)",
            labels=["stat"],
        )
        lag.add_metric(["max"], lag_max)
        lag.add_metric(["mean"], lag_sum / lag_n if lag_n else 0.0)
        yield lag
        rings = GaugeMetricFamily(
            "rtms_shm_participant_rings_ratio",
            "Participant audio rings in use / rings per segment (shm max_participants), across live shared-memory streams "
            "with PCM audio; at 1 a new speaker takes the least recently written participant's ring. "
            "(Ring fill by readers is not measured: the writer never waits for readers.)",
            labels=["stat"],
        )
        rings.add_metric(["max"], rings_max)
        rings.add_metric(["mean"], rings_sum / rings_n if rings_n else 0.0)
        yield rings


class GatewayMetrics:
    """Every metric of one gateway. ``render()`` gives the Prometheus text exposition."""

    def __init__(self, stream_source: Callable[[], Iterable[tuple[str, Mapping[str, Any]]]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.webhook_requests = Counter("rtms_webhook_requests", "Webhook HTTP requests, by result", ["result"], registry=r)
        self.webhook_events = Counter("rtms_webhook_events", "Accepted webhooks, by event kind and action taken", ["kind", "action"], registry=r)
        self.sessions_started = Counter("rtms_sessions_started", "Streams the gateway started", registry=r)
        self.sessions_ended = Counter("rtms_sessions_ended", "Streams that ended, by outcome", ["outcome"], registry=r)
        self.sessions_refused = Counter("rtms_sessions_refused", "Streams refused, by reason", ["reason"], registry=r)
        self.failovers = Counter("rtms_failovers", "Server failovers (rtms_started with new server_urls)", registry=r)
        self.session_events = Counter("rtms_session_events", "Events reported by sessions, by type", ["type"], registry=r)
        self.max_streams = Gauge("rtms_sessions_max", "Configured stream capacity", registry=r)
        self.concurrency = Gauge("rtms_account_concurrency", "Last concurrency notice from Zoom", ["field"], registry=r)
        self.media_delay = Histogram(
            "rtms_media_delay_seconds",
            "Wall clock at the gateway minus Zoom's media timestamp of the newest audio committed to a stream's "
            "shared-memory rings, sampled per stream at /metrics collection (at most every 0.1 s, only when audio "
            "arrived since the previous sample). Includes Zoom's clock offset, the time since that packet and, with "
            "the audio engine, its reorder window; a replayed startup buffer (buffer_data) reads seconds by design",
            buckets=MEDIA_DELAY_BUCKETS,
            registry=r,
        )
        self.stream_start = Histogram(
            "rtms_stream_start_seconds",
            "From the accepted rtms_started webhook to the stream being up (signaling + media handshakes)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.webhook_delay = Histogram(
            "rtms_webhook_delay_seconds",
            "Receipt time minus the webhook's event_ts (Zoom's delivery delay plus clock offset)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 3600.0),
            registry=r,
        )
        self.retired = RetiredTotals()
        if stream_source is not None:
            r.register(_StreamCollector(stream_source, self.retired))

    def count_webhook(self, result: str) -> None:
        self.webhook_requests.labels(result=result).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
