"""gateway/_native.pyi declares only what the extension really has (stubs kept by hand)."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway
from tests.native.helpers import native_module

STUB = Path(gateway.__file__).with_name("_native.pyi")


def test_every_stub_name_exists() -> None:
    native = native_module()
    tree = ast.parse(STUB.read_text())
    checked = 0
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            assert hasattr(native, node.name), node.name
            checked += 1
        if isinstance(node, ast.ClassDef):
            cls = getattr(native, node.name)
            for member in node.body:
                name = getattr(member, "name", None) or getattr(getattr(member, "target", None), "id", None)
                if name and name != "__init__":
                    assert hasattr(cls, name) or name in {"transport", "calls", "refuse"}, f"{node.name}.{name}"
    assert checked >= 4


def test_fast_path_covers_the_usual_shapes() -> None:
    """Common media shapes never touch orjson in the native listener (slow_path stays 0)."""
    from tests.native.helpers import RecordingControl, media

    sink = native_module()._RecordingSink()
    listener = native_module().MediaListener(sink, RecordingControl())
    payloads = [
        media(14, bytes(640)),
        media(15, b"\xff\xd8" * 100, user_id="123", user_name="Zoë 山田 😀"),
        media(16, b"", user_id=0, user_name=None),
        b'{ "content" : {\n\t"data" : "AAEC",\r\n "timestamp":-1, "user_id":null, "length": 3,'
        b' "extra": {"a": [1, true, null, "s"]}, "channel_id": "c1", "language": null}, "msg_type" : 14 }\n',
    ]
    for payload in payloads:
        listener.feed(payload, False)
    assert listener.stats()["slow_path"] == 0
    assert [call[0] for call in sink.calls] == ["audio", "video", "share", "audio"]
    hits = listener.stats()["template_hits"]
    for _ in range(3):
        listener.feed(payloads[0], False)  # a learned shape: read through the template
    assert listener.stats()["template_hits"] - hits >= 2
    assert sink.calls[-1] == ("audio", 16778240, "John Smith", 1738392033699, bytes(640))


def test_template_with_a_shorter_payload_still_reads_right() -> None:
    """The template guesses the data length from the last message; a wrong guess never misreads."""
    from tests.native.helpers import RecordingControl

    sink = native_module()._RecordingSink()
    listener = native_module().MediaListener(sink, RecordingControl())
    listener.feed(b'{"msg_type":14,"content":{"data":"AAAAAA==","timestamp":5}}', False)  # learns length 8
    listener.feed(b'{"msg_type":14,"content":{"data":"AAAA","timestamp":6}}', False)      # a quote at guess 6
    listener.feed(b'{"msg_type":14,"content":{"data":"AAAAAAAAAAAA","timestamp":7}}', False)
    assert sink.calls == [("audio", 0, None, 5, bytes(4)), ("audio", 0, None, 6, bytes(3)),
                          ("audio", 0, None, 7, bytes(9))]
