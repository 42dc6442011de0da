"""Edge cases of the scanner's word-at-a-time paths, checked against the pure twin.

The integer scanner counts digits 8 bytes at a time (loads that may reach the frame's end), the
template caches repeated values (msg_type, user_id, user_name, length) and the base64 decoder
finishes a payload with a padded SIMD block: each is exercised at every digit count, near the
frame's end, and with values that change or alternate from message to message.
"""

from __future__ import annotations

import base64
import itertools

import pytest

from tests.native.test_agreement import _run_all

B64 = base64.b64encode(bytes(range(48))).decode()


def _audio(timestamp: str, user_id: str = "7", name: str = '"Ann"', length: str = "48", tail: str = "}}",
           msg_type: str = "14", data: str = B64) -> bytes:
    return (f'{{"msg_type":{msg_type},"content":{{"user_id":{user_id},"user_name":{name},'
            f'"data":"{data}","length":{length},"timestamp":{timestamp}{tail}').encode()


NUMBERS = [str(10**k) for k in range(0, 22)] + [str(10**k - 1) for k in range(1, 22)] + \
    ["0", "00", "01", "-0", "-", "-1", "-123456789012345678", "1234567890123456789", "12.5", "1e3", "7E1",
     "123456789012345678", "9999999999999999", "99999999999999999", "12345678901234567x",
     "12.", "123e", "1234567x", "12345678x", "1234567890123x", "1234567890123.", "7 ", "1234567890123 ",
     "123456789012345\t", "1x3", "123456789x123"]


@pytest.mark.parametrize("tail", ["}}", "} }", "}}\n", " }}", "}", ""])
def test_integers_of_every_length_at_the_frame_end(tail: str) -> None:
    _run_all([_audio(number, tail=tail) for number in NUMBERS])


def test_integers_of_every_length_in_every_numeric_field() -> None:
    stream = [_audio("5")]
    for number in NUMBERS:
        stream += [_audio("5", user_id=number), _audio("5", length=number), _audio("5", msg_type=number),
                   _audio(number)]
    _run_all(stream)


def test_cached_values_that_change_or_alternate_agree() -> None:
    """Multi-stream audio alternates users; a value that grows, shrinks or turns null must not
    be mistaken for the cached one."""
    users = ["7", "70", "7", '"7"', "null", "4294967295", "4294967296", "8", "7"]
    names = ['"Ann"', '"Anna"', '"An"', "null", '"Ann"', '"Ann\\u00e9"', '"Ann"', '""', '"Ann"']
    lengths = ["48", "480", "4", "null", "48", "-48", "048", "48"]
    types = ["14", "15", "16", "14", "141", "1", "17", "14"]
    stream = []
    for user, name, length, msg_type in itertools.product(users[:4], names[:4], lengths[:3], types[:2]):
        stream.append(_audio("1", user_id=user, name=name, length=length, msg_type=msg_type))
    for values in itertools.zip_longest(users, names, lengths, types, fillvalue="7"):
        user, name, length, msg_type = values
        stream.append(_audio("2", user_id=user, name=name, length=length if length != "7" else "48",
                             msg_type=msg_type if msg_type != "7" else "14"))
        stream.append(_audio("3"))
    calls = _run_all(stream)
    assert sum(1 for call in calls if call[0] != "drop") > len(stream) // 4  # many delivered, not all dropped


@pytest.mark.parametrize("size", [0, 1, 2, 3, 20, 21, 22, 23, 24, 25, 26, 45, 46, 47, 48, 49, 50, 51, 639, 640, 641,
                                  642, 643])
def test_payload_sizes_around_the_simd_blocks(size: int) -> None:
    payload = bytes((k * 37 + 11) % 256 for k in range(size))
    text = base64.b64encode(payload).decode()
    stream = [_audio("9", data=text, length=str(size)), _audio("10", data=text, length=str(size))]
    for at in range(0, len(text), max(1, len(text) // 7)):
        stream.append(_audio("11", data=text[:at] + "*" + text[at + 1:], length=str(size)))
    calls = _run_all(stream)
    assert calls[0] == ("audio", 7, "Ann", 9, payload)
    assert calls[1] == ("audio", 7, "Ann", 10, payload)


def test_flat_template_then_every_single_byte_edit_agrees() -> None:
    """A steady stream (learned, then every cached value matched: the flat form), then each byte
    of the message replaced in turn, each edit followed by the original again."""
    base = _audio("1738392033699", user_id="16778240", name='"John Smith"', length="48")
    stream = [base, base, base]
    for at in range(len(base)):
        for edit in (b"0", b'"', b"A"):
            if base[at:at + 1] != edit:
                stream += [base[:at] + edit + base[at + 1:], base]
    calls = _run_all(stream)
    assert calls[2] == ("audio", 16778240, "John Smith", 1738392033699, bytes(range(48)))


@pytest.mark.parametrize("with_name", [True, False])
def test_flat_template_with_alternating_users_agrees(with_name: bool) -> None:
    """Multi-stream audio: users take turns, so the flat form is rebuilt or bypassed often."""
    stream = []
    for k in range(40):
        user = (k % 3) if k < 20 else (k // 2 % 2)
        name = f'"user {user}"' if with_name else "null"
        stream.append(_audio(str(1000 + k), user_id=str(100 + user), name=name, length="48"))
    calls = _run_all(stream)
    assert [call[1] for call in calls] == [100 + ((k % 3) if k < 20 else (k // 2 % 2)) for k in range(40)]
    assert [call[3] for call in calls] == [1000 + k for k in range(40)]


@pytest.mark.parametrize("fail", ["reserve", "commit"])
def test_native_sink_raising_is_counted_not_raised(fail: str) -> None:
    """Reserve or commit raising: a callback error, logged; a failed commit still counts the frame."""
    from tests.native.helpers import RecordingControl, native_module

    native = native_module()
    sink = native._RecordingSink()
    listener = native.MediaListener(sink, RecordingControl())
    frame = _audio("5")
    listener.feed(frame)
    sink.fail = fail
    listener.feed(frame)
    listener.feed(frame)
    sink.fail = None
    listener.feed(frame)
    stats = listener.stats()
    assert stats["callback_errors"] == 2
    assert stats["media_frames"] == (4 if fail == "commit" else 2)
    assert stats["drops"] == 0 and stats["slow_path"] == 0
    assert len(sink.calls) == 2


# ---------------------------------------------------------------------------- base64, every decoder path

ALPHABET = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _paths() -> list[str]:
    from tests.native.helpers import native_module

    return list(native_module().b64_paths())


def _decode_with(data: bytes, path: str) -> bytes | None:
    from tests.native.helpers import native_module

    try:
        return bytes(native_module().b64decode(data, path=path))
    except ValueError:
        return None


def test_best_path_is_the_one_reported() -> None:
    from tests.native.helpers import native_module

    assert native_module().b64_simd() == _paths()[-1]
    assert _paths()[0] == "scalar"


@pytest.mark.parametrize("path", _paths())
def test_each_decoder_path_round_trips_every_length(path: str) -> None:
    for size in [*range(400), 640, 1023, 1024, 4095, 8192]:
        data = bytes((k * 131 + size) % 256 for k in range(size))
        assert _decode_with(base64.b64encode(data), path) == data, size


@pytest.mark.parametrize("path", _paths())
def test_each_decoder_path_rejects_any_bad_byte_anywhere(path: str) -> None:
    """160 characters: two 64-character steps, a partial one and the padded last quantum."""
    encoded = base64.b64encode(bytes((k * 97 + 5) % 256 for k in range(119)))
    assert encoded.endswith(b"=")
    for pos in range(len(encoded) - 2):
        for value in range(256):
            mutated = bytearray(encoded)
            mutated[pos] = value
            expected = base64.b64decode(bytes(mutated)) if value in ALPHABET else None
            assert _decode_with(bytes(mutated), path) == expected, (pos, value)


def test_unknown_decoder_path_is_refused() -> None:
    from tests.native.helpers import native_module

    with pytest.raises(ValueError, match="not available"):
        native_module().b64decode(b"QUJD", path="neon")
