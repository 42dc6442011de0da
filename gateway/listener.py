"""Chooses the media listener: native (``gateway._native``) by default, pure Python on request.

``GATEWAY_PURE=1`` selects the pure-Python twin (``gateway._native_py``). Without it the native
extension is required: a failed import is an error with a fix-it message, never a silent fall
back to the slow twin (a gateway that quietly runs 10x slower is worse than one that refuses).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

IMPLEMENTATION: str = "pure" if os.environ.get("GATEWAY_PURE", "") not in ("", "0", "false", "no") else "native"

_announced = False


def media_listener_class() -> type:
    """The ``MediaListener`` class to instantiate per media socket (see :data:`IMPLEMENTATION`)."""
    global _announced
    if IMPLEMENTATION == "pure":
        from ._native_py import MediaListener as listener_class
    else:
        try:
            from ._native import MediaListener as listener_class  # type: ignore[attr-defined]
        except ImportError as exc:
            raise ImportError(
                f"the native media listener (gateway._native) is not importable: {exc}. "
                "Build it with `make build` (or `python setup.py build_ext --inplace`), "
                "or set GATEWAY_PURE=1 to run the slower pure-Python listener."
            ) from exc
    if not _announced:
        _announced = True
        log.info("media listener: %s (%s.%s)", IMPLEMENTATION, listener_class.__module__, listener_class.__name__)
    return listener_class
