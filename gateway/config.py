"""Gateway configuration: one TOML file plus environment overrides, validated once at start.

Credentials use the official SDK's environment names so users can switch without relearning:
``ZM_RTMS_CLIENT``, ``ZM_RTMS_SECRET`` and ``ZM_RTMS_WEBHOOK_SECRET``. Any other scalar key can be
overridden as ``GATEWAY_<SECTION>_<KEY>`` (``GATEWAY_SERVER_PORT=9000``). Every problem raises
:class:`~gateway.errors.ConfigError` naming the offending key; secrets never appear in ``repr``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ConfigError, ProtocolError
from .protocol import MEDIA_KINDS, DataOption, MediaParams, StatusProfile, negotiate_media_params
from .udp import UdpConfig
from .video import VideoConfig

#: Environment names for the three credentials (the official ``rtms`` SDK's names).
ENV_CLIENT_ID = "ZM_RTMS_CLIENT"
ENV_CLIENT_SECRET = "ZM_RTMS_SECRET"
ENV_WEBHOOK_SECRET = "ZM_RTMS_WEBHOOK_SECRET"
ENV_PREFIX = "GATEWAY_"

ALL_MEDIA_KINDS = ("audio", "video", "deskshare", "transcript", "chat")


class Secret(str):
    """A string that never shows itself in ``repr``/``format`` of containers, logs or tracebacks."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def reveal(self) -> str:
        """The plain value, for the one place that signs with it."""
        return str.__str__(self)


_NO_SECRET = Secret("")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP server carrying the webhook endpoint, ``/metrics``, ``/healthz`` and ``/streams``."""

    host: str = "127.0.0.1"
    port: int = 8080
    webhook_path: str = "/webhook"
    #: larger bodies get 413 before any parsing (real RTMS webhooks are well under 2 KiB).
    max_body_bytes: int = 64 * 1024
    #: requests whose ``x-zm-request-timestamp`` differs from now by more are rejected (PROTOCOL.md 1.4).
    timestamp_tolerance_s: int = 300
    #: bound on remembered request ids/signatures for replay detection.
    replay_cache_size: int = 100_000
    #: how long graceful shutdown waits for streams to close before aborting them.
    shutdown_timeout_s: float = 10.0
    #: serve HTTPS directly with this certificate chain and key (PEM); empty: plain HTTP behind a proxy.
    tls_cert: str = ""
    tls_key: str = ""
    #: where live streams' targets survive a restart (gateway.state; e.g. /var/lib/rtms-gateway/streams.json); empty: off.
    state_file: str = ""
    #: Zoom's signaling reconnection window: restored streams with no ``rtms_interrupted`` by then are dropped.
    state_window_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Credentials:
    """App credentials; ``repr`` shows only whether each is set."""

    client_id: str = ""
    client_secret: Secret = _NO_SECRET
    webhook_secret: Secret = _NO_SECRET

    def __repr__(self) -> str:
        return (
            f"Credentials(client_id={self.client_id!r}, client_secret={'***' if self.client_secret else '<unset>'}, "
            f"webhook_secret={'***' if self.webhook_secret else '<unset>'})"
        )


@dataclass(frozen=True, slots=True)
class SessionsConfig:
    """How streams are opened and how many may run at once."""

    #: streams beyond this are refused (503 to the webhook, logged and counted).
    max_streams: int = 2000
    media_kinds: tuple[str, ...] = ALL_MEDIA_KINDS
    #: one ``all`` media socket instead of one socket per kind.
    unified: bool = False
    #: which RTMS_STATUS_CODE numbering the server speaks ("A" 2025 list, "B" 2026 list).
    status_profile: str = "B"
    #: ask Zoom to replay the audio buffered before the stream was joined (up to 60 s).
    buffer_data: bool = True
    #: limit for each handshake answer (msg 2, msg 4) before the stream is given up.
    handshake_timeout_s: float = 10.0
    #: largest media message accepted (bytes); a larger fragmented message is a counted
    #: ``too_large`` drop, a larger single frame closes that media socket (1009) and it reconnects.
    max_frame_bytes: int = 16 << 20
    #: PEM bundle of CAs trusted for wss:// to RTMS servers (empty: the system's CAs).
    ca_file: str = ""
    #: raw ``media_params`` per kind as sent in msg 3 (empty = the raw protocol's defaults).
    media_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: individual video (needs ``media_params.video.data_opt = 4``): participant to subscribe to
    #: (msg 28) at start; 0 = none.
    video_subscribe_user: int = 0
    #: "" (no following), "user" (re-subscribe video_subscribe_user whenever its camera comes on)
    #: or "first" (the first participant with video on; moves on when that camera goes off).
    video_follow: str = ""

    def build_media_params(self) -> MediaParams:
        """The params to request, checked against the documented matrix, defaults filled."""
        try:
            return negotiate_media_params({k: dict(v) for k, v in self.media_params.items()}, list(self.media_kinds))
        except ProtocolError as exc:
            where = (exc.field or "media_params").replace("media_params", "sessions.media_params", 1)
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True, slots=True)
class PublishConfig:
    """Where frames go: shared memory (primary) or per-stream counters only."""

    shm: bool = False
    #: where segments live (empty = /dev/shm).
    shm_dir: str = ""
    #: segment name prefix; consumers attach with the same prefix.
    shm_prefix: str = "rtms-gw"
    #: group allowed to attach (segments 0660 with that group); empty = owner only (0600).
    shm_group: str = ""
    #: seconds of audio each PCM ring holds (how far a consumer may fall behind).
    audio_ring_s: float = 8.0
    #: bytes of each video / share frame ring (rounded up to a power of two; a 720p JPEG is ~50 KiB).
    video_ring_bytes: int = 512 * 1024
    share_ring_bytes: int = 512 * 1024


@dataclass(frozen=True, slots=True)
class AudioSettings:
    """``[audio]``: the audio engine between the media sockets and shared memory (with ``publish.shm``).

    ``engine = true``: one media clock per meeting, reorder window, duplicates dropped, gaps
    marked, the mix of per-speaker streams, G.711/G.722/Opus decoded to PCM rings, consumer
    formats. Costs the Python audio path and ``reorder_ms`` of latency. ``false``: the native
    fast path (payloads decoded from base64 straight into the rings, no Python per packet):
    packets land at their timestamps, but no mix, no reordering, no codec decoding, no formats.
    """

    engine: bool = True
    #: how long packets may arrive out of order (added latency).
    reorder_ms: int = 60
    #: user ids left out of the computed mix (their own rings are still published).
    mix_exclude: tuple[str, ...] = ()
    #: scale of the computed mix before saturating (1.0 = plain saturating sum).
    mix_gain: float = 1.0
    #: consumer formats, "[mixed:|each:]rate:int16|float32:channels" (8000-48000 Hz, 1 or 2): of the
    #: mixed stream (default) or of every participant ("each:"), each produced once (soxr) into its
    #: own shared-memory format ring.
    formats: tuple[str, ...] = ()
    #: decode G.711 as mu-law instead of A-law.
    g711_ulaw: bool = False


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """Operator endpoints ``POST {prefix}/{meeting_id}/{start|stop|pause|resume}`` on the gateway's server.

    They call Zoom's RTMS app status REST API with a server-to-server OAuth app whose credentials
    come from ``ZM_ACCOUNT_ID``, ``ZM_API_CLIENT_ID`` and ``ZM_API_CLIENT_SECRET``; every request
    must carry ``Authorization: Bearer <operator_token>``.
    """

    enabled: bool = False
    operator_token: Secret = _NO_SECRET
    prefix: str = "/control"
    api_base: str = ""  # empty: Zoom's
    oauth_url: str = ""  # empty: Zoom's

    def __repr__(self) -> str:
        return (
            f"ControlConfig(enabled={self.enabled}, operator_token={'***' if self.operator_token else '<unset>'}, "
            f"prefix={self.prefix!r}, api_base={self.api_base!r}, oauth_url={self.oauth_url!r})"
        )


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole configuration. Build with :func:`load_config` (file + env) or directly in tests."""

    server: ServerConfig = field(default_factory=ServerConfig)
    credentials: Credentials = field(default_factory=Credentials)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    audio: AudioSettings = field(default_factory=AudioSettings)
    control: ControlConfig = field(default_factory=ControlConfig)
    log: LogConfig = field(default_factory=LogConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    udp: UdpConfig = field(default_factory=UdpConfig)

    def validate(self, *, require_credentials: bool = True) -> GatewayConfig:
        """Raise :class:`ConfigError` naming the first bad key; return ``self`` for chaining."""
        s = self.server
        if not s.host:
            raise ConfigError("server.host must not be empty")
        if not 0 <= s.port <= 65535:
            raise ConfigError(f"server.port must be 0..65535, got {s.port}")
        if not s.webhook_path.startswith("/") or s.webhook_path in ("/metrics", "/healthz", "/streams"):
            raise ConfigError(f"server.webhook_path must start with '/' and not shadow a built-in path, got {s.webhook_path!r}")
        if s.max_body_bytes < 1024:
            raise ConfigError(f"server.max_body_bytes must be at least 1024, got {s.max_body_bytes}")
        if s.timestamp_tolerance_s <= 0:
            raise ConfigError(f"server.timestamp_tolerance_s must be positive, got {s.timestamp_tolerance_s}")
        if s.replay_cache_size < 1:
            raise ConfigError(f"server.replay_cache_size must be positive, got {s.replay_cache_size}")
        if s.shutdown_timeout_s <= 0:
            raise ConfigError(f"server.shutdown_timeout_s must be positive, got {s.shutdown_timeout_s}")
        if s.state_window_s <= 0:
            raise ConfigError(f"server.state_window_s must be positive, got {s.state_window_s}")
        if bool(s.tls_cert) != bool(s.tls_key):
            raise ConfigError("server.tls_cert and server.tls_key go together (both or neither)")
        for key, path in (("server.tls_cert", s.tls_cert), ("server.tls_key", s.tls_key), ("sessions.ca_file", self.sessions.ca_file)):
            if path and not os.path.isfile(path):
                raise ConfigError(f"{key}: no such file {path!r}")
        q = self.sessions
        if q.max_streams < 1:
            raise ConfigError(f"sessions.max_streams must be at least 1, got {q.max_streams}")
        if not q.media_kinds:
            raise ConfigError("sessions.media_kinds must name at least one kind")
        for kind in q.media_kinds:
            if kind not in MEDIA_KINDS:
                raise ConfigError(f"sessions.media_kinds: unknown kind {kind!r} (one of {', '.join(ALL_MEDIA_KINDS)})")
        if q.handshake_timeout_s <= 0:
            raise ConfigError(f"sessions.handshake_timeout_s must be positive, got {q.handshake_timeout_s}")
        if q.max_frame_bytes < 64 * 1024:
            raise ConfigError(f"sessions.max_frame_bytes must be at least 65536, got {q.max_frame_bytes}")
        if q.status_profile not in {p.value for p in StatusProfile}:
            raise ConfigError(f"sessions.status_profile must be one of {[p.value for p in StatusProfile]}, got {q.status_profile!r}")
        for kind, params in q.media_params.items():
            if kind not in MEDIA_KINDS:
                raise ConfigError(f"sessions.media_params.{kind}: unknown media kind")
            if not isinstance(params, Mapping):
                raise ConfigError(f"sessions.media_params.{kind} must be a table")
        params = q.build_media_params()
        if q.video_follow not in ("", "user", "first"):
            raise ConfigError(f'sessions.video_follow must be "", "user" or "first", got {q.video_follow!r}')
        if not 0 <= q.video_subscribe_user < 1 << 32:
            raise ConfigError(f"sessions.video_subscribe_user must be a uint32 user id (0 = none), got {q.video_subscribe_user}")
        if q.video_follow == "user" and not q.video_subscribe_user:
            raise ConfigError('sessions.video_follow = "user" needs sessions.video_subscribe_user')
        individual = "video" in q.media_kinds and params.video is not None and params.video.data_opt == DataOption.VIDEO_SINGLE_INDIVIDUAL_STREAM
        for key, on in (("video_follow", bool(q.video_follow)), ("video_subscribe_user", bool(q.video_subscribe_user))):
            if on and not individual:
                raise ConfigError(f"sessions.{key} needs video in media_kinds and sessions.media_params.video.data_opt = 4")
        p = self.publish
        if not p.shm_prefix or "/" in p.shm_prefix or len(p.shm_prefix) > 32:
            raise ConfigError(f"publish.shm_prefix must be 1-32 characters without '/', got {p.shm_prefix!r}")
        if p.audio_ring_s <= 0:
            raise ConfigError(f"publish.audio_ring_s must be positive, got {p.audio_ring_s}")
        for key in ("video_ring_bytes", "share_ring_bytes"):
            if getattr(p, key) < 64 * 1024:
                raise ConfigError(f"publish.{key} must be at least 65536, got {getattr(p, key)}")
        a = self.audio
        if not 0 <= a.reorder_ms <= 2000:
            raise ConfigError(f"audio.reorder_ms must be 0..2000, got {a.reorder_ms}")
        if not 0.0 < a.mix_gain <= 1.0:
            raise ConfigError(f"audio.mix_gain must be in (0, 1], got {a.mix_gain}")
        for uid in a.mix_exclude:
            if not uid.isdigit():
                raise ConfigError(f"audio.mix_exclude: {uid!r} is not a user id")
        for spec in a.formats:
            from .pipeline import parse_format  # numpy/soxr only when formats are configured

            try:
                parse_format(spec)
            except ValueError as exc:
                raise ConfigError(f"audio.formats: {exc}") from None
        c = self.control
        if c.enabled and not str(c.operator_token).strip():
            raise ConfigError("control.operator_token is required when control.enabled (or set GATEWAY_CONTROL_OPERATOR_TOKEN)")
        if not c.prefix.startswith("/") or c.prefix.rstrip("/") in ("", s.webhook_path, "/metrics", "/healthz", "/streams"):
            raise ConfigError(f"control.prefix must start with '/' and not shadow another path, got {c.prefix!r}")
        if self.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"log.level must be a logging level name, got {self.log.level!r}")
        if require_credentials:
            c = self.credentials
            if not c.client_id:
                raise ConfigError(f"credentials.client_id is required (or set {ENV_CLIENT_ID})")
            if not c.client_secret:
                raise ConfigError(f"credentials.client_secret is required (or set {ENV_CLIENT_SECRET})")
            if not c.webhook_secret:
                raise ConfigError(f"credentials.webhook_secret is required (or set {ENV_WEBHOOK_SECRET})")
        return self


_SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "credentials": Credentials,
    "sessions": SessionsConfig,
    "publish": PublishConfig,
    "audio": AudioSettings,
    "control": ControlConfig,
    "log": LogConfig,
    "video": VideoConfig,
    "udp": UdpConfig,
}
_SECRET_KEYS = {("credentials", "client_secret"), ("credentials", "webhook_secret"), ("control", "operator_token")}


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the field's default; strings from env are parsed."""
    name = f"{section}.{key}"
    if (section, key) in _SECRET_KEYS:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string")
        return Secret(value)
    if isinstance(default, bool):
        if isinstance(value, str):
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be a boolean, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise ConfigError(f"{name} must be an integer, got {value!r}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a table")
        return MappingProxyType({k: MappingProxyType(dict(v)) if isinstance(v, Mapping) else v for k, v in value.items()})
    return value


def _section_defaults(cls: type) -> dict[str, Any]:
    instance = cls()
    return {f.name: getattr(instance, f.name) for f in fields(cls)}


def config_from_mapping(doc: Mapping[str, Any], env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Build a config from a parsed TOML document and an environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    sections: dict[str, dict[str, Any]] = {}
    for name, value in doc.items():
        if name not in _SECTIONS:
            raise ConfigError(f"unknown section [{name}] (known: {', '.join(_SECTIONS)})")
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{name}] must be a table")
    for name, cls in _SECTIONS.items():
        defaults = _section_defaults(cls)
        table = doc.get(name, {})
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in defaults:
                raise ConfigError(f"unknown key {name}.{key} (known: {', '.join(defaults)})")
            values[key] = _coerce(name, key, value, defaults[key])
        for key, default in defaults.items():
            env_name = f"{ENV_PREFIX}{name.upper()}_{key.upper()}"
            if env_name in env and not isinstance(default, Mapping):
                values[key] = _coerce(name, key, env[env_name], default)
        sections[name] = values
    creds = sections["credentials"]
    for key, env_name in (("client_id", ENV_CLIENT_ID), ("client_secret", ENV_CLIENT_SECRET), ("webhook_secret", ENV_WEBHOOK_SECRET)):
        if env.get(env_name):
            creds[key] = _coerce("credentials", key, env[env_name], "")
    built = {name: cls(**sections[name]) for name, cls in _SECTIONS.items()}
    return GatewayConfig(**built)


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None, *, require_credentials: bool = True) -> GatewayConfig:
    """Read ``path`` (TOML; ``None`` = defaults only), apply environment overrides, validate."""
    doc: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                doc = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
    return config_from_mapping(doc, env).validate(require_credentials=require_credentials)


def with_overrides(config: GatewayConfig, **sections: Mapping[str, Any]) -> GatewayConfig:
    """A copy of ``config`` with some section fields replaced (``server={"port": 0}``)."""
    changes = {name: replace(getattr(config, name), **values) for name, values in sections.items()}
    return replace(config, **changes)
