"""rtms-gateway: a native-accelerated ingest gateway for Zoom Realtime Media Streams."""

from __future__ import annotations

import logging

from .errors import (
    ConfigError,
    GatewayError,
    HandshakeError,
    KeepAliveTimeout,
    ParseError,
    ProtocolError,
    PublishError,
    SessionClosed,
    WebhookError,
)

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "GatewayError",
    "HandshakeError",
    "KeepAliveTimeout",
    "ParseError",
    "ProtocolError",
    "PublishError",
    "SessionClosed",
    "WebhookError",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
