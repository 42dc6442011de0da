"""Pictures for synthetic video and screen share, drawn with numpy, and the reader for their counter.

A picture is a participant-coloured background (camera) or a white slide with a coloured title bar
(share), with a black box in the middle holding the frame index as six 7-segment digits in white.
All geometry is relative to the picture size, so :func:`read_counter` works on any decoded size,
after JPEG or H.264 compression and after scaling.

Drawing happens straight in the encoder's pixel format (planar YUV 4:2:0 or RGB), into a canvas
cached per (kind, participant, size, format): a new frame only repaints the counter box, and only its
luma (the box and the digits are grey, so chroma never changes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import av
import numpy as np

if TYPE_CHECKING:
    from gateway.sim.content import ParticipantSpec

__all__ = ["DIGITS", "Canvas", "canvas", "read_counter", "read_user_colour", "segment_rects"]

#: Digits in the counter (the frame index modulo 10**DIGITS is shown).
DIGITS = 6
#: Which of the segments a..g (top, top-right, bottom-right, bottom, bottom-left, top-left, middle) each digit lights.
_SEGMENTS = {
    0: "abcdef",
    1: "bc",
    2: "abged",
    3: "abgcd",
    4: "fgbc",
    5: "afgcd",
    6: "afgedc",
    7: "abc",
    8: "abcdefg",
    9: "abcdfg",
}
_PATTERN_TO_DIGIT = {frozenset(v): k for k, v in _SEGMENTS.items()}
_BOX = (0.2, 0.35, 0.8, 0.65)  # counter box as fractions of (x0, y0, x1, y1)


def _box(width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = _BOX
    return round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height)


def segment_rects(width: int, height: int) -> list[dict[str, tuple[int, int, int, int]]]:
    """Per digit, each segment's rectangle (x0, y0, x1, y1) in a picture of this size."""
    bx0, by0, bx1, by1 = _box(width, height)
    cell = (bx1 - bx0) / DIGITS
    dw, dh = cell * 0.7, (by1 - by0) * 0.8
    t = min(dw, dh) * 0.18
    out = []
    for d in range(DIGITS):
        ox, oy = bx0 + d * cell + cell * 0.15, by0 + (by1 - by0) * 0.1
        mid = oy + dh / 2
        rects = {
            "a": (ox + t, oy, ox + dw - t, oy + t),
            "g": (ox + t, mid - t / 2, ox + dw - t, mid + t / 2),
            "d": (ox + t, oy + dh - t, ox + dw - t, oy + dh),
            "f": (ox, oy + t, ox + t, mid - t / 2),
            "b": (ox + dw - t, oy + t, ox + dw, mid - t / 2),
            "e": (ox, mid + t / 2, ox + t, oy + dh - t),
            "c": (ox + dw - t, mid + t / 2, ox + dw, oy + dh - t),
        }
        out.append({k: (round(a), round(b), round(c), round(e)) for k, (a, b, c, e) in rects.items()})
    return out


def _rgb_to_yuv(rgb: tuple[int, int, int], full_range: bool) -> tuple[int, int, int]:
    """BT.601 conversion (JPEG's full range, or the limited range H.264 streams use)."""
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = (b - y) * 0.564 + 128
    v = (r - y) * 0.713 + 128
    if not full_range:
        y = 16 + y * 219 / 255
        u = 128 + (u - 128) * 224 / 255
        v = 128 + (v - 128) * 224 / 255
    return round(y), round(u), round(v)


class Canvas:
    """A reusable picture in one pixel format: background painted once, counter repainted per frame."""

    def __init__(self, kind: str, spec: ParticipantSpec, width: int, height: int, fmt: str) -> None:
        self.width, self.height, self.fmt = width, height, fmt
        self.rects = segment_rects(width, height)
        self.box = _box(width, height)
        index, palette = _background(kind, spec, width, height, self.box)
        if fmt == "rgb24":
            lut = np.asarray(palette, dtype=np.uint8)
            self.buf = np.empty((height, width, 3), dtype=np.uint8)
            for ch in range(3):  # one small LUT per channel: twice as fast as indexing the (n, 3) palette
                self.buf[..., ch] = lut[:, ch][index]
            self.luma = self.buf  # 3-channel: painted with (v, v, v)
            self.black, self.white = 0, 255
        else:
            full = fmt == "yuvj420p"
            yuv = np.array([_rgb_to_yuv(c, full) for c in palette], dtype=np.uint8)
            self.buf = np.empty((height * 3 // 2, width), dtype=np.uint8)
            self.buf[:height] = yuv[:, 0][index]
            sub = index[::2, ::2]  # chroma: nearest sample of each 2x2 block (flat regions, no blending needed)
            chroma = self.buf[height:].reshape(-1)
            q = (height // 2) * (width // 2)
            chroma[:q] = yuv[:, 1][sub].reshape(-1)
            chroma[q:] = yuv[:, 2][sub].reshape(-1)
            self.luma = self.buf[:height]
            self.black, self.white = (0, 255) if full else (16, 235)
        self.shown: int | None = None

    def draw_counter(self, value: int) -> None:
        value %= 10**DIGITS
        if value == self.shown:
            return
        x0, y0, x1, y1 = self.box
        self.luma[y0:y1, x0:x1] = self.black
        digits = f"{value:0{DIGITS}d}"
        for rects, ch in zip(self.rects, digits, strict=True):
            for seg in _SEGMENTS[int(ch)]:
                a, b, c, d = rects[seg]
                self.luma[b:d, a:c] = self.white
        self.shown = value

    def frame(self) -> av.VideoFrame:
        """A new VideoFrame holding a copy of the canvas (the encoder may keep it)."""
        return av.VideoFrame.from_ndarray(self.buf, format=self.fmt)


def canvas(cache: dict[tuple[Any, ...], Any], kind: str, spec: ParticipantSpec, width: int, height: int, fmt: str) -> Canvas:
    key = ("canvas", kind, spec.index, width, height, fmt)
    c = cache.get(key)
    if c is None:
        c = cache[key] = Canvas(kind, spec, width, height, fmt)
    return c


def _background(
    kind: str, spec: ParticipantSpec, width: int, height: int, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """The background as a palette-index image plus its RGB palette (flat shapes convert cheaply)."""
    index = np.zeros((height, width), dtype=np.uint8)
    if kind == "share":
        palette = [(250, 250, 250), spec.colour, (90, 90, 90), (0, 0, 0)]
        index[: max(2, height // 8)] = 1  # title bar in the sharer's colour
        line_h = max(2, height // 40)
        for k in range(4):  # "text lines" above and below the counter box
            y = height * 3 // 16 + k * line_h * 2 if k < 2 else height * 11 // 16 + (k - 2) * line_h * 2
            index[y : y + line_h, width // 10 : width * (9 - k) // 10] = 2
    else:
        palette = [spec.colour, tuple(min(255, c + 60) for c in spec.colour), (0, 0, 0)]
        # a lighter "head" disc above the counter box, so the picture is not flat
        cy, cx, r = height * 0.18, width * 0.5, height * 0.14
        y0, y1, x0, x1 = max(0, int(cy - r)), min(height, int(cy + r) + 1), max(0, int(cx - r)), min(width, int(cx + r) + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        index[y0:y1, x0:x1][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    bx0, by0, bx1, by1 = box
    index[by0:by1, bx0:bx1] = len(palette) - 1  # black box: neutral chroma, so digits only touch luma
    return index, palette  # type: ignore[return-value]


def read_counter(rgb: np.ndarray) -> int:
    """Read the 7-segment counter back from a decoded picture (H x W x 3 uint8 RGB).

    Each segment is judged by the mean luma of its central half; raises ValueError if a digit's lit
    segments form no digit (not one of our pictures, or damaged beyond reading).
    """
    h, w = rgb.shape[:2]
    luma = rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    value = 0
    for pos, rects in enumerate(segment_rects(w, h)):
        lit = set()
        for seg, (x0, y0, x1, y1) in rects.items():
            qx, qy = max(1, (x1 - x0) // 4), max(1, (y1 - y0) // 4)
            patch = luma[y0 + qy : max(y0 + qy + 1, y1 - qy), x0 + qx : max(x0 + qx + 1, x1 - qx)]
            if float(patch.mean()) > 128.0:
                lit.add(seg)
        digit = _PATTERN_TO_DIGIT.get(frozenset(lit))
        if digit is None:
            raise ValueError(f"digit {pos} unreadable: lit segments {''.join(sorted(lit))!r}")
        value = value * 10 + digit
    return value


def read_user_colour(rgb: np.ndarray) -> tuple[int, int, int]:
    """Mean RGB of the camera picture's background (left edge band): the participant's colour."""
    h, w = rgb.shape[:2]
    patch = rgb[h // 2 - h // 10 : h // 2 + h // 10, w // 50 : w // 10, :3]
    r, g, b = (round(float(x)) for x in patch.reshape(-1, 3).mean(axis=0))
    return r, g, b
