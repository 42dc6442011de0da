"""gateway.listener picks the implementation from GATEWAY_PURE and never falls back silently."""

from __future__ import annotations

import importlib
import sys

import pytest

import gateway.listener


def _reload(monkeypatch: pytest.MonkeyPatch, pure: str | None) -> object:
    if pure is None:
        monkeypatch.delenv("GATEWAY_PURE", raising=False)
    else:
        monkeypatch.setenv("GATEWAY_PURE", pure)
    return importlib.reload(gateway.listener)


def test_pure_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _reload(monkeypatch, "1")
    from gateway import _native_py

    assert module.IMPLEMENTATION == "pure"
    assert module.media_listener_class() is _native_py.MediaListener


def test_native_import_failure_is_an_error_with_a_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _reload(monkeypatch, None)
    assert module.IMPLEMENTATION == "native"
    monkeypatch.setitem(sys.modules, "gateway._native", None)  # makes `import gateway._native` fail
    with pytest.raises(ImportError, match="GATEWAY_PURE=1"):
        module.media_listener_class()


def test_native_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _reload(monkeypatch, "0")
    native = importlib.import_module("gateway._native")
    assert module.IMPLEMENTATION == "native"
    assert module.media_listener_class() is native.MediaListener
