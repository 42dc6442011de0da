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
