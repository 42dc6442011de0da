"""The native base64 decoder (AVX2 where the CPU has it, scalar otherwise) against the stdlib."""

from __future__ import annotations

import base64
import random

import pytest

from gateway import _native_py
from tests.native.helpers import native_module

ALPHABET = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _decode(data: bytes, simd: bool) -> bytes | None:
    try:
        return native_module().b64decode(data, simd=simd)
    except ValueError:
        return None


def test_reports_its_decoder() -> None:
    assert native_module().b64_simd() in ("avx512vbmi", "avx2", "scalar")


@pytest.mark.parametrize("simd", [True, False])
def test_round_trips_every_length(simd: bool) -> None:
    rng = random.Random(4)
    for size in [*range(200), 640, 1023, 1024, 8192]:
        data = rng.randbytes(size)
        assert _decode(base64.b64encode(data), simd) == data, size


@pytest.mark.parametrize("simd", [True, False])
def test_every_byte_value_at_every_position(simd: bool) -> None:
    """Any non-alphabet byte anywhere is an error; any alphabet byte decodes like the stdlib."""
    encoded = base64.b64encode(random.Random(7).randbytes(72))  # 96 chars: SIMD blocks + scalar tail
    for pos in range(len(encoded)):
        for value in range(256):
            mutated = bytearray(encoded)
            mutated[pos] = value
            expected = base64.b64decode(bytes(mutated)) if value in ALPHABET else None
            if pos >= len(encoded) - 2 and value == ord("="):
                continue  # padding forms are covered below
            assert _decode(bytes(mutated), simd) == expected, (pos, value)


@pytest.mark.parametrize("text", ["", "QQ==", "QUI=", "QUJD", "QR==", "QQ=", "QQ", "Q===", "====", "AAAA====",
                                  "QUJD=", "QQ==QUJD", "QUJDQQ==", "QU=D", "=QUJ"])
@pytest.mark.parametrize("simd", [True, False])
def test_padding_rules_match_the_twin(text: str, simd: bool) -> None:
    try:
        expected: bytes | None = _native_py.b64decode_media(text)
    except _native_py.MediaDrop:
        expected = None
    assert _decode(text.encode(), simd) == expected
