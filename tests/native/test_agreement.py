"""Property tests: the native listener and the pure twin agree on every message, valid or not.

Messages are generated as JSON text by hand (field order, whitespace, escapes in any string,
unicode names, payload sizes 0..8 KiB), then optionally corrupted (truncated, a base64 character
flipped, a field retyped, a huge length, a random byte). Each payload goes through three
listeners -- pure, native with a Python MediaSink, native with a NativeSink -- and the calls each
sink receives (bytes included), the drop reasons and the counters must be identical.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import _native_py
from tests.native.helpers import FUZZ_SCALE, FakeTransport, RecordingControl, RecordingSink, comparable, native_module

SETTINGS = settings(max_examples=200 * FUZZ_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COUNTERS = ("frames", "media_frames", "bytes", "keepalives_answered", "unknown_types", "drops_by_reason")

# ---------------------------------------------------------------------------- JSON writer

WHITESPACE = st.sampled_from(["", "", "", " ", "\t", "\n", "\r\n", "\n\t\t", "  "])
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)  # no lone surrogates


@st.composite
def json_string(draw: st.DrawFn, value: str) -> str:
    """``value`` as a JSON string literal, each character raw or escaped at random."""
    out = ['"']
    escape_some = draw(st.booleans())
    for ch in value:
        code = ord(ch)
        must = ch in '"\\' or code < 0x20
        if must or (escape_some and draw(st.integers(0, 3)) == 0):
            if ch in '"\\/' and draw(st.booleans()):
                out.append("\\" + ch)
            elif code > 0xFFFF:
                hi, lo = divmod(code - 0x10000, 0x400)
                out.append(f"\\u{0xD800 + hi:04x}\\u{0xDC00 + lo:04X}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@st.composite
def json_text(draw: st.DrawFn, value: Any) -> str:
    """Any JSON value as text, with random whitespace and key order (objects given as lists of pairs)."""
    ws = draw(WHITESPACE)
    if isinstance(value, list) and value and isinstance(value[0], tuple):  # an object
        pairs = draw(st.permutations(value))
        items = [draw(json_string(k)) + draw(WHITESPACE) + ":" + draw(WHITESPACE) + draw(json_text(v)) for k, v in pairs]
        return "{" + ws + ("," + draw(WHITESPACE)).join(items) + draw(WHITESPACE) + "}"
    if isinstance(value, list):
        return "[" + ws + ("," + ws).join(draw(json_text(v)) for v in value) + "]"
    if isinstance(value, str):
        return draw(json_string(value))
    return json.dumps(value)


EXTRA_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=False, allow_infinity=False) | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(SAFE_TEXT, inner), min_size=1, max_size=3),
    max_leaves=6,
)


@st.composite
def media_message(draw: st.DrawFn) -> tuple[list[tuple[str, Any]], bytes | None]:
    """A media message as a pair list (valid most of the time) and its binary payload if any."""
    msg_type = draw(st.sampled_from([14, 14, 14, 15, 16, 17, 18]))
    content: list[tuple[str, Any]] = []
    payload = None
    if msg_type < 17:
        payload = draw(st.binary(max_size=8192) | st.binary(max_size=8))
        content.append(("data", base64.b64encode(payload).decode()))
        length = draw(st.sampled_from(["ok", "ok", "absent", "null", "wrong"]))
        if length == "ok":
            content.append(("length", len(payload)))
        elif length == "null":
            content.append(("length", None))
        elif length == "wrong":
            content.append(("length", draw(st.integers(-5, 2**64))))
    else:
        content.append(("data", draw(SAFE_TEXT)))
    uid = draw(st.sampled_from(["int", "int", "str", "absent", "null"]))
    if uid == "int":
        content.append(("user_id", draw(st.integers(0, 2**32 - 1) | st.integers(-3, 2**33))))
    elif uid == "str":
        content.append(("user_id", str(draw(st.integers(0, 2**33)))))
    elif uid == "null":
        content.append(("user_id", None))
    if draw(st.booleans()):
        content.append(("user_name", draw(SAFE_TEXT | st.none())))
    content.append(("timestamp", draw(st.integers(0, 2**41) | st.integers(-(2**63), 2**63 + 5))))
    for key in draw(st.lists(st.sampled_from(["channel_id", "start_time", "language", "attribute"]), unique=True, max_size=2)):
        content.append((key, draw(SAFE_TEXT) if key == "channel_id" else draw(st.integers(0, 10**6))))
    for _ in range(draw(st.integers(0, 2))):
        content.append(("x_" + draw(SAFE_TEXT), draw(EXTRA_VALUE)))
    doc: list[tuple[str, Any]] = [("msg_type", msg_type), ("content", content)]
    if draw(st.booleans()):
        doc.append(("x_top", draw(EXTRA_VALUE)))
    return doc, payload


@st.composite
def corrupted(draw: st.DrawFn, text: str) -> bytes:
    raw = text.encode()
    how = draw(st.sampled_from(["none", "none", "truncate", "flip_b64", "retype", "byte", "dup"]))
    if how == "truncate" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if how == "flip_b64":
        at = raw.find(b'"data"')
        start = raw.find(b'"', at + 6) + 1 if at >= 0 else -1
        if start > 0 and raw[start:start + 1] not in (b"", b'"'):
            pos = start + draw(st.integers(0, max(0, raw.find(b'"', start) - start - 1)))
            bad = draw(st.sampled_from(list(b"!*-_=. \\\x01\xc3")))
            return raw[:pos] + bytes([bad]) + raw[pos + 1:]
    if how == "retype":
        field = draw(st.sampled_from([b'"timestamp"', b'"user_id"', b'"data"', b'"user_name"', b'"length"']))
        at = raw.find(field)
        if at >= 0:
            colon = raw.find(b":", at + len(field))
            return raw[: colon + 1] + draw(st.sampled_from([b"1.5,", b"true,", b'"x",', b"[],", b"{},", b"-0,", b"1e3,"])) + raw[colon + 1:]
    if how == "byte" and raw:
        pos = draw(st.integers(0, len(raw) - 1))
        return raw[:pos] + bytes([draw(st.integers(0, 255))]) + raw[pos:]
    if how == "dup":
        at = raw.find(b"{", 1)
        if at > 0:
            return raw[: at + 1] + draw(st.sampled_from([b'"timestamp":7,', b'"data":"AAAA",', b'"user_id":"9",'])) + raw[at + 1:]
    return raw


# ---------------------------------------------------------------------------- harness


def _run_all(payloads: list[bytes]) -> list[Any]:
    """Feed the same payloads to the three listeners and compare everything they did."""
    native = native_module()
    logs: dict[str, list[Any]] = {}
    listeners: dict[str, Any] = {}
    for name in ("pure", "native", "native-nativesink"):
        log: list[Any] = []
        if name == "native-nativesink":
            sink: Any = native._RecordingSink()
            sink.calls = log
        else:
            sink = RecordingSink(log)
        cls = _native_py.MediaListener if name == "pure" else native.MediaListener
        listener = cls(sink, RecordingControl(log), max_frame_bytes=16384)
        listener.transport = FakeTransport(log)
        for payload in payloads:
            listener.feed(payload, False)
        logs[name], listeners[name] = log, listener
    assert logs["native"] == logs["pure"]
    assert logs["native-nativesink"] == [comparable(call) for call in logs["pure"]]
    stats = {name: listener.stats() for name, listener in listeners.items()}
    for key in COUNTERS:
        assert stats["native"][key] == stats["pure"][key] == stats["native-nativesink"][key], key
    assert sum(stats["pure"]["drops_by_reason"].values()) + stats["pure"]["media_frames"] \
        + stats["pure"]["unknown_types"] <= len(payloads)
    return logs["pure"]


@SETTINGS
@given(st.data())
def test_valid_and_corrupted_media_agree(data: st.DataObject) -> None:
    doc, payload = data.draw(media_message())
    text = data.draw(json_text(doc))
    raw = data.draw(corrupted(text))
    calls = _run_all([raw])
    _run_all([text.encode(), raw, text.encode()])  # learned shape first: the native template path
    if payload is not None and raw == text.encode() and calls and calls[0][0] != "drop":
        assert calls[0][4] == payload  # delivered bytes are the generated payload


@SETTINGS
@given(st.data())
def test_well_formed_media_is_delivered_with_exact_bytes(data: st.DataObject) -> None:
    payload = data.draw(st.binary(max_size=8192))
    name = data.draw(SAFE_TEXT)
    uid = data.draw(st.integers(0, 2**32 - 1))
    doc = [("msg_type", 14), ("content", [("user_id", uid), ("user_name", name), ("timestamp", 5),
                                          ("data", base64.b64encode(payload).decode()), ("length", len(payload))])]
    raw = data.draw(json_text(doc)).encode()
    sink = RecordingSink()
    listener = native_module().MediaListener(sink, RecordingControl())
    listener.feed(raw, True)
    assert sink.calls == [("audio", uid, name, 5, payload)]
    _run_all([raw])


@SETTINGS
@given(st.data())
def test_same_shape_new_values_agree(data: st.DataObject) -> None:
    """A stream of messages with one shape and changing values (the native template path)."""
    doc, _ = data.draw(media_message())
    text = data.draw(json_text(doc))
    stream = [text.encode()]
    for _ in range(3):
        mutated = text
        for old, new in data.draw(st.lists(st.tuples(st.sampled_from(["1", "A", "n", '"', "4", "0", ":"]),
                                                      st.sampled_from(["12", "", "9", "null", "B", '"x"', "-"])),
                                            max_size=3)):
            at = data.draw(st.integers(0, max(0, len(mutated) - 1)))
            index = mutated.find(old, at)
            if index >= 0:
                mutated = mutated[:index] + new + mutated[index + len(old):]
        stream.append(mutated.encode())
    _run_all(stream)


@SETTINGS
@given(st.data())
def test_compact_stream_with_value_edits_agrees(data: st.DataObject) -> None:
    """Compact messages as Zoom sends them, then single-byte edits anywhere (values or literals)."""
    payload = data.draw(st.binary(max_size=2048) | st.binary(min_size=600, max_size=700))
    content: dict[str, Any] = {"user_id": data.draw(st.integers(0, 2**32 - 1)), "user_name": data.draw(SAFE_TEXT),
                               "data": base64.b64encode(payload).decode(), "timestamp": data.draw(st.integers(0, 2**45))}
    if data.draw(st.booleans()):
        content["length"] = len(payload)
    first = orjson.dumps({"msg_type": data.draw(st.sampled_from([14, 15, 16])), "content": content})
    stream = [first]
    for _ in range(4):
        at = data.draw(st.integers(0, len(first) - 1))
        edit = data.draw(st.sampled_from([b"0", b"7", b"A", b"=", b'"', b"-", b" ", b"n", b".", b"e", b"", b"99"]))
        stream.append(first[:at] + edit + first[at + 1:])
    stream.append(first)
    _run_all(stream)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_agree(raw: bytes) -> None:
    _run_all([raw, b'{"msg_type":14,"content":' + raw + b"}"])


@SETTINGS
@given(st.data())
def test_control_and_keep_alive_agree(data: st.DataObject) -> None:
    msg_type = data.draw(st.integers(-2, 32) | st.sampled_from([12, 12, 6, 8]))
    fields = [("msg_type", msg_type)]
    if data.draw(st.booleans()):
        fields.append(("timestamp", data.draw(st.integers(0, 2**64 - 1))))
    if data.draw(st.booleans()):
        fields.append(("sequence", data.draw(st.integers(0, 10**6) | SAFE_TEXT)))
    fields.append(("x", data.draw(EXTRA_VALUE)))
    _run_all([data.draw(json_text(fields)).encode()])


@SETTINGS
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=*- \u00e9", max_size=40))
def test_base64_decoder_matches_the_twin(text: str) -> None:
    try:
        expected: bytes | None = _native_py.b64decode_media(text)
    except _native_py.MediaDrop:
        expected = None
    try:
        got: bytes | None = native_module().b64decode(text.encode())
    except ValueError:
        got = None
    assert got == expected


def test_generated_json_is_what_orjson_reads() -> None:
    """The hand-written JSON writer is correct (so the properties above test the listener)."""

    @SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        doc, _ = data.draw(media_message())
        text = data.draw(json_text(doc))

        def plain(value: Any) -> Any:
            if isinstance(value, list) and value and isinstance(value[0], tuple):
                return {k: plain(v) for k, v in value}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        parsed, expected = orjson.loads(text), plain(doc)
        assert parsed["msg_type"] == expected["msg_type"]
        for key in ("data", "user_name", "user_id", "timestamp"):
            assert parsed["content"].get(key, "absent") == expected["content"].get(key, "absent"), key

    check()
