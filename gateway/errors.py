"""One exception tree for the whole gateway.

Concrete errors also inherit the matching builtin (``ValueError``, ``TimeoutError``,
``ConnectionError``) so callers that only know the standard library still catch them.
Pure Python on purpose: the native module raises these too.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError, ValueError):
    """Configuration is missing or invalid (raised at start-up, never mid-stream)."""


class ProtocolError(GatewayError, ValueError):
    """A wire message broke the RTMS protocol.

    ``field`` names the offending JSON field (dotted path) when one is to blame, and
    ``msg_type`` the message type when it was readable.
    """

    def __init__(self, message: str, *, field: str | None = None, msg_type: int | None = None) -> None:
        self.field = field
        self.msg_type = msg_type
        detail = message
        if field is not None:
            detail = f"{detail} (field {field!r})"
        if msg_type is not None:
            detail = f"{detail} [msg_type {msg_type}]"
        super().__init__(detail)


class ParseError(ProtocolError):
    """The bytes were not a well-formed message at all (bad JSON, bad base64, truncated)."""


class UnknownMessageType(ProtocolError):
    """A ``msg_type`` the gateway does not know; counted and ignored, never fatal."""


class FrameTooLarge(ProtocolError):
    """A frame exceeded the configured size limit; counted and dropped."""


class WebhookError(GatewayError, ValueError):
    """A webhook request was rejected. ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 400, reason: str = "bad_request") -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


class HandshakeError(GatewayError, ConnectionError):
    """The server answered a handshake with a non-zero status code."""

    def __init__(self, message: str, *, status_code: int, status_name: str, socket: str) -> None:
        self.status_code = status_code
        self.status_name = status_name
        self.socket = socket
        super().__init__(f"{socket} handshake rejected: {status_code} {status_name}: {message}")


class KeepAliveTimeout(GatewayError, TimeoutError):
    """No keep-alive (or other traffic) arrived within the watchdog window."""


class SessionClosed(GatewayError):
    """The stream ended; ``reason`` is the RTMS stop reason when known."""

    def __init__(self, message: str, *, reason: int | None = None) -> None:
        self.reason = reason
        super().__init__(message)


class PublishError(GatewayError):
    """A publisher (shared memory, UDP) could not deliver or set up a stream."""


class ControlError(GatewayError):
    """Zoom's REST API refused an RTMS app status change (start/stop/pause/resume).

    ``status`` is the HTTP status, ``code`` Zoom's error code from the JSON body (``None`` when the
    body had none) and ``zoom_message`` Zoom's own text, kept for operators.
    """

    def __init__(self, message: str, *, status: int = 0, code: int | None = None, zoom_message: str = "") -> None:
        self.status = status
        self.code = code
        self.zoom_message = zoom_message
        super().__init__(message)


class MeetingNotLive(ControlError):
    """The meeting does not exist or is not in progress (nothing to stream from)."""


class HostNotPresent(ControlError):
    """The host (or the alternative host acting) is not in the meeting."""


class AppNotPermitted(ControlError):
    """The RTMS app may not be started here (not enabled, not allowed, missing scope or plan)."""


class TokenRejected(ControlError):
    """Zoom rejected the access token (expired, revoked or wrong) even after one renewal."""


class CredentialsRejected(ControlError):
    """The OAuth endpoint refused the account id or client credentials: no token at all."""


class RateLimited(ControlError):
    """Zoom answered 429; ``retry_after`` is the advised delay in seconds."""

    def __init__(self, message: str, *, retry_after: float, status: int = 429, code: int | None = None, zoom_message: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code, zoom_message=zoom_message)
