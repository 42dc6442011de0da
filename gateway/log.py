"""Logging set-up for the CLI: one line per record, plain text or JSON, to stderr.

Secrets never reach a record in the first place (config values are :class:`~gateway.config.Secret`
with a hidden ``repr``; nothing logs a signature or a token); this module only formats.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message (+ exception text)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def setup_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Configure the root logger once (idempotent: replaces handlers installed by an earlier call)."""
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        fmt = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        fmt.converter = time.gmtime
        handler.setFormatter(fmt)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_gateway_handler", False):
            root.removeHandler(old)
    handler._gateway_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
