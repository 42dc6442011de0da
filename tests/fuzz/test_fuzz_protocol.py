"""Fuzz the protocol decoders: only typed errors (gateway.errors.ProtocolError and subclasses) escape.

Targets: ``decode``, every ``parse_*`` function on any JSON object, ``parse_webhook`` on bytes and
objects, ``negotiate_media_params`` and ``media_params_from_wire`` on any JSON value. Inputs are
arbitrary JSON values plus valid messages with one field replaced by a random value (so the
checks deep inside each parser are reached, not just the first type check).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import protocol
from gateway.errors import ProtocolError
from gateway.protocol import MsgType, Product, WebhookKind
from tests.native.helpers import FUZZ_SCALE

SETTINGS = settings(max_examples=300 * FUZZ_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "ws://x", "wss://h/p,ws://h", ",", "v0=", "\u0000", "AAAA", "=="])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)

def _valid_messages() -> list[dict[str, Any]]:
    """Well-formed examples of every message a parser here accepts (built, never hand-written)."""
    audio = int(MsgType.MEDIA_DATA_AUDIO)
    return [
        protocol.build_signaling_handshake(instance_id="m", stream_id="s", signature="ab", buffer_data=True),
        protocol.build_data_handshake(instance_id="m", stream_id="s", signature="ab", media_type=1, media_params={"audio": {}}),
        protocol.build_signaling_handshake_response(0, server_urls={"audio": "ws://127.0.0.1:1/m"}),
        protocol.build_data_handshake_response(0, media_params=protocol.negotiate_media_params({}, ["audio", "video"])),
        protocol.build_event(int(protocol.EventType.ACTIVE_SPEAKER_CHANGE), 1, user_id=5, user_name="a"),
        protocol.build_stream_state_update(1, 0, 1),
        protocol.build_session_state_update(1, "sess", 1, 10),
        protocol.build_keep_alive_request(1, 3),
        protocol.build_media(audio, data=b"\x00\x01", timestamp=1, user_id=1, user_name="u"),
        protocol.build_media(int(MsgType.MEDIA_DATA_TRANSCRIPT), data="hi", timestamp=1, user_id=1, user_name="u"),
        protocol.build_webhook(Product.MEETING, WebhookKind.STARTED, instance_id="m", stream_id="s", event_ts=1, server_urls="wss://h/x"),
        protocol.build_webhook(Product.MEETING, WebhookKind.STOPPED, instance_id="m", stream_id="s", event_ts=1, nested=True),
        protocol.build_url_validation("tok"),
    ]


VALID = _valid_messages()
PARSERS: list[Callable[[Any], Any]] = [
    protocol.parse_signaling_handshake,
    protocol.parse_data_handshake,
    protocol.parse_signaling_handshake_response,
    protocol.parse_data_handshake_response,
    protocol.parse_event,
    protocol.parse_state_update,
    protocol.parse_media,
    protocol.parse_webhook,
    protocol.media_params_from_wire,
]


def _replace_one(doc: Any, path: list[int], value: Any) -> Any:
    """``doc`` with one nested field (picked by ``path`` indices) replaced by ``value``."""
    if not isinstance(doc, dict) or not doc or not path:
        return value
    keys = sorted(doc)
    key = keys[path[0] % len(keys)]
    out = dict(doc)
    out[key] = _replace_one(doc[key], path[1:], value)
    return out


DOCS = st.one_of(
    st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=6),
    st.builds(_replace_one, st.sampled_from(VALID), st.lists(st.integers(0, 50), min_size=1, max_size=3), JSON_VALUES),
    st.sampled_from(VALID),
)


def _dumps(value: Any) -> bytes:
    """JSON bytes for any value (big integers included, which orjson refuses to write)."""
    return json.dumps(value).encode()


def _only_typed(call: Callable[[], Any]) -> None:
    try:
        call()
    except ProtocolError:
        pass


@SETTINGS
@given(DOCS, st.sampled_from(PARSERS))
def test_parsers_raise_only_protocol_errors(doc: dict[str, Any], parser: Callable[[Any], Any]) -> None:
    _only_typed(lambda: parser(doc))


@SETTINGS
@given(st.one_of(st.binary(max_size=200), DOCS.map(_dumps), JSON_VALUES.map(_dumps)))
def test_decode_and_parse_webhook_on_bytes(data: bytes) -> None:
    _only_typed(lambda: protocol.decode(data))
    _only_typed(lambda: protocol.parse_webhook(data))
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return
    _only_typed(lambda: protocol.decode(text))


@SETTINGS
@given(JSON_VALUES | DOCS, st.lists(st.sampled_from(["audio", "video", "deskshare", "transcript", "chat"]), unique=True))
def test_negotiate_media_params_raises_only_params_rejected(raw: Any, kinds: list[str]) -> None:
    try:
        protocol.negotiate_media_params(raw, kinds)
    except protocol.ParamsRejected:
        pass
